import math

import numpy as np
import pytest
import torch

import fastsel
from fastsel import metrics as M
from fastsel import reference
from fastsel.ops._inputs import draw_start
from _helpers import (DTYPES, RTOL, as_t, check_greedy_maximal, clustered_pool, cuda_only, int_pool, invoke as run,
                      kernel_device, one_line, same, tf32)


def test_hand_case_line(backend, device):
    x = torch.tensor([[0.0], [1.0], [3.0], [10.0], [6.0]], device=device)
    r = fastsel.greedy(x, 5, start=0, backend=backend)
    assert r.indices.tolist() == [0, 3, 4, 2, 1]
    assert math.isinf(r.distances[0].item())
    assert r.distances[1:].tolist() == [10.0, 4.0, 3.0, 1.0]


def test_ties_go_to_lowest_index(backend):
    # rows 2 and 3 are both at distance 5 from row 0: the lower index wins
    x = torch.tensor([[0.0, 0.0], [-1.0, 0.0], [5.0, 0.0], [-5.0, 0.0]])
    r = fastsel.greedy(x, 4, start=0, backend=backend)
    assert r.indices.tolist() == [0, 2, 3, 1]
    # mirrored: now the tie is between rows 2 and 3 with the far one first in index order
    x = torch.tensor([[0.0, 0.0], [-1.0, 0.0], [-5.0, 0.0], [5.0, 0.0]])
    assert fastsel.greedy(x, 4, start=0, backend=backend).indices.tolist() == [0, 2, 3, 1]


def test_duplicates_picked_in_index_order_after_distinct(backend):
    x = torch.tensor([[0.0], [5.0], [0.0], [5.0], [2.0]])
    r = fastsel.greedy(x, 5, start=0, backend=backend)
    assert r.indices.tolist() == [0, 1, 4, 2, 3]
    assert r.distances[3:].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("N", [1, 2, 3, 7])
def test_tiny_sizes_and_n_equals_N(backend, N, rng):
    x = torch.from_numpy(rng.standard_normal((N, 3))).float()
    r = fastsel.greedy(x, N, start=N - 1, backend=backend)
    assert sorted(r.indices.tolist()) == list(range(N))
    assert r.indices[0].item() == N - 1
    check_greedy_maximal(x, r.indices, RTOL[torch.float32])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_exact_on_integer_data_equals_float64_reference(backend, dtype, rng):
    x64 = torch.from_numpy(int_pool(rng, 300, 16))
    want = reference.greedy(x64, 300, 5)[0]
    got = fastsel.greedy(x64.to(dtype), 300, start=5, backend=backend).indices
    assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_random_picks_are_float64_maximal(backend, dtype, rng):
    x = torch.from_numpy(rng.standard_normal((700, 24))).to(dtype)
    r = fastsel.greedy(x, 120, start=3, backend=backend)
    check_greedy_maximal(x, r.indices, RTOL[dtype])
    # reported distances match the float64 truth at the time of each pick
    x64 = x.double()
    for t in (1, 50, 119):
        prev = r.indices[:t]
        want = torch.cdist(x64[r.indices[t]][None], x64[prev]).min().item()
        assert r.distances[t].item() == pytest.approx(want, rel=1e-3 if dtype != torch.float64 else 1e-12)


def test_clustered_far_from_origin_is_float64_maximal(backend, rng):
    x = torch.from_numpy(clustered_pool(rng, 1500, 64)).float()
    r = fastsel.greedy(x, 400, start=0, backend=backend)
    check_greedy_maximal(x, r.indices, RTOL[torch.float32])


@pytest.mark.skipif(not fastsel._backend.loaded(), reason="installed without the extension (cpp vs torch)")
def test_backends_agree_on_float64(rng):
    x = torch.from_numpy(rng.standard_normal((500, 10)))
    a = fastsel.greedy(x, 200, start=7, backend="torch").indices
    b = fastsel.greedy(x, 200, start=7, backend="cpp").indices
    assert torch.equal(a, b)


def test_chunked_with_progress_equals_one_call(backend, rng):
    x = torch.from_numpy(int_pool(rng, 900, 8)).float()
    seen = []
    a = fastsel.greedy(x, 450, start=2, backend=backend, progress=seen.append)
    b = fastsel.greedy(x, 450, start=2, backend=backend)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.distances, b.distances)
    assert sum(seen) == 450 and len(seen) > 1


def test_start_is_drawn_from_seed_in_python(backend):
    x = torch.randn(50, 4)
    a = fastsel.greedy(x, 3, seed=123, backend=backend).indices
    assert a[0].item() == draw_start(50, 123)
    assert torch.equal(a, fastsel.greedy(x, 3, seed=123, backend=backend).indices)


def test_numpy_input_and_int_arrays(backend):
    x = np.array([[0, 0], [3, 4], [1, 1]], dtype=np.int64)
    r = fastsel.greedy(x, 3, start=0, backend=backend)
    assert r.indices.tolist() == [0, 1, 2]
    assert r.distances[1].item() == 5.0


def test_large_squared_distances_are_not_clipped(backend):
    # torch_cluster seeds min-distances with 5e4; fastsel starts at +inf
    x = torch.tensor([[0.0] * 4, [300.0] * 4, [600.0] * 4])
    r = fastsel.greedy(x, 3, start=0, backend=backend)
    assert r.indices.tolist() == [0, 2, 1]
    assert r.distances[1].item() == pytest.approx(1200.0)


@pytest.mark.parametrize("bad, match", [
    (dict(n=0), "n must be in"), (dict(n=11), "n must be in"), (dict(start=10), "start must be in"),
    (dict(start=-1), "start must be in"),
])
def test_bad_arguments(backend, bad, match):
    x = torch.randn(10, 3)
    kw = dict(n=3, start=0) | bad
    with pytest.raises(ValueError, match=match):
        fastsel.greedy(x, kw["n"], kw["start"], backend=backend)


@pytest.mark.parametrize("x, match", [
    (torch.tensor([[0.0, float("nan")], [1.0, 2.0]]), "NaN or Inf"),
    (torch.tensor([[0.0, float("inf")], [1.0, 2.0]]), "NaN or Inf"),
    (torch.zeros(5), "2-D"), (torch.zeros(2, 3, 4, 5), "2-D"), (torch.zeros(0, 3), "empty"),
])
def test_bad_data(x, match):
    with pytest.raises(ValueError, match=match):
        fastsel.greedy(x, 1, 0)


def test_kernel_rejects_bad_state():
    pytest.importorskip("fastsel._C")
    x = torch.randn(5, 2)
    with pytest.raises(RuntimeError, match="min_d2 must have shape"):
        torch.ops.fastsel.greedy(x, 1, -1, torch.zeros(4))
    with pytest.raises(RuntimeError, match="n must be in"):
        md = torch.full((5,), -1.0)
        torch.ops.fastsel.greedy(x, 1, -1, md)


# ---------------------------------------------------------------- exact multi-pick passes (cpp)

needs_ext = pytest.mark.skipif(not fastsel._backend.loaded(), reason="installed without the extension")


def _pools(rng):
    c = rng.standard_normal((16, 48)) * 2 + 40.0
    return {
        "gauss": rng.standard_normal((3000, 48)),
        "clusters_far": c[rng.integers(16, size=3000)] + 0.05 * rng.standard_normal((3000, 48)),
        "integers": int_pool(rng, 3000, 12, -3, 4),  # many exact ties and duplicates
        "low_d": rng.standard_normal((3000, 3)),
    }


@needs_ext
@pytest.mark.parametrize("pool", ["gauss", "clusters_far", "integers", "low_d"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_multi_pick_is_bit_identical_to_one_pick(pool, dtype, rng):
    x = torch.from_numpy(_pools(rng)[pool]).to(dtype)
    n = 3000 if pool == "integers" else 700
    a = fastsel.greedy(x, n, 11, mode="single", backend="cpp")
    b = fastsel.greedy(x, n, 11, mode="multi", backend="cpp")
    assert torch.equal(a.indices, b.indices)
    assert torch.equal(a.distances, b.distances)
    passes, picks = torch.ops.fastsel._greedy_stats().tolist()[:2]
    assert picks == n - 1 and passes < picks  # it really made several picks per pass


@needs_ext
@pytest.mark.parametrize("N", [1, 2, 3, 7, 300])
def test_multi_pick_small_pools_and_n_equals_N(N, rng):
    x = torch.from_numpy(rng.standard_normal((N, 5))).float()
    a = fastsel.greedy(x, N, 0, mode="single", backend="cpp")
    b = fastsel.greedy(x, N, 0, mode="multi", backend="cpp")
    assert torch.equal(a.indices, b.indices)


@needs_ext
def test_multi_pick_resumes_from_state(rng):
    x = torch.from_numpy(rng.standard_normal((2500, 16))).float()
    whole = fastsel.greedy(x, 900, 4, mode="single", backend="cpp").indices
    seen = []
    watched = fastsel.greedy(x, 900, 4, mode="multi", backend="cpp", progress=seen.append).indices
    assert sum(seen) == 900 and torch.equal(whole, watched)  # one call, progress from its pick counter
    i1, _, md = torch.ops.fastsel.greedy(x, 100, 4, None, "multi")
    i2, _, md2 = torch.ops.fastsel.greedy(x, 200, -1, md, "multi")
    assert torch.equal(torch.cat([i1, i2]), whole[:300])
    assert torch.equal(md2, torch.ops.fastsel.greedy(x, 300, 4, None, "single")[2])


def test_bad_mode():
    with pytest.raises(ValueError, match="mode must be"):
        fastsel.greedy(torch.randn(4, 2), 2, 0, mode="fast")


@needs_ext
@pytest.mark.parametrize("d", range(1, 9))
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_low_d_column_kernel_is_bit_identical(d, dtype, rng):
    """d <= 8 and small pools take the vectorised column kernel in single mode: the same picks and
    distances as the row kernel (multi-pick without pruning, certified by the difference form), on
    pools whose size is not a whole number of vectors, on integer ties, and resumed from a state."""
    for N, pool in [(1237, rng.standard_normal((1237, d))), (1001, int_pool(rng, 1001, d, -2, 3))]:
        x = torch.from_numpy(pool).to(dtype)
        n = 400
        i1, d1, m1 = torch.ops.fastsel.greedy(x, n, 5, None, "single")
        i2, d2, m2 = torch.ops.fastsel.greedy(x, n, 5, None, "multi-noprune")
        assert torch.equal(i1, i2) and torch.equal(d1, d2) and torch.equal(m1, m2)
        a, _, state = torch.ops.fastsel.greedy(x, 150, 5, None, "single")
        b, _, m3 = torch.ops.fastsel.greedy(x, n - 150, -1, state, "single")
        assert torch.equal(torch.cat([a, b]), i1) and torch.equal(m3, m1)


# ---------------------------------------------------------------- every device (cpu, and cuda when present)
# The compiled kernels of each device against float64 and the literal reference (fastsel.reference):
# on exactly representable data (small integers, duplicates) indices, squared distances and states
# are equal bit for bit, ties going to the lowest index. The CUDA multi-pick paths run cuBLAS
# GEMMs, so their checks also run with TF32 switched on by the caller.

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("d", [37, 64])  # CUDA: scalar and 4-wide loads
@pytest.mark.parametrize("mode", ["single", "multi"])
def test_device_greedy_random_float64_maximal(device, dtype, d, mode, rng):
    dev = kernel_device(device)
    x = as_t(rng.standard_normal((3000, d)), dtype)
    r = fastsel.greedy(x.to(dev), 400, start=7, mode=mode, backend="cpp")
    assert r.indices.device.type == dev
    check_greedy_maximal(x, r.indices.cpu(), RTOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mode", ["single", "multi"])
def test_device_greedy_integer_data_equals_reference(device, dtype, mode, rng):
    dev = kernel_device(device)
    x = as_t(int_pool(rng, 2500, 12, -3, 4), dtype)  # many exact ties and duplicates
    # squared distances and states are exact here (sqrt is left out: float64 sqrt on CUDA and on
    # the CPU can differ in the last bit)
    want = reference.greedy(x, 2500, 3)
    got = torch.ops.fastsel.greedy(x.to(dev), 2500, 3, None, mode)
    for g, w, what in zip(got, want, ("indices", "squared distances", "state")):
        same(g, w, what)


@pytest.mark.parametrize("pool", ["gauss", "clusters_far"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("allow_tf32", [False, True])
def test_device_greedy_multi_bit_identical_to_single(device, pool, dtype, allow_tf32, rng):
    dev = kernel_device(device)
    if allow_tf32:
        cuda_only(dev, "TF32 is a CUDA setting")
    a = rng.standard_normal((6000, 48)) if pool == "gauss" else clustered_pool(rng, 6000, 48, clusters=16)
    x = as_t(a, dtype).to(dev)
    with tf32(allow_tf32):
        s_i, s_d, s_md = torch.ops.fastsel.greedy(x, 900, 11, None, "single")
        m_i, m_d, m_md = torch.ops.fastsel.greedy(x, 900, 11, None, "multi")
        passes, picks = torch.ops.fastsel._greedy_stats().tolist()[:2]
    same(m_i, s_i, "indices")
    same(m_d, s_d, "distances")
    same(m_md, s_md, "state")
    assert passes < picks  # several picks per pass
    check_greedy_maximal(x.cpu(), m_i.cpu(), RTOL[dtype])


def test_device_greedy_large_pool_multi_equals_single(device, rng):
    dev = kernel_device(device)
    cuda_only(dev, "the CPU's large pools: test_prune.py and the multi-pick tests above")
    x = torch.randn(70000, 96, device=dev)
    a = torch.ops.fastsel.greedy(x, 1500, 0, None, "single")
    b = torch.ops.fastsel.greedy(x, 1500, 0, None, "multi")
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])


@pytest.mark.parametrize("mode", ["single", "multi"])
def test_device_greedy_resume_and_progress(device, mode, rng):
    dev = kernel_device(device)
    x = as_t(rng.standard_normal((4000, 20)), torch.float32).to(dev)
    whole = fastsel.greedy(x, 1000, 4, mode=mode, backend="cpp").indices
    seen = []
    parts = fastsel.greedy(x, 1000, 4, mode=mode, backend="cpp", progress=seen.append).indices
    assert sum(seen) == 1000 and torch.equal(whole, parts)


def test_device_greedy_hand_cases_and_large_distances(device):
    dev = kernel_device(device)
    x = torch.tensor([[0.0, 0.0], [-1.0, 0.0], [5.0, 0.0], [-5.0, 0.0]], device=dev)
    assert fastsel.greedy(x, 4, start=0, backend="cpp").indices.tolist() == [0, 2, 3, 1]
    big = torch.tensor([[0.0], [1e4], [3e4], [-2e4]], device=dev)  # d^2 up to 2.5e9: no sentinel clipping
    assert fastsel.greedy(big, 4, start=0, backend="cpp").indices.tolist() == [0, 2, 3, 1]


@pytest.mark.parametrize("N", [1, 2, 3, 33, 257])
def test_device_greedy_tiny_pools(device, N, rng):
    dev = kernel_device(device)
    x = as_t(rng.standard_normal((N, 5)), torch.float32)
    want = reference.greedy(x, N, 0)[0]
    for mode in ("single", "multi"):
        got = fastsel.greedy(x.to(dev), N, 0, backend="cpp", mode=mode).indices
        assert torch.equal(got.cpu(), want)


def test_device_greedy_bad_state(device):
    dev = kernel_device(device)
    x = torch.randn(10, 3, device=dev)
    with pytest.raises(RuntimeError, match="min_d2 must be"):
        torch.ops.fastsel.greedy(x, 2, -1, torch.zeros(10, dtype=torch.float64, device=dev), "auto")
    with pytest.raises(RuntimeError, match="n must be in"):
        torch.ops.fastsel.greedy(x, 11, 0, None, "auto")


@pytest.mark.parametrize("call, match", [
    (lambda x: torch.ops.fastsel.greedy(x, 11, 0, None, "auto"), "n must be in"),
    (lambda x: torch.ops.fastsel.greedy(x, 2, 10, None, "auto"), "start must be in"),
    (lambda x: torch.ops.fastsel.threshold_decay(x, 2, 0, 1.0, 2.0, False, None, None, "auto"), "alpha must be"),
    (lambda x: torch.ops.fastsel.threshold_decay(x, 2, 0, -1.0, 0.5, False, None, None, "auto"), "tau must be"),
    (lambda x: torch.ops.fastsel.nn(x, x, 20, False), "k must be in"),
    (lambda x: torch.ops.fastsel.update_min_d2(x, torch.zeros(10, device=x.device), x[:, :2], 0.0, 0),
     "centres must be"),
])
def test_device_bad_arguments_raise_with_numbers_in_the_message(device, call, match):
    dev = kernel_device(device)
    with pytest.raises(RuntimeError, match=match):
        call(torch.randn(10, 3, device=dev))


def test_device_one_block_baseline_equals_greedy_on_integers(device, rng):
    dev = kernel_device(device)
    cuda_only(dev, "_fps_one_block is the CUDA benchmark's baseline")
    with pytest.raises(RuntimeError, match="n must be in"):
        torch.ops.fastsel._fps_one_block(torch.randn(10, 3, device=dev), 0, 0)
    x = as_t(int_pool(rng, 1500, 8), torch.float32).to(dev)
    got = torch.ops.fastsel._fps_one_block(x, 300, 2)
    want = fastsel.greedy(x, 300, 2, backend="cpp", mode="single").indices
    assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_device_update_min_d2_equals_reference_on_integers(device, dtype, rng):
    dev = kernel_device(device)
    x = as_t(int_pool(rng, 2000, 10), dtype)
    md = torch.full((2000,), float("inf"), dtype=reference.acc_dtype(dtype))
    md[[3, 9]] = -1
    c = x[[3, 9, 400]]
    want = reference.update_min_d2(x, md, c, 30.0, 100)
    got = torch.ops.fastsel.update_min_d2(x.to(dev), md.to(dev), c.to(dev), 30.0, 100)
    same(got[0], want[0], "state")
    same(got[1], want[1], "summary")


@needs_ext
@pytest.mark.parametrize("N, n", [(8191, 100), (8192, 64), (9000, 63)])
def test_auto_mode_is_what_the_kernel_runs(N, n, rng):
    """fastsel::_auto_mode (what Python asks before watching a call) names the path "auto" takes."""
    mode = torch.ops.fastsel._auto_mode("greedy", N, n)
    assert mode == ("multi" if N >= 8192 and n >= 64 else "single")
    torch.ops.fastsel.greedy(torch.from_numpy(rng.standard_normal((N, 16))).float(), n, 0, None, "auto")
    passes, picks = torch.ops.fastsel._greedy_stats().tolist()[:2]
    assert (passes < picks) == (mode == "multi")
    assert torch.ops.fastsel._auto_mode("threshold_decay", N, n) == ("lazy" if mode == "multi" else "single")
    with pytest.raises(RuntimeError, match="op must be"):
        torch.ops.fastsel._auto_mode("nn", N, n)


def _difference_form(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The CPU kernels' squared distance, operation by operation in the accumulation dtype: four
    accumulators of W lanes (64 bytes each; lane l of accumulator q sums coordinates j + q W + l,
    j stepping 4 W), then whole W-blocks into accumulator 0, the accumulators added pairwise,
    their lanes from the first, the last coordinates one by one."""
    acc = x.dtype
    W = 64 // acc.itemsize
    d = x.shape[1]
    out = np.empty(x.shape[0], acc)
    for i, row in enumerate(x):
        t = row - c
        sq = t * t
        s = np.zeros((4, W), acc)
        j = 0
        while j + 4 * W <= d:
            s += sq[j:j + 4 * W].reshape(4, W)
            j += 4 * W
        while j + W <= d:
            s[0] += sq[j:j + W]
            j += W
        v = (s[0] + s[1]) + (s[2] + s[3])
        r = acc.type(0)
        for k in range(W):
            r = acc.type(r + v[k])
        for q in range(j, d):
            r = acc.type(r + sq[q])
        out[i] = r
    return out


@pytest.mark.skipif(not fastsel._backend.loaded(), reason="installed without the extension")
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_difference_form_summation_order_is_pinned(dtype, rng):
    """Every CPU kernel's distance is the difference form in one fixed order (whatever vector
    unit runs it): checked bit for bit against that order emulated in numpy."""
    for d in [1, 7, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 128, 129, 200, 384]:
        x = torch.from_numpy(rng.standard_normal((9, d)) * rng.uniform(0.01, 100, (9, 1))).to(dtype)
        acc = torch.float64 if dtype == torch.float64 else torch.float32
        state = torch.full((9,), math.inf, dtype=acc)
        got, _ = torch.ops.fastsel.update_min_d2(x, state, x[4:5], math.inf, 0)
        xa = x.to(acc).numpy()
        want = _difference_form(xa, xa[4])
        assert np.array_equal(got.numpy(), want), (d, np.flatnonzero(got.numpy() != want))


@pytest.mark.skipif(not fastsel._backend.loaded(), reason="installed without the extension")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_skinny_dots_within_the_gemm_bound(dtype, rng):
    """The pruned update's product against few picks: every tile shape (rows mod 3, picks mod 4,
    d below, at and past a vector) within the certified bound kappa |a| |p| of the exact dot
    product, and exact on small integers."""
    u = 2.0 ** -53 if dtype == torch.float64 else 2.0 ** -24
    for R, ns, d in [(1, 1, 1), (2, 3, 5), (3, 4, 8), (4, 5, 9), (7, 9, 33), (12, 17, 64), (5, 2, 1024), (31, 6, 130)]:
        a = rng.standard_normal((R, d)) * 3
        p = rng.standard_normal((ns, d))
        got = torch.ops.fastsel._skinny_dots(torch.from_numpy(a).to(dtype), torch.from_numpy(p).to(dtype)).double().numpy()
        a64, p64 = torch.from_numpy(a).to(dtype).double().numpy(), torch.from_numpy(p).to(dtype).double().numpy()
        exact = a64 @ p64.T
        bound = 4 * (d + 8) * u * np.outer(np.linalg.norm(a64, axis=1), np.linalg.norm(p64, axis=1))
        assert got.shape == (R, ns) and bool((np.abs(got - exact) <= bound).all()), (R, ns, d)
        ai, pi = rng.integers(-8, 9, (R, d)), rng.integers(-8, 9, (ns, d))
        gi = torch.ops.fastsel._skinny_dots(torch.from_numpy(ai).to(dtype), torch.from_numpy(pi).to(dtype))
        assert np.array_equal(gi.numpy(), (ai @ pi.T).astype(gi.numpy().dtype))
    with pytest.raises(RuntimeError, match="share d"):
        torch.ops.fastsel._skinny_dots(torch.zeros(2, 3), torch.zeros(2, 4))


# ------------------------------------------------------------------ moved here from test_reliability.py

# ------------------------------------------------------------------ 2. extreme magnitudes

@pytest.mark.parametrize("exp, dtype", [(70, torch.float32), (-80, torch.float32), (-140, torch.float32),
                                        (90, torch.bfloat16), (-90, torch.bfloat16)], ids=str)
def test_extreme_magnitudes_select_as_the_unscaled_pool(exp, dtype, backend, rng):
    base = torch.from_numpy(rng.standard_normal((300, 6))).to(dtype)
    x = base * 2.0 ** exp  # exact (a power of two), unless it leaves the dtype's range
    assert torch.equal(x / 2.0 ** exp, base) or exp == -140
    if exp == -140:  # subnormal float32 data: compare with the same stored values scaled back up
        base = (x.double() * 2.0 ** 140).to(dtype)
    g, g0 = fastsel.greedy(x, 50, 3, backend=backend), fastsel.greedy(base, 50, 3, backend=backend)
    assert torch.equal(g.indices, g0.indices)
    assert torch.allclose(g.distances[1:].double() / 2.0 ** exp, g0.distances[1:].double(), rtol=1e-6)
    t = fastsel.threshold_decay(x, 50, 3, backend=backend)
    t0 = fastsel.threshold_decay(base, 50, 3, backend=backend)
    assert torch.equal(t.indices, t0.indices) and t.tau0 == pytest.approx(t0.tau0 * 2.0 ** exp, rel=1e-12)
    k, k0 = fastsel.nn(x, k=2, exclude_self=True, backend=backend), fastsel.nn(base, k=2, exclude_self=True,
                                                                             backend=backend)
    assert torch.equal(k.indices, k0.indices)
    e, e0 = M.kl_entropy(x, backend=backend), M.kl_entropy(base, backend=backend)
    assert e == pytest.approx(e0 + 6 * exp * np.log(2), rel=1e-6, abs=1e-6)
    assert M.mnnd(x, backend=backend) / 2.0 ** exp == pytest.approx(M.mnnd(base, backend=backend), rel=1e-6)


# ------------------------------------------------------------------ moved here from test_reliability3.py

# ------------------------------------------------------------------ 3. mixed scales in float32

def _greedy64(x64, n, start):
    """Farthest-point sampling in float64 numpy, ties to the lowest index."""
    md = np.full(len(x64), np.inf)
    out, p = [], start
    for _ in range(n):
        out.append(p)
        md = np.minimum(md, ((x64 - x64[p]) ** 2).sum(1))
        md[out] = -1
        p = int(np.argmax(md))
    return out


def _mixed(rng, scale, N=200, d=4):
    x = np.zeros((N, d), np.float32)
    x[0] = [1, 0, 0, 0]
    x[1:] = (rng.standard_normal((N - 1, d)) * scale).astype(np.float32)
    return x


@pytest.mark.parametrize("scale", [1e-18, 1e-20, 1e-22, 1e-25, 1e-30, 1e-41])
def test_item3_mixed_scales_match_float64(scale, backend, rng):
    x = _mixed(rng, scale)
    x64 = x.astype(np.float64)
    assert len(np.unique(x64, axis=0)) == len(x64) or scale == 1e-41
    ref = _greedy64(x64, 10, 0)
    assert fastsel.greedy(x, 10, 0, backend=backend).indices.tolist() == ref
    for order in ("index", "random"):
        t = fastsel.threshold_decay(x, 10, 0, order=order, backend=backend)
        t64 = fastsel.threshold_decay(x64, 10, 0, order=order, backend=backend)
        assert t.indices.tolist() == t64.indices.tolist() and t.n_filled == t64.n_filled
    tb = fastsel.greedy(torch.from_numpy(x).to(torch.bfloat16), 10, 0, backend=backend)
    xb = torch.from_numpy(x).to(torch.bfloat16).double().numpy()
    assert tb.indices.tolist() == _greedy64(xb, 10, 0)


def test_item3_mixed_scales_through_the_cli(tmp_path, rng):
    x = _mixed(rng, 1e-25)
    np.save(tmp_path / "m.npy", x)
    ref = _greedy64(x.astype(np.float64), 10, 0)
    assert ref[:2] == [0, 1] and ref != list(range(10))
    for be in ("auto", "torch"):
        r = run("select", "--in", tmp_path / "m.npy", "--n", 10, "--start", 0, "--backend", be, "--out",
                tmp_path / "o.npy", "--json")
        assert r.exit_code == 0, r.output
        assert np.load(tmp_path / "o.npy").tolist() == ref
    r = run("select", "--in", tmp_path / "m.npy", "--n", 10, "--start", 0, "--method", "threshold", "--order", "index",
            "--out", tmp_path / "t.npy", "--json")
    assert r.exit_code == 0 and '"n_filled": 0' in r.stdout, r.output
    # float64 data whose differences underflow float64 itself: refused in one line, nothing written
    x64 = x.astype(np.float64) * 1e-140
    x64[0] = [1, 0, 0, 0]
    np.save(tmp_path / "m64.npy", x64)
    assert "underflow" in one_line(run("select", "--in", tmp_path / "m64.npy", "--n", 10, "--out",
                                       tmp_path / "o64.npy"), 1)
    assert not (tmp_path / "o64.npy").exists()


def test_item3_real_duplicates_are_still_filled(backend):
    x = np.zeros((12, 3), np.float32)
    x[6:] = 1.0
    g = fastsel.greedy(x, 4, 0, backend=backend)
    assert g.indices.tolist() == [0, 6, 1, 2] and g.distances.dtype == torch.float32
    t = fastsel.threshold_decay(x, 5, 0, order="index", backend=backend)
    assert t.n_filled == 3 and t.distances.dtype == torch.float32


def test_item3_mixed_scales_in_sets_and_streaming(backend, rng):
    from fastsel import streaming
    x = _mixed(rng, 1e-25)
    ref = _greedy64(x.astype(np.float64), 10, 0)
    s = fastsel.greedy_sets(torch.from_numpy(np.stack([x, x])), 10, 0, backend=backend)
    assert s.indices[0].tolist() == ref and s.indices[1].tolist() == ref
    for chunk in (37, 65536):
        assert streaming.greedy(x, 10, 0, chunk_rows=chunk, backend=backend).indices.tolist() == ref


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_item3_a_distinct_row_among_duplicates(dtype, backend):
    """The picks at distance 0 are true duplicates, but an unpicked row is not: it must come first."""
    x = torch.zeros(10, 4, dtype=dtype)
    x[0, 0] = 1.0
    x[5, 1] = 1e-30
    assert fastsel.greedy(x, 3, 0, backend=backend).indices.tolist() == [0, 1, 5]
    t = fastsel.threshold_decay(x, 3, 0, order="index", backend=backend)
    assert t.indices.tolist() == [0, 1, 5] and t.n_filled == 0
