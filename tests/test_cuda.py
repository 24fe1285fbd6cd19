"""CUDA kernels: exact in the core issue's sense, checked against float64 and the CPU kernels.

Skipped (not missing) without a GPU. Picks are float64-checked on random and tightly
clustered pools; on exactly representable data (small integers, duplicates) the CUDA
indices equal the CPU's, ties going to the lowest index. The multi-pick / chunked paths
use cuBLAS GEMMs, so every check also runs with TF32 switched on by the caller.
"""
import contextlib

import numpy as np
import pytest
import torch

import fastsel
from fastsel import _backend, reference
from _helpers import DTYPES, RTOL, brute_knn, check_greedy_maximal, clustered_pool, int_pool

pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    pytest.mark.skipif(not (_backend.loaded() and _backend.has_kernel("greedy", "cuda")),
                       reason="extension built without CUDA kernels"),
]

CUDA = "cuda"


@contextlib.contextmanager
def tf32(on):
    old = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = on
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def same(got, want, what="values"):
    """Exact equality, reporting the first mismatch."""
    got, want = got.cpu(), want.cpu()
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)} != {tuple(want.shape)}"
    bad = (got != want) & ~(torch.isnan(got) & torch.isnan(want)) if got.is_floating_point() else got != want
    if bool(bad.any()):
        i = int(torch.nonzero(bad.reshape(-1))[0])
        raise AssertionError(f"{what}: {int(bad.sum())} mismatches, first at {i}: "
                             f"{got.reshape(-1)[i].item()!r} != {want.reshape(-1)[i].item()!r}")


def _t(a, dtype):
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)


# ------------------------------------------------------------------------ greedy

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("d", [37, 64])  # scalar and 4-wide loads
@pytest.mark.parametrize("mode", ["single", "multi"])
def test_greedy_random_float64_maximal(dtype, d, mode, rng):
    x = _t(rng.standard_normal((3000, d)), dtype)
    r = fastsel.greedy(x.to(CUDA), 400, start=7, mode=mode, backend="cpp")
    assert r.indices.device.type == "cuda"
    check_greedy_maximal(x, r.indices, RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["single", "multi"])
def test_greedy_integer_data_equals_cpu(dtype, mode, rng):
    x = _t(int_pool(rng, 2500, 12, -3, 4), dtype)  # many exact ties and duplicates
    # the ops' squared distances and states are exact here (sqrt is left out: torch's
    # float64 sqrt on CUDA and on the CPU can differ in the last bit)
    want = torch.ops.fastsel.greedy(x, 2500, 3, None, "single")
    got = torch.ops.fastsel.greedy(x.to(CUDA), 2500, 3, None, mode)
    for g, w, what in zip(got, want, ("indices", "squared distances", "state")):
        same(g, w, what)


@pytest.mark.parametrize("pool", ["gauss", "clusters_far"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("allow_tf32", [False, True])
def test_greedy_multi_bit_identical_to_single(pool, dtype, allow_tf32, rng):
    a = rng.standard_normal((6000, 48)) if pool == "gauss" else clustered_pool(rng, 6000, 48, clusters=16)
    x = _t(a, dtype).to(CUDA)
    with tf32(allow_tf32):
        s_i, s_d, s_md = torch.ops.fastsel.greedy(x, 900, 11, None, "single")
        m_i, m_d, m_md = torch.ops.fastsel.greedy(x, 900, 11, None, "multi")
        passes, picks = torch.ops.fastsel._greedy_stats().tolist()[:2]
    same(m_i, s_i, "indices")
    same(m_d, s_d, "distances")
    same(m_md, s_md, "state")
    assert passes < picks  # several picks per pass
    check_greedy_maximal(x, m_i, RTOL[dtype])


def test_greedy_large_pool_multi_equals_single(rng):
    x = torch.randn(70000, 96, device=CUDA)
    a = torch.ops.fastsel.greedy(x, 1500, 0, None, "single")
    b = torch.ops.fastsel.greedy(x, 1500, 0, None, "multi")
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])


@pytest.mark.parametrize("mode", ["single", "multi"])
def test_greedy_resume_and_progress(mode, rng):
    x = _t(rng.standard_normal((4000, 20)), torch.float32).to(CUDA)
    whole = fastsel.greedy(x, 1000, 4, mode=mode, backend="cpp").indices
    seen = []
    parts = fastsel.greedy(x, 1000, 4, mode=mode, backend="cpp", progress=seen.append).indices
    assert len(seen) > 1 and torch.equal(whole, parts)


def test_greedy_hand_cases_and_large_distances():
    x = torch.tensor([[0.0, 0.0], [-1.0, 0.0], [5.0, 0.0], [-5.0, 0.0]], device=CUDA)
    assert fastsel.greedy(x, 4, start=0, backend="cpp").indices.tolist() == [0, 2, 3, 1]
    big = torch.tensor([[0.0], [1e4], [3e4], [-2e4]], device=CUDA)  # d^2 up to 2.5e9: no sentinel clipping
    assert fastsel.greedy(big, 4, start=0, backend="cpp").indices.tolist() == [0, 2, 3, 1]


@pytest.mark.parametrize("N", [1, 2, 3, 33, 257])
def test_greedy_tiny_pools(N, rng):
    x = _t(rng.standard_normal((N, 5)), torch.float32)
    want = fastsel.greedy(x, N, 0, backend="cpp", mode="single").indices
    for mode in ("single", "multi"):
        got = fastsel.greedy(x.to(CUDA), N, 0, backend="cpp", mode=mode).indices
        assert torch.equal(got.cpu(), want)


def test_greedy_bad_state_on_cuda():
    x = torch.randn(10, 3, device=CUDA)
    with pytest.raises(RuntimeError, match="min_d2 must be"):
        torch.ops.fastsel.greedy(x, 2, -1, torch.zeros(10, dtype=torch.float64, device=CUDA), "auto")
    with pytest.raises(RuntimeError, match="n must be in"):
        torch.ops.fastsel.greedy(x, 11, 0, None, "auto")


@pytest.mark.parametrize("call, match", [
    (lambda x: torch.ops.fastsel.greedy(x, 11, 0, None, "auto"), "n must be in"),
    (lambda x: torch.ops.fastsel.greedy(x, 2, 10, None, "auto"), "start must be in"),
    (lambda x: torch.ops.fastsel.threshold_decay(x, 2, 0, 1.0, 2.0, False, None, None, "auto"), "alpha must be"),
    (lambda x: torch.ops.fastsel.threshold_decay(x, 2, 0, -1.0, 0.5, False, None, None, "auto"), "tau must be"),
    (lambda x: torch.ops.fastsel.nn(x, x, 20, False), "k must be in"),
    (lambda x: torch.ops.fastsel.update_min_d2(x, torch.zeros(10, device=CUDA), x[:, :2], 0.0, 0), "centres must be"),
    (lambda x: torch.ops.fastsel._fps_one_block(x, 0, 0), "n must be in"),
])
def test_bad_arguments_raise_with_numbers_in_the_message(call, match):
    with pytest.raises(RuntimeError, match=match):
        call(torch.randn(10, 3, device=CUDA))


def test_one_block_baseline_equals_greedy_on_integers(rng):
    x = _t(int_pool(rng, 1500, 8), torch.float32).to(CUDA)
    got = torch.ops.fastsel._fps_one_block(x, 300, 2)
    want = fastsel.greedy(x, 300, 2, backend="cpp", mode="single").indices
    assert torch.equal(got, want)


# ------------------------------------------------------------------------ threshold

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("decay", ["empty-pass", "every-pass"])
@pytest.mark.parametrize("mode", ["single", "chunked"])
def test_threshold_integer_data_equals_cpu(dtype, decay, mode, rng):
    x = _t(int_pool(rng, 1500, 6, -3, 4), dtype)
    every = decay == "every-pass"
    want = torch.ops.fastsel.threshold_decay(x, 1200, 2, 4.0, 0.8, every, None, None, "auto")
    got = torch.ops.fastsel.threshold_decay(x.to(CUDA), 1200, 2, 4.0, 0.8, every, None, None, mode)
    for g, w, what in zip(got, want, ("indices", "squared distances", "tau_at", "state", "tau/pos/added/filled")):
        same(g, w, what)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("allow_tf32", [False, True])
def test_threshold_random_equals_cpu_and_chunked_equals_single(dtype, allow_tf32, rng):
    x = _t(rng.standard_normal((5000, 40)), dtype)
    want = fastsel.threshold_decay(x, 1500, start=0, tau=9.0, alpha=0.9, backend="cpp")
    with tf32(allow_tf32):
        a = fastsel.threshold_decay(x.to(CUDA), 1500, start=0, tau=9.0, alpha=0.9, backend="cpp", mode="chunked")
        b = fastsel.threshold_decay(x.to(CUDA), 1500, start=0, tau=9.0, alpha=0.9, backend="cpp", mode="single")
    assert torch.equal(a.indices, b.indices) and torch.equal(a.distances, b.distances)
    # the CPU sums in another order: same accepts, distances within float rounding
    assert torch.equal(a.indices.cpu(), want.indices)
    torch.testing.assert_close(a.distances.cpu()[1:], want.distances[1:], rtol=RTOL[dtype], atol=0)
    # every accept was strictly above the threshold in force, checked in float64
    x64 = x.double().numpy()
    acc = a.indices.cpu().numpy()
    for t in range(1, len(acc), 97):
        d = np.sqrt(((x64[acc[:t]] - x64[acc[t]]) ** 2).sum(1)).min()
        assert d > a.tau_at[t].item() * (1 - RTOL[dtype])


def test_threshold_duplicates_fill_and_resume(rng):
    x = torch.tensor([[0.0], [5.0], [0.0], [5.0], [2.0]])
    want = fastsel.threshold_decay(x, 5, start=0, tau=1.0, backend="cpp")
    got = fastsel.threshold_decay(x.to(CUDA), 5, start=0, tau=1.0, backend="cpp")
    assert torch.equal(got.indices.cpu(), want.indices) and got.n_filled == want.n_filled
    y = _t(rng.standard_normal((3000, 16)), torch.float32).to(CUDA)
    whole = fastsel.threshold_decay(y, 900, start=1, tau=5.0, backend="cpp").indices
    seen = []
    parts = fastsel.threshold_decay(y, 900, start=1, tau=5.0, backend="cpp", progress=seen.append).indices
    assert len(seen) > 1 and torch.equal(whole, parts)


# ------------------------------------------------------------------------ nn

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", [1, 5, 40])  # 40: the long-list path
def test_nn_integer_data_exact_ties_low(dtype, k, rng):
    q = int_pool(rng, 300, 6, -2, 3)
    r = int_pool(rng, 900, 6, -2, 3)
    wd, wi = brute_knn(q, r, k)
    d, i = fastsel.nn(_t(q, dtype).to(CUDA), _t(r, dtype).to(CUDA), k=k, backend="cpp")
    assert np.array_equal(i.cpu().numpy(), wi)
    np.testing.assert_allclose(d.cpu().double().numpy(), wd, rtol=1e-6)


@pytest.mark.parametrize("pool", ["gauss", "clusters_far"])
@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("allow_tf32", [False, True])
def test_nn_float64_correct(pool, exclude_self, allow_tf32, rng):
    a = rng.standard_normal((2500, 64)) if pool == "gauss" else clustered_pool(rng, 2500, 64)
    x = _t(a, torch.float32)
    x64 = x.double().numpy()
    wd, wi = brute_knn(x64, x64, 3, exclude_self)
    with tf32(allow_tf32):
        d, i = fastsel.nn(x.to(CUDA), k=3, exclude_self=exclude_self, backend="cpp")
    assert np.array_equal(i.cpu().numpy(), wi)
    np.testing.assert_allclose(d.cpu().double().numpy(), wd, rtol=1e-6)


def test_nn_block_edges_equal_cpu(rng):
    q = _t(rng.standard_normal((4100, 24)), torch.float32)  # crosses the 4096-row query block
    r = _t(rng.standard_normal((16400, 24)), torch.float32)  # and the 16384-row ref block
    wd, wi = fastsel.nn(q, r, k=4, backend="cpp")
    d, i = fastsel.nn(q.to(CUDA), r.to(CUDA), k=4, backend="cpp")
    assert torch.equal(i.cpu(), wi)
    torch.testing.assert_close(d.cpu(), wd, rtol=1e-6, atol=0)


# ------------------------------------------------------------------------ update_min_d2

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_update_min_d2_equals_cpu_on_integers(dtype, rng):
    x = _t(int_pool(rng, 2000, 10), dtype)
    md = torch.full((2000,), float("inf"), dtype=reference.acc_dtype(dtype))
    md[[3, 9]] = -1
    c = x[[3, 9, 400]]
    want = torch.ops.fastsel.update_min_d2(x, md, c, 30.0, 100)
    got = torch.ops.fastsel.update_min_d2(x.to(CUDA), md.to(CUDA), c.to(CUDA), 30.0, 100)
    assert torch.equal(got[0].cpu(), want[0]) and torch.equal(got[1].cpu(), want[1])
