"""Pruned vs unpruned multi-pick greedy, repeated and alternated in one process (median of R runs).

The bench table times each once; this script answers "is the pruned kernel slower where nothing
prunes?" within this machine's run-to-run noise: R runs of each mode per pool in ABBA order, medians
and their ratio, same picks checked every run.

    fastsel bench prune [--reps 6] [--N 65536] [--d 384] [--n 2048]
"""
import statistics
import time

import torch

from fastsel.benchmarks import select as B
from fastsel.benchmarks.common import commit, cpu_name


def run(a):
    print(f"{cpu_name()} · {torch.get_num_threads()} threads · torch {torch.__version__} · commit {commit()}")
    print("| pool | unpruned median s | pruned median s | unpruned / pruned | pairs examined | same picks |")
    print("|---|---|---|---|---|---|")
    for kind in ("gauss", "clustered"):
        x = B._pool(a.N, a.d, torch.float32, kind=kind)
        torch.ops.fastsel.greedy(x, 64, 0, None, "multi")  # warm-up
        t = {"multi-noprune": [], "multi": []}
        same, frac = True, 1.0
        for rep in range(a.reps):
            out = {}
            for mode in (list(t) if rep % 2 == 0 else list(t)[::-1]):  # ABBA: no mode always runs second
                t0 = time.perf_counter()
                out[mode] = torch.ops.fastsel.greedy(x, a.n, 0, None, mode)
                t[mode].append(time.perf_counter() - t0)
                if mode == "multi":
                    st = torch.ops.fastsel._greedy_stats().tolist()
                    frac = st[2] / st[3]
            same = same and all(torch.equal(u, v) for u, v in zip(out["multi"], out["multi-noprune"]))
        mu, mp = statistics.median(t["multi-noprune"]), statistics.median(t["multi"])
        print(f"| {kind} | {mu:.3f} | {mp:.3f} | {mu / mp:.2f} | {frac:.3f} | {same} |", flush=True)
