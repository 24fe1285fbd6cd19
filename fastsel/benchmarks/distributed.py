"""Sharded selection scaling and chunk skipping, on this machine.

  fastsel bench distributed            # writes bench/results/bench_distributed.{json,md}

1. Time per greedy pick with P = 1, 2, 4 gloo processes on loopback (each with 1 thread), at two
   pool sizes 4x apart, with the bytes all ranks send per pick (must not grow with N).
2. Streaming greedy (fastsel.streaming) on a memory-mapped pool: share of chunk reads skipped on
   64 well-separated clusters stored cluster by cluster vs a uniform random pool.
"""
import datetime
import json
import os
import socket
import sys
import tempfile
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fastsel import distributed as D
from fastsel import streaming as S
from fastsel.io import save_json, save_text

D_FEAT, PICKS = 384, 256


def _worker(rank, world, port, N, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, D_FEAT, generator=g)
    lo, hi = D.shard_rows(N, rank, world)
    xl = x[lo:hi].clone()
    del x
    D.greedy(xl, 8, 0)  # warm-up
    dist.barrier()
    st = {}
    t0 = time.perf_counter()
    D.greedy(xl, PICKS, 0, stats=st)
    secs = time.perf_counter() - t0
    if rank == 0:
        with open(out, "w") as f:
            json.dump({"seconds_per_pick": secs / PICKS, "bytes_per_pick_all_ranks": st["bytes_per_pick"]}, f)
    dist.destroy_process_group()


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scaling():
    rows = []
    for N in (16384, 65536):
        for P in (1, 2, 4):
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "r.json")
                mp.start_processes(_worker, args=(P, _port(), N, out), nprocs=P, start_method="spawn", join=True)
                with open(out) as f:
                    r = json.load(f)
            rows.append({"N": N, "P": P, **r})
            print(f"N={N:6d} P={P}  {r['seconds_per_pick'] * 1e3:8.3f} ms/pick  "
                  f"{r['bytes_per_pick_all_ranks']:.0f} B/pick", file=sys.stderr)
    return rows


def skipping():
    rng = np.random.default_rng(0)
    N, d, k, n = 65536, 64, 64, 4096
    c = rng.standard_normal((k, d)) * 10
    pools = {"64 clusters, stored by cluster": (c[np.sort(rng.integers(k, size=N))]
                                                 + 0.05 * rng.standard_normal((N, d))).astype(np.float32),
             "uniform random": rng.standard_normal((N, d)).astype(np.float32)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, x in pools.items():
            path = os.path.join(tmp, "p.npy")
            np.save(path, x)
            pool = np.load(path, mmap_mode="r")
            st = {}
            t0 = time.perf_counter()
            S.greedy(pool, n, 0, chunk_rows=1024, stats=st)
            rows.append({"pool": name, "N": N, "d": d, "picks": n, "chunk_rows": 1024,
                         "seconds": time.perf_counter() - t0, **st})
            print(f"{name:32s} skip rate {st['skip_rate']:.3f}", file=sys.stderr)
    return rows


def run(a):
    res = {"meta": {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "cpu_count": os.cpu_count(), "torch": torch.__version__, "backend": "gloo (loopback)"},
           "scaling": scaling(), "skipping": skipping()}
    os.makedirs("bench/results", exist_ok=True)
    save_json("bench/results/bench_distributed.json", res)
    md = [f"# fastsel sharded selection ({res['meta']['date']}, {res['meta']['cpu_count']} cores, gloo)", "",
          "| N | P | ms/pick | bytes sent per pick (all ranks) |", "|---|---|---|---|"]
    md += [f"| {r['N']} | {r['P']} | {r['seconds_per_pick'] * 1e3:.3f} | {r['bytes_per_pick_all_ranks']:.0f} |"
           for r in res["scaling"]]
    md += ["", "| streaming pool | N | d | picks | chunk rows | chunk reads | skipped | skip rate | seconds |",
           "|---|---|---|---|---|---|---|---|---|"]
    md += [f"| {r['pool']} | {r['N']} | {r['d']} | {r['picks']} | {r['chunk_rows']} | {r['chunk_reads']} | "
           f"{r['chunk_skips']} | {r['skip_rate']:.3f} | {r['seconds']:.1f} |" for r in res["skipping"]]
    save_text("bench/results/bench_distributed.md", "\n".join(md) + "\n")
    print("\n".join(md))
