"""Exact pruning in multi-pick greedy (csrc/cpu/prune.h): same picks, distances and state as the
unpruned kernel and the one-pick kernel, bit for bit; pruning really skips work on clustered
pools and stays off where a sample shows no cluster structure."""
import numpy as np
import pytest
import torch

import fastsel
from _helpers import DTYPES, RTOL, check_greedy_maximal, int_pool

pytestmark = pytest.mark.skipif(not fastsel._backend.loaded(), reason="installed without the extension")


def _clusters(rng, N=6000, d=24, k=40, spread=0.05, offset=0.0, scale=3.0):
    c = rng.standard_normal((k, d)) * scale + offset
    return c[rng.integers(k, size=N)] + spread * rng.standard_normal((N, d))


def _pools(rng):
    mixed = _clusters(rng)
    mixed[: len(mixed) // 5] = rng.standard_normal((len(mixed) // 5, 24)) * 3  # a fifth spread widely
    ints = int_pool(rng, 40, 10, -20, 21)  # integer clusters with exact duplicates and ties
    return {
        "clusters": _clusters(rng),
        "clusters_far": _clusters(rng, offset=40.0),
        "mixed": mixed,
        "integer_clusters": ints[rng.integers(40, size=5000)] + rng.integers(-1, 2, size=(5000, 10)),
    }


def _run(x, n, mode, start=3, md=None):
    out = torch.ops.fastsel.greedy(x, n, start, md, mode)
    stats = torch.ops.fastsel._greedy_stats().tolist()
    return out, stats


@pytest.mark.parametrize("pool", ["clusters", "clusters_far", "mixed", "integer_clusters"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_pruned_equals_unpruned_and_one_pick_bit_for_bit(pool, dtype, rng):
    x = torch.from_numpy(_pools(rng)[pool]).to(dtype)
    n = 1200
    (pi, pd, pm), st = _run(x, n, "multi")
    (ui, ud, um), _ = _run(x, n, "multi-noprune")
    (si, sd, sm), _ = _run(x, n, "single")
    for a, b in ((pi, ui), (pd, ud), (pm, um), (pi, si), (pd, sd), (pm, sm)):
        assert torch.equal(a, b)
    if pool != "mixed":  # (spread rows among the clusters: picks everywhere, little to prune; exact all the same)
        assert st[2] < 0.6 * st[3], f"pruning examined {st[2]} of {st[3]} (row, pick) pairs"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_pruned_picks_are_float64_maximal(dtype, rng):
    x = torch.from_numpy(_clusters(rng, N=3000, d=16, k=25)).to(dtype)
    (idx, _, _), st = _run(x, 700, "multi")
    assert st[2] < st[3]
    check_greedy_maximal(x, idx, RTOL[dtype])


def test_pruned_resume_from_state(rng):
    """Blocks are built from a sample, not from the picks: a call resuming from a state prunes too."""
    x = torch.from_numpy(_clusters(rng)).float()
    (i1, _, md), _ = _run(x, 300, "multi")
    (i2, d2, md2), st = _run(x, 700, "multi", start=-1, md=md)
    assert st[2] < 0.6 * st[3]
    (wi, wd, wm), _ = _run(x, 1000, "single")
    assert torch.equal(torch.cat([i1, i2]), wi) and torch.equal(md2, wm) and torch.equal(d2, wd[300:])


def test_no_pruning_without_cluster_structure(rng):
    x = torch.from_numpy(rng.standard_normal((6000, 64))).float()
    (pi, _, pm), st = _run(x, 600, "multi")
    (ui, _, um), _ = _run(x, 600, "multi-noprune")
    assert torch.equal(pi, ui) and torch.equal(pm, um)
    assert st[2] == st[3]  # every pair examined: the sample showed no clusters, no blocks built


def test_public_greedy_prunes_and_reports_progress(rng):
    x = torch.from_numpy(_clusters(rng, N=20000, d=32, k=64)).float()
    seen = []
    a = fastsel.greedy(x, 2000, 5, backend="cpp", progress=seen.append)
    b = fastsel.greedy(x, 2000, 5, backend="cpp", mode="single")
    assert sum(seen) == 2000 and all(k > 0 for k in seen)
    assert torch.equal(a.indices, b.indices) and torch.equal(a.distances, b.distances)


def test_duplicated_clusters_exact_ties(rng):
    """Every row repeated: ties everywhere; the lowest index wins in every mode."""
    base = _clusters(rng, N=1500, d=8, k=12).round(1)
    x = torch.from_numpy(np.concatenate([base, base, base])).float()
    (pi, pd, _), _ = _run(x, 1400, "multi")
    (si, sd, _), _ = _run(x, 1400, "single")
    assert torch.equal(pi, si) and torch.equal(pd, sd)


@pytest.mark.parametrize("k", [150, 300])
def test_cluster_count_follows_the_pool(k, rng):
    """More clusters than the old fixed 64 centres (varied spreads and sizes, rows interleaved): the
    centre count grows until the sample's clusters are covered, so pruning engages (with the fixed 64,
    96- and 256-cluster pools of 65,536 x 384 examined every pair); picks, distances and state stay
    those of the unpruned kernel."""
    d, N = 48, 20000
    c = 4 * rng.standard_normal((k, d))
    w = rng.lognormal(0, 1, k)
    lab = rng.choice(k, size=N, p=w / w.sum())
    x = torch.from_numpy(c[lab] + rng.uniform(0.1, 0.5, k)[lab, None] * rng.standard_normal((N, d))).float()
    (pi, pd, pm), st = _run(x, 2048, "multi")
    (ui, ud, um), _ = _run(x, 2048, "multi-noprune")
    assert torch.equal(pi, ui) and torch.equal(pd, ud) and torch.equal(pm, um)
    assert st[2] < 0.5 * st[3], f"pruning examined {st[2]} of {st[3]} (row, pick) pairs"


def test_many_tiny_clusters_do_not_build_blocks(rng):
    """Far more clusters than the centre budget (about two sample rows each): no blocks, every pair
    examined, and the same picks."""
    c = 4 * rng.standard_normal((6000, 32))
    x = torch.from_numpy(c[rng.integers(6000, size=12000)] + 0.1 * rng.standard_normal((12000, 32))).float()
    (pi, _, pm), st = _run(x, 600, "multi")
    (ui, _, um), _ = _run(x, 600, "multi-noprune")
    assert torch.equal(pi, ui) and torch.equal(pm, um)
    assert st[2] == st[3]


def test_bench_sweep_pools_have_their_clusters():
    """The bench sweep's pools: shapes as asked, and a C-cluster pool has about C distinct tight groups."""
    from fastsel.benchmarks.prune import sweep_pool
    for spec in ("gauss", "equal:16", "varied:64", "nested:4"):
        x = sweep_pool(spec, 2000, 24)
        assert x.shape == (2000, 24) and x.dtype == np.float32
    x = torch.from_numpy(sweep_pool("equal:16", 2000, 24))
    nn = torch.cdist(x, x).fill_diagonal_(float("inf")).min(1).values
    assert nn.max() < 0.2 * torch.cdist(x[:1], x).max()  # every row has a close neighbour: clusters
    g = torch.from_numpy(sweep_pool("gauss", 2000, 24))
    assert torch.cdist(g, g).fill_diagonal_(float("inf")).min(1).values.median() > 0.2 * torch.cdist(g[:1], g).max()


def test_wide_blobs_in_high_dimension_are_pruned():
    """8 blobs of spread 0.4 around N(0, 1) centres at d = 1,024 (torch-quickfps's sets grid with wider
    blobs): the blobs' radius is over a quarter of their spacing, a case the pruning rule once missed
    (every pair examined, 4-5x slower). Blocks now skip most pairs; the picks stay the unpruned ones."""
    from fastsel.benchmarks.select import _sets_pool
    x = _sets_pool(1, 6000, 1024, "blobs-wide")[0].contiguous()
    (p, _, _), stats = _run(x, 600, "multi", start=0)
    (q, _, _), base = _run(x, 600, "multi-noprune", start=0)
    assert torch.equal(p, q)
    assert base[2] == base[3]  # unpruned: every (row, pick) pair
    assert stats[2] < 0.3 * stats[3], stats  # 8 blobs: about one pair in 8 (1.00 before the fix)
