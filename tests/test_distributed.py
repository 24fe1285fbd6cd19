"""Sharded ops over a gloo process group on loopback, spawned by the test (2 and 4 processes),
compared with the single-process ops: identical indices, shards of unequal size and an empty one."""
import math
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from click.testing import CliRunner

import fastsel
from fastsel import distributed as D
from fastsel.cli.main import cli

from _helpers import BACKENDS, clustered_pool, free_port, int_pool


def _pools():
    rng = np.random.default_rng(1234)
    return {
        "gauss": torch.from_numpy(rng.standard_normal((300, 12))).float(),
        "clusters_far": torch.from_numpy(clustered_pool(rng, 300, 12, clusters=6, spread=0.05, offset=30.0)).float(),
        "integers": torch.from_numpy(int_pool(rng, 300, 4, -2, 3)).float(),  # ties and duplicates
        # mixed scales (issue 23, item 3): one row of size 1 beside rows 1e-25 apart (float32 squares
        # their differences to 0) and 1e-21 apart (to subnormals): the sharded ops must rerun in float64
        "mixed_zero": _mixed(rng, 1e-25),
        "mixed_tiny": _mixed(rng, 1e-21),
    }


def _mixed(rng, scale):
    x = torch.from_numpy(rng.standard_normal((300, 4)) * scale).float()
    x[0] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    return x


def _splits(N, world):
    even = [D.shard_rows(N, r, world) for r in range(world)]
    if world == 2:
        uneven = [(0, 37), (37, N)]
    else:
        uneven = [(0, 0), (0, 137), (137, 140), (140, N)]  # rank 0 empty
    return {"even": even, "uneven": uneven}


CASES = [("greedy", {}), ("threshold", {"decay": "empty-pass", "order": "index"}),
         ("threshold", {"decay": "every-pass", "order": "index"}), ("threshold", {"decay": "empty-pass"}),
         ("threshold", {"decay": "every-pass", "seed": 5}), ("threshold", {"tau": None}), ("nn", {})]


def _threshold_out(r):
    facts = [int(r.n_filled), r.passes, r.decays, int(r.tau0 * 1e6), int(r.tau * 1e6)]
    return torch.cat([r.indices, torch.tensor(facts)])


def _run_case(op, kw, x, lo, hi, backend, group=None):
    xl = x[lo:hi]
    if op == "greedy":
        return D.greedy(xl, 120, 7, backend=backend, group=group).indices
    if op == "threshold":
        kw = {"tau": 1.5} | kw
        return _threshold_out(D.threshold_decay(xl, 150, 7, alpha=0.8, backend=backend, group=group, **kw))
    r = D.nn(x[:200], xl, k=3, backend=backend, group=group)
    s = D.nn(x, xl, k=2, exclude_self=True, backend=backend, group=group)
    return torch.cat([r.indices.flatten(), s.indices.flatten()])


def _single(op, kw, x, backend):
    if op == "greedy":
        return fastsel.greedy(x, 120, 7, backend=backend).indices
    if op == "threshold":
        kw = {"tau": 1.5} | kw
        return _threshold_out(fastsel.threshold_decay(x, 150, 7, alpha=0.8, backend=backend, **kw))
    r = fastsel.nn(x[:200], x, k=3, backend=backend)
    s = fastsel.nn(x, k=2, exclude_self=True, backend=backend)
    return torch.cat([r.indices.flatten(), s.indices.flatten()])


def _worker(rank, world, port, backend, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=__import__("datetime").timedelta(seconds=60))
    try:
        res = {}
        for pname, x in _pools().items():
            for sname, split in _splits(x.shape[0], world).items():
                lo, hi = split[rank]
                for ci, (op, kw) in enumerate(CASES):
                    res[f"{pname}/{sname}/{ci}"] = _run_case(op, kw, x, lo, hi, backend)
        stats = {}
        D.greedy(_pools()["gauss"][slice(*D.shard_rows(300, rank, world))], 50, 0, backend=backend, stats=stats)
        res["bytes_per_pick"] = torch.tensor(stats["bytes_per_pick"])
        if rank == 0:
            torch.save(res, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("backend", BACKENDS)
def test_sharded_ops_equal_single_process(world, backend, tmp_path):
    out = str(tmp_path / "res.pt")
    ctx = mp.start_processes(_worker, args=(world, free_port(), backend, out), nprocs=world, join=False,
                             start_method="spawn")
    while not ctx.join(timeout=120):
        pass
    res = torch.load(out, weights_only=True)
    for pname, x in _pools().items():
        for sname in ("even", "uneven"):
            for ci, (op, kw) in enumerate(CASES):
                want = _single(op, kw, x, backend)
                got = res[f"{pname}/{sname}/{ci}"]
                assert torch.equal(got, want), f"{pname}/{sname}/{op}{kw}"
    d = 12
    # per pick: one row (+ 8 bytes) broadcast by its owner + two 8-byte all-reduces from every rank
    assert (d * 4 + 8) * 0.9 <= float(res["bytes_per_pick"]) <= (d * 4 + 8) + 16 * world + 1e-9


def test_shard_rows_cover_the_pool():
    for N, world in [(10, 3), (3, 4), (0, 2), (1000, 7)]:
        spans = [D.shard_rows(N, r, world) for r in range(world)]
        assert spans[0][0] == 0 and spans[-1][1] == N
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
        assert max(b - a for a, b in spans) - min(b - a for a, b in spans) <= 1


def test_one_rank_equals_single_process():
    if not dist.is_available():
        pytest.skip("torch.distributed unavailable")
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    dist.init_process_group("gloo", rank=0, world_size=1)
    try:
        x = torch.randn(60, 3)
        a, b = D.threshold_decay(x, 30, seed=3), fastsel.threshold_decay(x, 30, seed=3)
        assert torch.equal(a.indices, b.indices) and torch.equal(a.tau_at, b.tau_at)
        assert a.info() == b.info() and a.decays >= 1
        with pytest.raises(ValueError, match="tau must be"):
            D.threshold_decay(torch.randn(10, 2), 3, 0, tau=-1.0)
        assert torch.equal(D.greedy(x, 20, 1).indices, fastsel.greedy(x, 20, 1).indices)
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------ moved here from test_reliability.py

# ------------------------------------------------------------------ 3. ranks that see different pools

def _rank_worker(rank, world, port, paths, outdir, q):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    r = CliRunner().invoke(cli, ["select", "--in", paths[rank], "-n", "10", "--out", os.path.join(outdir, "o.npy")])
    q.put((rank, r.exit_code, r.stderr))


def test_torchrun_ranks_with_different_pools_fail_together(tmp_path, rng):
    import torch.multiprocessing as mp
    x = rng.standard_normal((100, 4)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", x[:90])  # another node's copy with fewer rows
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    port = free_port()
    paths = [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    procs = [ctx.Process(target=_rank_worker, args=(r, 2, port, paths, str(tmp_path), q)) for r in range(2)]
    for p in procs:
        p.start()
    res = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    for rank, code, err in res:
        assert code == 1, (rank, err)
        assert "ranks disagree on the pool" in err and err.strip().count("\n") == 0
    assert not (tmp_path / "o.npy").exists()
