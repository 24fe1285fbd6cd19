"""The threshold filter's default tau: does it decay, does alpha matter, what does it cost?

On Gaussian, clustered and MNIST-pixel pools, per selector: the selection's smallest pairwise
distance and KL entropy (higher = more spread), the threshold facts (tau0 -> tau_end, decays,
passes) and the time. Selectors: greedy; threshold at the default tau (largest distance from the
first pick) with alpha 0.8 / 0.9 / 0.95 in random scan order; the previous default (tau = mean
1-NN spacing of a strided subset, index order: it filled the set in the first pass); a uniform
random subset. Then threshold's time at the default tau beside greedy's on 65,536 x 384, n = 2,048
(goal <= 1.5x), in the same run.

    fastsel bench tau [--out bench/results/tau]
"""
from __future__ import annotations

import datetime
import json
import os
import platform

import numpy as np
import torch

import fastsel
from fastsel import data
from fastsel import metrics as M
from fastsel.benchmarks.common import timed_result
from fastsel.io import save_json, save_text
from fastsel.ops._inputs import draw_start


def old_default_tau(x: torch.Tensor, n: int) -> float:
    """The rule fastsel shipped before: mean 1-NN distance within min(max(n, 2), 4096, N) strided rows."""
    N = len(x)
    m = min(max(n, 2), 4096, N)
    rows = torch.linspace(0, N - 1, m).round().long().unique()
    d, _ = fastsel.nn(x[rows].double(), k=1, exclude_self=True)
    return float(d.mean())


def pools(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((64, 64)) * 1.0 + 5.0
    out = {"gaussian 20000x64": rng.standard_normal((20000, 64)),
           "clustered 20000x64 (64 clusters)": c[rng.integers(64, size=20000)] + 0.3 * rng.standard_normal((20000, 64))}
    try:
        ds = data.load("mnist", n=10000, seed=seed)
        out["MNIST pixels 10000x784"] = ds.images.reshape(10000, -1) / 255.0
    except Exception as e:  # noqa: BLE001 -- the bench runs on without the offline MNIST
        print(f"MNIST skipped: {e}")
    return {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in out.items()}


def spread(x: torch.Tensor, idx: torch.Tensor) -> tuple:
    s = x[idx]
    d, _ = fastsel.nn(s, k=1, exclude_self=True)
    return float(d.min()), float(M.kl_entropy(s))


def quality(n: int = 1000) -> list:
    rows = []
    for name, x in pools().items():
        start = draw_start(len(x), 0)
        g, t = timed_result(lambda: fastsel.greedy(x, n, start))
        rows.append(dict(pool=name, selector="greedy", seconds=t, **dict(zip(("min_dist", "entropy"), spread(x, g.indices)))))
        for a in (0.8, 0.9, 0.95):
            r, t = timed_result(lambda: fastsel.threshold_decay(x, n, start, alpha=a))
            rows.append(dict(pool=name, selector=f"threshold a={a}", seconds=t,
                             **dict(zip(("min_dist", "entropy"), spread(x, r.indices))), **r.info()))
        tau = old_default_tau(x, n)
        r, t = timed_result(lambda: fastsel.threshold_decay(x, n, start, tau, 0.9, order="index"))
        rows.append(dict(pool=name, selector="threshold, previous default", seconds=t,
                         **dict(zip(("min_dist", "entropy"), spread(x, r.indices))), **r.info()))
        idx = fastsel.select(x, n, "random", seed=0)
        rows.append(dict(pool=name, selector="random", seconds=0.0, **dict(zip(("min_dist", "entropy"), spread(x, idx)))))
        for r in rows[-6:]:
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}, flush=True)
    return rows


def cost(N=65536, d=384, n=2048, repeats=3) -> dict:
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((N, d)).astype(np.float32))
    tg, tt, info = [], [], None
    for _ in range(repeats):  # alternate, best of each
        tg.append(timed_result(lambda: fastsel.greedy(x, n, 0))[1])
        r, t = timed_result(lambda: fastsel.threshold_decay(x, n, 0))
        tt.append(t)
        info = r.info()
    return dict(N=N, d=d, n=n, greedy_s=min(tg), threshold_s=min(tt), ratio=min(tt) / min(tg), **info)


def markdown(res: dict) -> str:
    m = res["meta"]
    lines = [f"# threshold default tau ({m['date']}, {m['machine']}, {m['threads']} threads, torch {m['torch']})", "",
             "| pool | selector | min pairwise dist | KL entropy | tau0 -> tau_end | decays | passes | seconds |",
             "|---|---|---|---|---|---|---|---|"]
    for r in res["quality"]:
        tau = f"{r['tau0']:.3g} -> {r['tau_end']:.3g}" if "tau0" in r else ""
        lines.append(f"| {r['pool']} | {r['selector']} | {r['min_dist']:.4g} | {r['entropy']:.1f} | {tau} | "
                     f"{r.get('decays', '')} | {r.get('passes', '')} | {r['seconds']:.3f} |")
    c = res["cost"]
    lines += ["", f"Cost at the default tau, {c['N']:,} x {c['d']} float32, n = {c['n']:,}: greedy {c['greedy_s']:.3f} s, "
              f"threshold {c['threshold_s']:.3f} s = **{c['ratio']:.2f}x greedy** ({c['decays']} decays, "
              f"{c['passes']} passes; best of 3, alternating)."]
    return "\n".join(lines) + "\n"


def run(a):
    res = {"meta": {"date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
                    "threads": torch.get_num_threads(), "torch": torch.__version__},
           "quality": quality(), "cost": cost()}
    os.makedirs(a.out, exist_ok=True)
    save_json(os.path.join(a.out, "tau.json"), json.loads(json.dumps(res)))
    md = markdown(res)
    save_text(os.path.join(a.out, "tau.md"), md)
    print(md)
