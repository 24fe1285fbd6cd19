"""Greedy on many sets at once (fastsel.ops.sets): each set's picks equal fastsel.greedy on it alone."""
import math

import numpy as np
import pytest
import torch

import fastsel
from fastsel.errors import FastselError
from _helpers import DTYPES, int_pool


def _alone(x, n, start, backend="auto"):
    return fastsel.greedy(x, n, start, backend=backend)


@pytest.mark.parametrize("B", [1, 3, 9])  # few sets: one after another; many: in parallel
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_padded_sets_equal_each_set_alone(B, dtype, backend, rng):
    x = torch.from_numpy(rng.standard_normal((B, 400, 5))).to(dtype)
    n = [int(v) for v in rng.integers(0, 120, size=B)]
    starts = [int(v) for v in rng.integers(0, 400, size=B)]
    r = fastsel.greedy_sets(x, n, starts, backend=backend)
    assert r.indices.shape == (B, max(n))
    for b in range(B):
        a = _alone(x[b], n[b], starts[b], backend) if n[b] else None
        if a is not None:
            assert torch.equal(r.indices[b, :n[b]], a.indices)
            assert torch.equal(r.distances[b, :n[b]], a.distances.to(r.distances.dtype))
        assert bool((r.indices[b, n[b]:] == -1).all()) and bool(r.distances[b, n[b]:].isnan().all())


def test_integer_sets_with_ties_and_large_sets_multi_pick(rng):
    """Exact ties on integer data; sets large enough for multi-pick (and pruning) inside."""
    x = torch.from_numpy(np.stack([int_pool(rng, 9000, 6, -3, 4) for _ in range(2)])).float()
    r = fastsel.greedy(x, 600, 7)  # 3-D input goes to greedy_sets
    for b in range(2):
        a = fastsel.greedy(x[b], 600, 7, mode="single")
        assert torch.equal(r.indices[b], a.indices) and torch.equal(r.distances[b], a.distances)


def test_default_starts_follow_seed_per_set(rng):
    x = torch.from_numpy(rng.standard_normal((5, 300, 4))).float()
    r = fastsel.greedy_sets(x, 20, seed=11)
    for b in range(5):
        assert torch.equal(r.indices[b], fastsel.greedy(x[b], 20, seed=11 + b).indices)


def test_mask_selects_among_valid_rows(rng):
    x = torch.from_numpy(rng.standard_normal((4, 200, 3))).float()
    mask = torch.from_numpy(rng.random((4, 200)) < 0.6)
    starts = [int(torch.nonzero(mask[b])[3]) for b in range(4)]
    r = fastsel.greedy_sets(x, 30, starts, mask=mask)
    for b in range(4):
        valid = torch.nonzero(mask[b]).reshape(-1)
        a = fastsel.greedy(x[b][valid], 30, 3)
        assert torch.equal(r.indices[b], valid[a.indices])
        assert bool(mask[b][r.indices[b]].all())


def test_packed_fps_like_torch_cluster(rng):
    sizes = [50, 1, 300, 0, 77]
    x = torch.from_numpy(rng.standard_normal((sum(sizes), 3))).float()
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    ptr = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    got = fastsel.fps(x, batch, ratio=0.25, random_start=False)
    assert torch.equal(got, fastsel.fps(x, ratio=0.25, ptr=ptr, random_start=False))
    want = []
    for b, s in enumerate(sizes):
        if s:
            k = math.ceil(0.25 * s)
            want.append(fastsel.greedy(x[ptr[b]:ptr[b + 1]], k, 0).indices + ptr[b])
    assert torch.equal(got, torch.cat(want))


def test_cpp_and_torch_backends_agree(rng):
    if not fastsel._backend.loaded():
        pytest.skip("installed without the extension")
    x = torch.from_numpy(rng.standard_normal((6, 250, 8)))
    a = fastsel.greedy_sets(x, 40, 2, backend="cpp")
    b = fastsel.greedy_sets(x, 40, 2, backend="torch")
    assert torch.equal(a.indices, b.indices)


@pytest.mark.parametrize("call, match", [
    (lambda x: fastsel.greedy_sets(x[0], 3), "3-D"),
    (lambda x: fastsel.greedy_sets(x, [3, 3]), "one per set"),
    (lambda x: fastsel.greedy_sets(x, 11), "not in"),
    (lambda x: fastsel.greedy_sets(x, 3, mask=torch.ones(3, 10)), "bool tensor"),
    (lambda x: fastsel.greedy_sets(x, 3, 0, mask=torch.zeros(3, 10, dtype=torch.bool)), "no valid row"),
    (lambda x: fastsel.fps(x.reshape(-1, 2), torch.tensor([1, 0] * 15)), "sorted"),
    (lambda x: fastsel.fps(x.reshape(-1, 2), ratio=1.5), "ratio"),
    (lambda x: fastsel.fps(x.reshape(-1, 2), ptr=[0, 5]), "ptr"),
])
def test_bad_set_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call(torch.randn(3, 10, 2))


def test_clustered_sets_pruned_multi_pick_equal_each_set_alone(rng):
    """Sets of tight clusters, large enough for pruned multi-pick passes (where the sets kernel
    skips the last pass's state update and reuses the centred copy set after set): many sets in
    parallel and of different sizes (mask), each equal to one-pick greedy on it alone."""
    B, N, d = 4, 9000, 48
    cen = rng.standard_normal((B, 8, d)) * 4
    x = torch.from_numpy(np.take_along_axis(cen, rng.integers(0, 8, (B, N, 1)), 1)
                         + 0.05 * rng.standard_normal((B, N, d))).float()
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[1, 8300:] = False  # a smaller set after a larger one on the same thread
    n = [700, 650, 800, 520]
    r = fastsel.greedy_sets(x, n, [0, 1, 2, 3], mask=mask)
    for b in range(B):
        rows = x[b][mask[b]]
        a = fastsel.greedy(rows, n[b], b, mode="single")
        assert torch.equal(r.indices[b, :n[b]], a.indices)
        assert torch.equal(r.distances[b, :n[b]], a.distances)
        passes = fastsel.greedy(rows, n[b], b, mode="multi")
        assert torch.equal(passes.indices, a.indices)


@pytest.mark.parametrize("kw, match", [
    (dict(batch=torch.tensor([0., .5, 1, 1])), "batch must be integers: entry 1 is 0.5"),
    (dict(batch=[0, 0, 1.5, 2]), "batch must be integers"),
    (dict(batch=torch.tensor([True, True, False, False])), "batch must be integers"),
    (dict(ptr=[0, 2.7, 4]), "ptr must be integers: entry 1 is 2.7"),
    (dict(ptr=torch.tensor([0., float("nan"), 4.])), "ptr must be integers"),
    (dict(ptr=[]), "ptr is empty"),
    (dict(ptr=[False, True, 4]), "ptr must be integers, got a bool"),
    (dict(batch=torch.zeros(4, 1, dtype=torch.long)), "batch must be one-dimensional"),
])
def test_fractional_set_ids_and_offsets_are_refused_not_truncated(kw, match):
    x = torch.randn(4, 3)
    with pytest.raises(FastselError, match=match):
        fastsel.fps(x, ratio=0.5, random_start=False, **kw)


def test_whole_valued_float_ids_and_offsets_still_work():
    x = torch.randn(6, 3)
    a = fastsel.fps(x, torch.tensor([0., 0, 0, 1, 1, 1]), ratio=0.5, random_start=False)
    b = fastsel.fps(x, ptr=[0., 3., 6.], ratio=0.5, random_start=False)
    c = fastsel.fps(x, torch.tensor([0, 0, 0, 1, 1, 1]), ratio=0.5, random_start=False)
    assert torch.equal(a, c) and torch.equal(b, c)


def test_random_start_must_be_a_bool():
    with pytest.raises(FastselError, match="random_start must be True or False"):
        fastsel.fps(torch.randn(6, 3), ratio=0.5, random_start="no")
