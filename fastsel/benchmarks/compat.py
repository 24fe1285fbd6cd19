"""``fastsel bench compat``: each ``fastsel.compat`` drop-in beside the peer it replaces, in one run, on
the peer's own benchmark shape, with the outputs compared (the same picks / the same score).

Peers timed where they install from PyPI here (apricot-select, vendi-score); torch_cluster and
pytorch3d build from source for over an hour and are not timed (the table says so) -- their drop-ins
are timed against fastsel's native op, which is what they call. Every case runs ``repeats`` times
and keeps the best.
"""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch

from .. import fps as native_fps, greedy_sets
from ..compat import pytorch3d as P3, torch_cluster as TC, vendi as FV
from ..compat.apricot import FacilityLocationSelection
from ..io import save_json, save_text


def _best(fn, repeats: int) -> tuple:
    out, best = None, float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return out, best


def _cases(quick: bool):
    rng = np.random.default_rng(0)
    cases = []

    # apricot: its README's facility location example shape (digits-like 64-d rows), euclidean similarity
    try:
        import apricot  # optional: apricot-select (a bench anchor)
        N = 2000 if quick else 10000
        X = rng.standard_normal((N, 64))
        n = 100

        def peer(X=X, n=n):  # bound now: X and n are reassigned below for the other cases
            return apricot.FacilityLocationSelection(n, metric="euclidean", optimizer="lazy").fit(X).ranking

        def ours(X=X, n=n):
            return FacilityLocationSelection(n, metric="euclidean", optimizer="lazy").fit(X).ranking
        cases.append(("apricot FacilityLocationSelection (lazy, euclidean)", f"{N} x 64, n = {n}", peer, ours,
                      lambda a, b: "same ranking" if list(a) == list(b) else "rankings differ"))
    except ImportError:
        cases.append(("apricot FacilityLocationSelection", "-", None, None, "apricot-select not installed"))

    try:
        from vendi_score import vendi as V  # optional: vendi-score (a bench anchor)
        n, d = (2000, 256) if quick else (20000, 512)
        X = rng.standard_normal((n, d))
        cmp = (lambda a, b: f"abs. diff {abs(a - b):.1e}")
        cases.append(("vendi score_dual (cosine, q = 1)", f"{n} x {d}", lambda X=X: V.score_dual(X),
                      lambda X=X: FV.score_dual(X), cmp))
        m = 1000 if quick else 3000
        K = np.exp(-((X[:m, None, :8] - X[None, :m, :8]) ** 2).sum(-1))
        cases.append(("vendi score_K (q = 1)", f"K {m} x {m}", lambda: V.score_K(K), lambda: FV.score_K(K), cmp))
        s = 200 if quick else 500
        samples = list(X[:s, :16])

        def k(a, b):
            return float(np.exp(-((a - b) ** 2).sum()))
        cases.append(("vendi score (Python kernel)", f"{s} samples", lambda: V.score(samples, k),
                      lambda: FV.score(samples, k), cmp))
    except ImportError:
        cases.append(("vendi-score", "-", None, None, "vendi-score not installed"))

    # torch_cluster / pytorch3d: not installable here; the drop-in against the native op it calls
    B, N = (4, 2048) if quick else (32, 2048)
    pts = torch.from_numpy(rng.standard_normal((B * N, 3)).astype(np.float32))
    batch = torch.arange(B).repeat_interleave(N)
    cases.append(("torch_cluster fps (peer not installable: vs fastsel.fps)", f"{B} x {N} x 3, ratio 0.25",
                  lambda: native_fps(pts, batch, ratio=0.25, random_start=False),
                  lambda: TC.fps(pts, batch, 0.25, False),
                  lambda a, b: "same picks" if torch.equal(a.reshape(-1), b.reshape(-1)) else "picks differ"))
    P = pts.reshape(B, N, 3)
    cases.append(("pytorch3d sample_farthest_points (peer not installable: vs fastsel.greedy_sets)",
                  f"{B} x {N} x 3, K = 512", lambda: greedy_sets(P, 512, 0).indices,
                  lambda: P3.sample_farthest_points(P, K=512)[1],
                  lambda a, b: "same picks" if torch.equal(a, b) else "picks differ"))
    return cases


def run(a) -> dict:
    rows = []
    for name, shape, peer, ours, cmp in _cases(a.quick):
        if peer is None:
            rows.append({"case": name, "shape": shape, "peer_s": None, "fastsel_s": None, "speedup": None,
                         "agreement": cmp})
            continue
        out_p, tp = _best(peer, a.repeats)
        out_f, tf = _best(ours, a.repeats)
        rows.append({"case": name, "shape": shape, "peer_s": tp, "fastsel_s": tf, "speedup": tp / tf,
                     "agreement": cmp(out_p, out_f)})
        print(f"{name}: {tp:.3f} s vs {tf:.3f} s", file=sys.stderr)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    res = {"meta": {"date": datetime.date.today().isoformat(), "commit": commit or None,
                    "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "quick": a.quick, "repeats": a.repeats}, "rows": rows}
    os.makedirs(a.out_dir, exist_ok=True)
    save_json(os.path.join(a.out_dir, "bench_compat.json"), res)
    md = [f"fastsel.compat beside each peer, one run ({res['meta']['cpu_count']} cores, torch {torch.__version__}, "
          f"commit {commit}, {res['meta']['date']}; best of {a.repeats})", "",
          "| drop-in | shape | peer s | fastsel s | speed-up | outputs |", "|---|---|---|---|---|---|"]
    for r in rows:
        if r["peer_s"] is None:
            md.append(f"| {r['case']} | {r['shape']} | – | – | – | {r['agreement']} |")
        else:
            md.append(f"| {r['case']} | {r['shape']} | {r['peer_s']:.3f} | {r['fastsel_s']:.3f} | "
                      f"{r['speedup']:.2f}× | {r['agreement']} |")
    save_text(os.path.join(a.out_dir, "bench_compat.md"), "\n".join(md) + "\n")
    print("\n".join(md))
    return res
