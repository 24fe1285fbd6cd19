"""Pruned vs unpruned multi-pick greedy, repeated and alternated in one process (median of R runs).

The bench table times each once; this script answers "is the pruned kernel slower where nothing
prunes?" within this machine's run-to-run noise: R runs of each mode per pool in ABBA order, medians
and their ratio, same picks checked every run.

    fastsel bench prune [--reps 6] [--N 65536] [--d 384] [--n 2048]

``--sweep`` answers "does pruning follow the data?": one run per pool with the cluster count on one
axis -- i.i.d. Gaussian; 16 ... 4,096 clusters of equal size and spread 0.2, and of varied size
(lognormal weights) and spread (0.1-0.5 per coordinate); nested clusters (clusters of 16
sub-clusters); MNIST pixels (real data, 60,000 x 784) -- centres 4 N(0, 1), rows interleaved;
pruned and unpruned fastsel against torch-quickfps (same first pick), same picks checked.

    fastsel bench prune --sweep [--N 65536] [--d 384] [--n 2048] [--out DIR]
"""
import json
import os
import statistics
import time

import numpy as np
import torch

from fastsel import data, features
from fastsel.benchmarks import select as B
from fastsel.benchmarks.common import commit, cpu_name, first_divergence, timed_result, try_import

SWEEP = ["gauss"] + [f"{kind}:{k}" for kind in ("equal", "varied") for k in (16, 64, 256, 1024, 4096)] \
    + ["nested:16", "nested:64", "mnist", "mnist-lenet"]


def sweep_pool(spec, N, d, seed=0):
    """A pool of the sweep: "gauss", "equal:C", "varied:C", "nested:C" (C clusters of 16
    sub-clusters), "mnist" (the MNIST training pixels in [0, 1]) or "mnist-lenet" (their 84-d LeNet
    features, fastsel.features "lenet": trained once and cached); N and d are ignored for MNIST."""
    kind, _, c = spec.partition(":")
    g = np.random.default_rng(seed)
    if kind == "gauss":
        return g.standard_normal((N, d), dtype=np.float32)
    if kind in ("mnist", "mnist-lenet"):
        im = data.load("mnist").images
        if kind == "mnist-lenet":
            return np.ascontiguousarray(features.embed(im, features.get("lenet", "cpu"), quiet=True), np.float32)
        return (im.reshape(len(im), -1) / np.float32(255)).astype(np.float32)
    C = int(c)
    if kind == "nested":
        sub = (4 * g.standard_normal((C, 1, d)) + g.standard_normal((C, 16, d))).reshape(-1, d)
        return (sub[g.integers(16 * C, size=N)] + 0.1 * g.standard_normal((N, d))).astype(np.float32)
    centres = 4 * g.standard_normal((C, d))
    if kind == "equal":
        lab, spread = g.integers(C, size=N), np.full(C, 0.2)
    elif kind == "varied":
        w = g.lognormal(0, 1, C)
        lab, spread = g.choice(C, size=N, p=w / w.sum()), g.uniform(0.1, 0.5, C)
    else:
        raise ValueError(f"unknown pool {spec!r}")
    return (centres[lab] + spread[lab, None] * g.standard_normal((N, d))).astype(np.float32)


def run_sweep(a):
    qf = try_import("torch_quickfps")
    head = f"{cpu_name()} · {torch.get_num_threads()} threads · torch {torch.__version__} · commit {commit()}"
    print(head)
    print(f"greedy, n = {a.n}, float32, first pick 0; one run each")
    print("| pool | N x d | unpruned s | pruned s | torch-quickfps s | quickfps / pruned | unpruned / pruned "
          "| pairs examined | pruned = unpruned | quickfps's first picks agreeing |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    torch.ops.fastsel.greedy(torch.randn(4096, a.d), 64, 0, None, "multi")  # warm-up
    for spec in SWEEP:
        x = torch.from_numpy(sweep_pool(spec, a.N, a.d))
        u, tu = timed_result(lambda: torch.ops.fastsel.greedy(x, a.n, 0, None, "multi-noprune"))
        p, tp = timed_result(lambda: torch.ops.fastsel.greedy(x, a.n, 0, None, "multi"))
        st = torch.ops.fastsel._greedy_stats().tolist()
        tq = qi = None
        if qf is not None:
            qi, tq = timed_result(lambda: qf.sample_idx(x, a.n, start_idx=0))
        same = torch.equal(u[0], p[0]) and torch.equal(u[2], p[2])  # pruned = unpruned, picks and state
        agree = None if qi is None else first_divergence(qi, p[0])
        r = {"pool": spec, "N": x.shape[0], "d": x.shape[1], "n": a.n, "unpruned_s": tu, "pruned_s": tp,
             "quickfps_s": tq, "pairs": st[2] / st[3], "same": bool(same),
             "quickfps_agreeing_picks": agree}
        rows.append(r)
        q = f"{tq:.3f} | {tq / tp:.2f}" if tq is not None else "– | –"
        print(f"| {spec} | {x.shape[0]} x {x.shape[1]} | {tu:.3f} | {tp:.3f} | {q} | {tu / tp:.2f} "
              f"| {r['pairs']:.3f} | {same} | {agree} |", flush=True)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        path = os.path.join(a.out, "bench_prune_sweep.json")
        with open(path + ".tmp", "w") as f:
            json.dump({"machine": head, "rows": rows}, f, indent=1)
        os.replace(path + ".tmp", path)
        print(f"wrote {path}")


def run(a):
    if getattr(a, "sweep", False):
        return run_sweep(a)
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
