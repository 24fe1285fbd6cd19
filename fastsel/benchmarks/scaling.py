"""Greedy scaling curve: time per pick vs pool size, Gaussian and clustered pools.

For N = 16k ... 1M rows (d = 384, n = 4,096 picks, float32) it times fastsel's multi-pick greedy
(one run each, exact picks) and prints beside it, measured in the same run:
  * the memory floor of one-read-per-pick FPS: N * d * 4 bytes / read bandwidth, per pick;
  * the GEMM bound: 2 * N * d flops per pick at the GEMM rate measured here (the multi-pick
    update computes every (row, pick) distance once through a GEMM when nothing is pruned);
  * the share of (row, pick) pairs the kernel examined (below 1: exact pruning skipped the rest);
  * the time as a multiple of one torch GEMM of the same shape ((N x d) by (d x n): 2 N n d flops at
    the measured GEMM rate), and the process's peak RSS after the row (run one size per call to
    read a row's own peak).
Use it to predict your own pool: time ~ n * max(GEMM bound x examined share, a few passes' reads).

    fastsel bench scaling [--sizes 16384,65536,262144,1048576] [--n 4096] [--out bench/results]
"""
from __future__ import annotations

import datetime as dt
import os
import resource
import time

import torch

import fastsel
from fastsel.benchmarks import select as B
from fastsel.benchmarks.common import commit, cpu_name
from fastsel.io import save_json, save_text


def gemm_rate(d: int = 384) -> float:
    a = torch.randn(8192, d)
    b = torch.randn(d, 512)
    torch.mm(a, b)
    best = min(_t(lambda: torch.mm(a, b)) for _ in range(5))
    return 2 * 8192 * d * 512 / best


def _t(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run(a) -> dict:
    rate = gemm_rate(a.d)
    rows = []
    for N in _items(a.sizes, int):
        for kind in _items(a.pools, str):
            x = B._pool(N, a.d, torch.float32, kind=kind)
            bw, _ = B.read_bandwidth(x, reps=8)
            t = _t(lambda: fastsel.greedy(x, a.n, 0, backend="cpp", mode="multi"))
            passes, picks, pairs, pairs_all = torch.ops.fastsel._greedy_stats().tolist()
            r = dict(N=N, d=a.d, n=a.n, pool=kind, seconds=t, us_per_pick=t / a.n * 1e6,
                     floor_us_per_pick=N * a.d * 4 / bw * 1e6, gemm_us_per_pick=2 * N * a.d / rate * 1e6,
                     examined=pairs / max(pairs_all, 1), passes=passes, read_GBps=bw / 1e9,
                     x_gemm=t / (2 * N * a.d * a.n / rate),
                     peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20)
            rows.append(r)
            print(f"N={N:>8d} {kind:9s} {t:8.2f} s  {r['us_per_pick']:9.1f} us/pick  floor {r['floor_us_per_pick']:8.1f}"
                  f"  GEMM {r['gemm_us_per_pick']:8.1f}  examined {r['examined']:.3f}  passes {passes}", flush=True)
    meta = dict(date=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), machine=cpu_name(),
                threads=torch.get_num_threads(), torch=torch.__version__, commit=commit(),
                gemm_GFLOPs=rate / 1e9)
    res = {"meta": meta, "rows": rows}
    os.makedirs(a.out, exist_ok=True)
    save_json(os.path.join(a.out, "bench_scaling.json"), res)
    save_text(os.path.join(a.out, "bench_scaling.md"), markdown(res))
    print(markdown(res))
    return res


def _items(v, kind) -> list:
    """A comma list given as text ("16384,65536") or as the CLI's checked tuple."""
    return [kind(x) for x in (v.split(",") if isinstance(v, str) else v)]


def markdown(res: dict) -> str:
    m = res["meta"]
    out = [f"{m['date']} · {m['machine']} · {m['threads']} threads · torch {m['torch']} · commit {m['commit']}"
           f" · GEMM {m['gemm_GFLOPs']:.0f} GFLOP/s", "",
           "| N | n | pool | seconds (n picks) | µs / pick | memory floor µs / pick | GEMM bound µs / pick | × one GEMM |"
           " pairs examined | passes | peak RSS GiB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        out.append(f"| {r['N']:,} | {r['n']:,} | {r['pool']} | {r['seconds']:.2f} | {r['us_per_pick']:.0f} | "
                   f"{r['floor_us_per_pick']:.0f} | {r['gemm_us_per_pick']:.0f} | {r.get('x_gemm', float('nan')):.2f} | "
                   f"{r['examined']:.3f} | {r['passes']} | {r.get('peak_rss_gb', float('nan')):.2f} |")
    return "\n".join(out) + "\n"
