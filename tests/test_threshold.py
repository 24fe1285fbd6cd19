import math

import numpy as np
import pytest
import torch

import fastsel
import fastsel._backend as B
from fastsel import reference
from fastsel.ops._inputs import DEFAULT_ALPHA, draw_start
from _helpers import DTYPES, RTOL, as_t, cuda_only, int_pool, kernel_device, same, tf32


def literal(x64, n, start, tau, alpha, every_pass=False, max_passes=200000, order=None):
    """Algorithm 2 exactly as printed (float64, squared distances vs tau^2), no pass skipping;
    each pass scans the rows in ``order`` (default: index order)."""
    x64 = np.asarray(x64, dtype=np.float64)
    N = len(x64)
    order = range(N) if order is None else list(order)
    D = [start]
    taus = [tau]
    passes = 0
    while len(D) < n:
        added = False
        for i in order:
            if i in D:
                continue
            diff = x64[D] - x64[i]
            if (diff * diff).sum(1).min() > tau * tau:
                D.append(i)
                taus.append(tau)
                added = True
            if len(D) == n:
                return D, taus
        if every_pass or not added:
            tau *= alpha
        passes += 1
        assert passes < max_passes, "the literal algorithm does not terminate here"
    return D, taus


def scan(order, N, seed=0):
    return None if order == "index" else fastsel.scan_order(N, seed).tolist()


@pytest.mark.parametrize("order", ["index", "random"])
@pytest.mark.parametrize("decay", ["empty-pass", "every-pass"])
@pytest.mark.parametrize("tau, alpha", [(2.0, 0.9), (50.0, 0.5), (0.5, 0.99), (1e3, 0.3)])
def test_equals_literal_algorithm_on_integer_data(backend, decay, tau, alpha, order, rng):
    x = int_pool(rng, 60, 3, -3, 4)
    # no exact duplicates, so the literal algorithm terminates
    x = np.unique(x, axis=0)
    rng.shuffle(x)
    n = min(40, len(x))
    seed = int(rng.integers(1000))
    want, want_tau = literal(x, n, 4, tau, alpha, decay == "every-pass", order=scan(order, len(x), seed))
    r = fastsel.threshold_decay(torch.from_numpy(x).float(), n, 4, tau, alpha, decay=decay, order=order,
                                seed=seed, backend=backend)
    assert r.indices.tolist() == want
    assert r.tau_at.tolist() == want_tau
    assert r.n_filled == 0


@pytest.mark.parametrize("order", ["index", "random"])
@pytest.mark.parametrize("decay", ["empty-pass", "every-pass"])
def test_equals_literal_algorithm_on_random_float64(backend, decay, order, rng):
    x = rng.standard_normal((80, 5))
    want, _ = literal(x, 50, 0, 3.0, 0.8, decay == "every-pass", order=scan(order, 80))
    r = fastsel.threshold_decay(torch.from_numpy(x), 50, 0, 3.0, 0.8, decay=decay, order=order, backend=backend)
    assert r.indices.tolist() == want


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_dtypes_on_integer_data(backend, dtype, rng):
    x = np.unique(int_pool(rng, 200, 4, -4, 5), axis=0)
    n = min(120, len(x))
    want, _ = literal(x, n, 1, 4.0, 0.7, order=scan("random", len(x)))
    r = fastsel.threshold_decay(torch.from_numpy(x).to(dtype), n, 1, 4.0, 0.7, backend=backend)
    assert r.indices.tolist() == want


def test_hand_case(backend):
    # tau = 2.5 accepts 0 (start), then 5 (d=5), then 9 (d=4 > 2.5); 2 (d=2) waits for tau*0.5 = 1.25
    x = torch.tensor([[0.0], [1.0], [2.0], [5.0], [9.0], [7.0]])
    r = fastsel.threshold_decay(x, 4, 0, 2.5, 0.5, order="index", backend=backend)
    assert r.indices.tolist() == [0, 3, 4, 2]
    assert r.tau_at.tolist() == [2.5, 2.5, 2.5, 1.25]
    assert r.distances[1:].tolist() == [5.0, 4.0, 2.0]


def test_accept_rule_is_strict(backend):
    # row 1 is at exactly tau: not accepted until tau decays
    x = torch.tensor([[0.0], [2.0], [10.0]])
    r = fastsel.threshold_decay(x, 3, 0, 2.0, 0.5, order="index", backend=backend)
    assert r.indices.tolist() == [0, 2, 1]
    assert r.tau_at.tolist() == [2.0, 2.0, 1.0]


def test_accepts_within_a_pass_count(backend):
    # row 2 is far from row 0 but within tau of row 1, accepted earlier in the same pass
    x = torch.tensor([[0.0], [10.0], [10.5], [20.0]])
    r = fastsel.threshold_decay(x, 4, 0, 3.0, 0.1, order="index", backend=backend)
    assert r.indices.tolist() == [0, 1, 3, 2]


def test_terminates_when_only_duplicates_remain(backend):
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [3.0, 4.0], [0.0, 0.0]])
    r = fastsel.threshold_decay(x, 5, 0, 1.0, 0.5, order="index", backend=backend)
    assert r.indices.tolist() == [0, 2, 1, 3, 4]
    assert r.n_filled == 3
    assert r.distances[2:].tolist() == [0.0, 0.0, 0.0]


def test_every_pass_decays_more(backend, rng):
    x = torch.from_numpy(rng.standard_normal((150, 3)))
    a = fastsel.threshold_decay(x, 100, 0, 4.0, 0.9, decay="empty-pass", backend=backend)
    b = fastsel.threshold_decay(x, 100, 0, 4.0, 0.9, decay="every-pass", backend=backend)
    assert b.tau <= a.tau


def test_decay_rules_give_the_same_selection(backend, rng):
    """A pass at a fixed tau leaves every unaccepted row within tau of an accepted one, so the next
    pass at that tau is empty: decaying after it (empty-pass) or at once (every-pass) picks the same."""
    for trial in range(10):
        x = torch.from_numpy(rng.standard_normal((int(rng.integers(20, 200)), int(rng.integers(1, 6)))))
        n = int(rng.integers(1, len(x) + 1))
        a = fastsel.threshold_decay(x, n, alpha=0.8, decay="empty-pass", seed=trial, backend=backend)
        b = fastsel.threshold_decay(x, n, alpha=0.8, decay="every-pass", seed=trial, backend=backend)
        assert torch.equal(a.indices, b.indices), trial


@pytest.mark.parametrize("N", [1, 2, 3, 7])
def test_tiny_sizes(backend, N, rng):
    x = torch.from_numpy(rng.standard_normal((N, 2))).float()
    r = fastsel.threshold_decay(x, N, 0, 1.0, 0.5, backend=backend)
    assert sorted(r.indices.tolist()) == list(range(N))


def test_chunked_with_progress_equals_one_call(backend, rng):
    x = torch.from_numpy(int_pool(rng, 1200, 6)).float()
    seen = []
    a = fastsel.threshold_decay(x, 600, 3, 6.0, 0.8, backend=backend, progress=seen.append)
    b = fastsel.threshold_decay(x, 600, 3, 6.0, 0.8, backend=backend)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.tau_at, b.tau_at)
    assert a.tau == b.tau and a.n_filled == b.n_filled
    assert sum(seen) == 600 and len(seen) > 1


@pytest.mark.skipif(not fastsel._backend.loaded(), reason="installed without the extension (cpp vs torch)")
def test_backends_agree_on_float64_default_tau(rng):
    x = torch.from_numpy(rng.standard_normal((400, 8)))
    a = fastsel.threshold_decay(x, 150, 9, backend="torch")
    b = fastsel.threshold_decay(x, 150, 9, backend="cpp")
    assert torch.equal(a.indices, b.indices) and a.tau == b.tau


def test_default_tau_is_data_derived(backend, rng):
    x = torch.from_numpy(rng.standard_normal((500, 8)))
    t = fastsel.default_tau(x, 100, backend=backend)
    assert t == pytest.approx(float((x - x[100]).norm(dim=1).max()), rel=1e-12)
    assert t == fastsel.default_tau(x, 100, backend=backend)
    assert fastsel.default_tau(3 * x, 100, backend=backend) == pytest.approx(3 * t)
    assert fastsel.default_tau(torch.zeros(10, 3), 5, backend=backend) == 1.0
    # the default start: drawn from the seed, as the filter's
    s = draw_start(500, 7)
    assert fastsel.default_tau(x, seed=7, backend=backend) == fastsel.default_tau(x, s, backend=backend)
    r = fastsel.threshold_decay(x, 50, seed=7, backend=backend)
    assert r.tau0 == fastsel.default_tau(x, s, backend=backend) and r.indices[0] == s


@pytest.mark.parametrize("kw, match", [
    (dict(tau=0.0), "tau must be"), (dict(tau=-1.0), "tau must be"), (dict(tau=math.inf), "tau must be"),
    (dict(alpha=0.0), "alpha must be"), (dict(alpha=1.0), "alpha must be"), (dict(alpha=1.5), "alpha must be"),
    (dict(decay="never"), "decay must be"), (dict(order="reverse"), "order must be"),
])
def test_bad_arguments(backend, kw, match):
    x = torch.randn(10, 3)
    args = dict(tau=1.0, alpha=0.5) | kw
    decay, order = args.pop("decay", "empty-pass"), args.pop("order", "random")
    with pytest.raises(ValueError, match=match):
        fastsel.threshold_decay(x, 3, 0, args["tau"], args["alpha"], decay=decay, order=order, backend=backend)


def test_reference_matches_kernel_state(rng):
    pytest.importorskip("fastsel._C")
    x = torch.from_numpy(int_pool(rng, 300, 5)).float()
    a = reference.threshold_decay(x, 77, 2, 5.0, 0.9, False)
    b = torch.ops.fastsel.threshold_decay(x, 77, 2, 5.0, 0.9, False)
    for u, v in zip(a, b):
        assert torch.equal(u, v)


# ---------------------------------------------------------------- chunked accepts (cpp)

needs_ext = pytest.mark.skipif(not fastsel._backend.loaded(), reason="installed without the extension")


@needs_ext
@pytest.mark.parametrize("decay", ["empty-pass", "every-pass"])
@pytest.mark.parametrize("tau, alpha", [(2.0, 0.9), (50.0, 0.5), (0.5, 0.99)])
@pytest.mark.parametrize("mode", ["chunked", "lazy"])
def test_chunked_equals_literal_algorithm(decay, tau, alpha, mode, rng):
    x = np.unique(int_pool(rng, 60, 3, -3, 4), axis=0)
    rng.shuffle(x)
    n = min(40, len(x))
    want, want_tau = literal(x, n, 4, tau, alpha, decay == "every-pass", order=scan("random", len(x)))
    r = fastsel.threshold_decay(torch.from_numpy(x).float(), n, 4, tau, alpha, decay=decay, mode=mode)
    assert r.indices.tolist() == want and r.tau_at.tolist() == want_tau


@needs_ext
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("pool", ["gauss", "clusters_far", "integers"])
@pytest.mark.parametrize("decay", ["empty-pass", "every-pass"])
@pytest.mark.parametrize("mode", ["chunked", "lazy"])
def test_chunked_is_bit_identical_to_single(dtype, pool, decay, mode, rng):
    c = rng.standard_normal((16, 32)) * 2 + 40.0
    x = {"gauss": rng.standard_normal((2500, 32)),
         "clusters_far": c[rng.integers(16, size=2500)] + 0.05 * rng.standard_normal((2500, 32)),
         "integers": int_pool(rng, 2500, 8, -3, 4)}[pool]
    x = torch.from_numpy(x).to(dtype)
    n = 2500 if pool == "integers" else 900  # integers: runs into the duplicate fill
    a = fastsel.threshold_decay(x, n, 5, decay=decay, mode="single", backend="cpp")
    b = fastsel.threshold_decay(x, n, 5, decay=decay, mode=mode, backend="cpp")
    assert torch.equal(a.indices, b.indices) and torch.equal(a.distances, b.distances)
    assert torch.equal(a.tau_at, b.tau_at) and a.tau == b.tau and a.n_filled == b.n_filled
    assert (a.passes, a.decays) == (b.passes, b.decays)


@needs_ext
def test_chunked_resumes_from_state(rng):
    x = torch.from_numpy(rng.standard_normal((3000, 12))).float()
    whole = fastsel.threshold_decay(x, 1200, 0, 3.0, 0.8, mode="single")
    seen = []
    chunked = fastsel.threshold_decay(x, 1200, 0, 3.0, 0.8, mode="chunked", progress=seen.append)
    assert len(seen) > 1 and torch.equal(whole.indices, chunked.indices) and whole.tau == chunked.tau


@needs_ext
@pytest.mark.parametrize("tau", [None, 1e6, 0.05])  # default; decays many times; accepts nearly every row
def test_lazy_at_many_taus_and_with_progress(tau, rng):
    c = rng.standard_normal((30, 24)) * 3
    x = torch.from_numpy(c[rng.integers(30, size=9000)] + 0.3 * rng.standard_normal((9000, 24))).float()
    a = fastsel.threshold_decay(x, 1500, 2, tau, 0.9, mode="single")
    seen = []
    b = fastsel.threshold_decay(x, 1500, 2, tau, 0.9, progress=seen.append)  # auto: lazy, one watched call
    assert torch.equal(a.indices, b.indices) and torch.equal(a.distances, b.distances)
    assert torch.equal(a.tau_at, b.tau_at) and a.tau == b.tau and sum(seen) == 1500


@needs_ext
def test_lazy_state_is_not_resumable(rng):
    x = torch.from_numpy(rng.standard_normal((500, 4))).float()
    _, _, _, md, st = torch.ops.fastsel.threshold_decay(x, 50, 0, 1.0, 0.9, False, None, None, "lazy")
    with pytest.raises(RuntimeError, match="lazy"):
        torch.ops.fastsel.threshold_decay(x, 10, -1, 1.0, 0.9, False, md, st, "lazy")


def test_bad_mode():
    with pytest.raises(ValueError, match="mode must be"):
        fastsel.threshold_decay(torch.randn(4, 2), 2, 0, 1.0, mode="multi")


# ---------------------------------------------------------------- every device (cpu, and cuda when present)
# The compiled kernels of each device against the literal Algorithm 2 (fastsel.reference) on exact
# data, against float64 on random data; chunked and lazy bit-identical to single on the device.

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("decay", ["empty-pass", "every-pass"])
@pytest.mark.parametrize("mode", ["single", "chunked"])
def test_device_threshold_integer_data_equals_reference(device, dtype, decay, mode, rng):
    dev = kernel_device(device)
    x = as_t(int_pool(rng, 1500, 6, -3, 4), dtype)
    every = decay == "every-pass"
    want = reference.threshold_decay(x, 1200, 2, 4.0, 0.8, every)
    got = torch.ops.fastsel.threshold_decay(x.to(dev), 1200, 2, 4.0, 0.8, every, None, None, mode)
    for g, w, what in zip(got, want, ("indices", "squared distances", "tau_at", "state", "tau/pos/added/filled")):
        same(g, w, what)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
@pytest.mark.parametrize("allow_tf32", [False, True])
def test_device_threshold_random_chunked_equals_single_and_float64(device, dtype, allow_tf32, rng):
    dev = kernel_device(device)
    if allow_tf32:
        cuda_only(dev, "TF32 is a CUDA setting")
    x = as_t(rng.standard_normal((5000, 40)), dtype)
    want = fastsel.threshold_decay(x, 1500, start=0, tau=9.0, alpha=0.9, backend="torch")
    with tf32(allow_tf32):
        a = fastsel.threshold_decay(x.to(dev), 1500, start=0, tau=9.0, alpha=0.9, backend="cpp", mode="chunked")
        b = fastsel.threshold_decay(x.to(dev), 1500, start=0, tau=9.0, alpha=0.9, backend="cpp", mode="single")
    assert torch.equal(a.indices, b.indices) and torch.equal(a.distances, b.distances)
    # the fallback sums in another order: same accepts, distances within float rounding
    assert torch.equal(a.indices.cpu(), want.indices)
    torch.testing.assert_close(a.distances.cpu()[1:], want.distances[1:], rtol=RTOL[dtype], atol=0)
    # every accept was strictly above the threshold in force, checked in float64
    x64 = x.double().numpy()
    acc = a.indices.cpu().numpy()
    for t in range(1, len(acc), 97):
        d = np.sqrt(((x64[acc[:t]] - x64[acc[t]]) ** 2).sum(1)).min()
        assert d > a.tau_at[t].item() * (1 - RTOL[dtype])


def test_device_threshold_duplicates_fill_and_resume(device, rng):
    dev = kernel_device(device)
    x = torch.tensor([[0.0], [5.0], [0.0], [5.0], [2.0]])
    want = fastsel.threshold_decay(x, 5, start=0, tau=1.0, backend="torch")
    got = fastsel.threshold_decay(x.to(dev), 5, start=0, tau=1.0, backend="cpp")
    assert torch.equal(got.indices.cpu(), want.indices) and got.n_filled == want.n_filled
    y = as_t(rng.standard_normal((3000, 16)), torch.float32).to(dev)
    whole = fastsel.threshold_decay(y, 900, start=1, tau=5.0, backend="cpp").indices
    seen = []
    parts = fastsel.threshold_decay(y, 900, start=1, tau=5.0, backend="cpp", progress=seen.append).indices
    assert sum(seen) == 900 and torch.equal(whole, parts)


@pytest.mark.parametrize("mode", ["lazy", "chunked", "single"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_scan_order_reads_through_the_order_as_a_permuted_copy(mode, dtype, rng):
    """The op's `order` argument (no permuted copy in the lazy mode) gives, position for position,
    what the same op gives on the permuted copy -- picks, distances, taus, state."""
    if not B.has_kernel("threshold_decay", "cpu"):
        pytest.skip("the C++ extension is not built")
    x = torch.from_numpy(rng.standard_normal((3000, 24))).to(dtype)
    x[2000:2100] = x[:100]  # duplicates: the fill path
    perm = torch.from_numpy(rng.permutation(3000)).to(torch.int64)
    for n, tau in ((40, 6.0), (600, 2.0), (2990, 0.5)):
        a = torch.ops.fastsel.threshold_decay(x[perm], n, 7, tau, 0.8, False, None, None, mode)
        b = torch.ops.fastsel.threshold_decay(x, n, 7, tau, 0.8, False, None, None, mode, perm)
        for u, v in zip(a[:3] + a[4:], b[:3] + b[4:]):
            assert torch.equal(u, v), (mode, n)
    with pytest.raises(RuntimeError, match="permutation"):
        torch.ops.fastsel.threshold_decay(x, 5, 0, 1.0, 0.5, False, None, None, mode, torch.zeros(3000, dtype=torch.int64))


def test_random_order_result_is_unchanged_by_the_read_through(rng):
    """fastsel.threshold_decay(order="random") on the C++ backend equals the permuted copy's run,
    mapped back -- the torch backend does exactly that."""
    if not B.has_kernel("threshold_decay", "cpu"):
        pytest.skip("the C++ extension is not built")
    x = torch.from_numpy(rng.standard_normal((20000, 16)).astype(np.float32))
    for tau in (None, 3.0):
        r = fastsel.threshold_decay(x, 300, 5, tau, seed=11, backend="cpp", mode="lazy")
        perm = fastsel.scan_order(20000, 11)
        start = int(torch.argsort(perm)[5])
        t = r.tau0 if tau is None else tau
        ref = torch.ops.fastsel.threshold_decay(x[perm], 300, start, t, DEFAULT_ALPHA, False,
                                                None, None, "lazy")
        assert torch.equal(r.indices, perm[ref[0]])
