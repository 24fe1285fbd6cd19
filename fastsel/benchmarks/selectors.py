"""The diversity selectors and the Vendi score beside the libraries that hold them, in one run.

Per row: fastsel's time, the anchor's time (what it needs included: an anchor that takes an N x N
kernel is timed with building it), the ratio, and whether the answers agree (same picks, or the
same objective / value to the stated tolerance). Anchors that are not installed are skipped and
say so. Pools: N(0, 1) rows in float32 (seeded).

- facility: fastsel.diversity.facility (lazy greedy, RBF kernel h = 2 tr Cov) against apricot's
  FacilityLocationSelection (metric='precomputed', lazy optimizer) and submodlib's
  FacilityLocationFunction (mode='dense', LazyGreedy) on the same kernel;
- dpp: fastsel.diversity.dpp (greedy MAP, incremental Cholesky, O(nN) memory) against Chen et al.'s
  fast greedy MAP written literally in numpy on the N x N kernel (the form of their reference code);
- semdedup: fastsel.clusters.semdedup (blockwise scores) against the published rule on full
  per-cluster similarity matrices (fastsel.reference.semdedup_m) on the same clustering;
- herding: fastsel.diversity.herding, time only (no maintained library anchor installs here);
- vendi: fastsel.metrics.vendi_score (d x d Gram) against the vendi-score package's score_K on the
  n x n cosine kernel and its own score_dual.

    fastsel bench selectors [--sizes 2000,5000] [--d 384] [--n 200] [--out bench/results/selectors]
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import subprocess
import sys

import numpy as np
import torch

from fastsel import clusters as C
from fastsel import diversity as D
from fastsel import metrics as M
from fastsel import reference as R
from fastsel.benchmarks import selectors_scale
from fastsel.benchmarks.common import timed_result, try_import
from fastsel.io import save_json, save_text


def rbf(x64: np.ndarray, h: float, block: int = 2048) -> np.ndarray:
    """The N x N RBF kernel in float64 for the anchors, built with torch in row blocks written in place
    into the numpy array (||a||^2 + ||b||^2, the GEMM accumulated into it, then clamp / scale / exp
    where it lies: no N x block temporaries -- the out-of-place form spent 18 s of page faults on a
    20,000-row kernel that takes 3.6 s this way). numpy's own GEMM on a 20,000-row pool crashed here
    beside torch's threads, and torch's is the faster of the two: the anchors are not handicapped."""
    x = torch.from_numpy(np.ascontiguousarray(x64, dtype=np.float64))
    sq = (x * x).sum(1)
    K = np.empty((len(x), len(x)))
    Kt = torch.from_numpy(K)
    for a in range(0, len(x), block):
        out = torch.add(sq[a:a + block, None], sq[None, :], out=Kt[a:a + block])
        out.addmm_(x[a:a + block], x.T, alpha=-2.0)
        out.clamp_min_(0.0).div_(-h).exp_()
    return K


def fast_map_numpy(L: np.ndarray, n: int, start: int = 0) -> list:
    """Chen, Zhang & Zhou 2018, greedy MAP inference for a DPP with kernel L (N x N), literally:
    incremental Cholesky rows c, marginal gains d^2; ties to the lowest index (np.argmax). The RBF
    kernel's diagonal is 1 (every row ties for the first pick): the first pick is ``start``."""
    N = L.shape[0]
    c = np.zeros((n, N))
    np.fill_diagonal(L, 1.0)
    d2 = np.ones(N)
    j = start
    picks = [j]
    while len(picks) < n:
        k = len(picks) - 1
        e = (L[j, :] - c[:k, j] @ c[:k, :]) / np.sqrt(d2[j])
        c[k, :] = e
        d2 = d2 - e * e
        d2[picks] = -np.inf
        j = int(np.argmax(d2))
        if d2[j] <= 1e-12:
            break
        picks.append(j)
    return picks


def row(name, N, d, n, t_fs, t_anchor, anchor, agree, note=""):
    return {"op": name, "N": N, "d": d, "n": n, "fastsel_s": t_fs, "anchor": anchor, "anchor_s": t_anchor,
            "ratio": (t_anchor / t_fs) if t_anchor and t_fs else None, "agree": agree, "note": note}


def scale_rows(d: int) -> list:
    """Each of selectors_scale.SCALE_ROWS in its own process: time, peak memory, what it found."""
    rows = []
    for op, N, n, knn in selectors_scale.SCALE_ROWS:  # looked up here: a test shrinks it
        cmd = [sys.executable, "-m", "fastsel.benchmarks.selectors_scale", op, str(N), "-" if n is None else str(n),
               str(d)] + ([] if knn is None else [str(knn)])
        print("scale:", " ".join(cmd[2:]), flush=True)
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            rows.append(row(op, N, d, n, None, None, "-", "", f"failed: {p.stderr.strip().splitlines()[-1:]}"))
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        info = ", ".join(f"{k} {v:.6g}" if isinstance(v, float) else f"{k} {v}" for k, v in r["info"].items())
        rows.append(row(op, N, d, n, r["seconds"], None, "-", "", f"no N x N; peak RSS {r['peak_rss_gb']:.2f} GB; {info}"))
        rows[-1]["peak_rss_gb"] = r["peak_rss_gb"]
        print(f"  {r['seconds']:.1f} s, peak {r['peak_rss_gb']:.2f} GB, {info}", flush=True)
    return rows


def _anchors():
    """The anchor classes / modules that are installed (None where not)."""
    apricot, submodlib, vendi = try_import("apricot"), try_import("submodlib"), try_import("vendi_score.vendi")
    return (getattr(apricot, "FacilityLocationSelection", None), getattr(submodlib, "FacilityLocationFunction", None),
            vendi)


def _facility_rows(x, x64, n, apricot_cls, submodlib_cls) -> list:
    """Facility location against apricot and submodlib on the same RBF kernel (its build time counted
    in theirs)."""
    N, d = x.shape
    (fi, info), t = timed_result(lambda: D.facility(x, n))
    if apricot_cls is None and submodlib_cls is None:
        return [row("facility", N, d, n, t, None, "apricot not installed", ""),
                row("facility", N, d, n, t, None, "submodlib not installed", "")]
    K, tk = timed_result(lambda: rbf(x64, info["bandwidth"]))  # the anchors' kernel: its build time counts
    obj = lambda S: float(K[:, S].max(1).sum())  # noqa: E731
    floor = f"the kernel build alone (in their time) {tk:.2f} s"
    out = []
    if apricot_cls is not None:
        def apr():
            sel = apricot_cls(n, metric="precomputed", optimizer="lazy", verbose=False).fit(K)
            return np.asarray(sel.ranking)
        apricot_cls(2, metric="precomputed", optimizer="lazy", verbose=False).fit(K[:50, :50])
        ai, ta = timed_result(apr)  # numba compiled above, on a small kernel: not timed
        same = bool(np.array_equal(fi.numpy(), ai))
        rel = abs(obj(fi.numpy()) - obj(ai)) / obj(ai)
        out.append(row("facility", N, d, n, t, ta + tk, "apricot 0.6.1 (precomputed kernel, lazy)",
                       f"same picks: {same}; objective rel. diff {rel:.1e}", floor))
    else:
        out.append(row("facility", N, d, n, t, None, "apricot not installed", ""))
    if submodlib_cls is not None:
        def sub():
            f = submodlib_cls(n=N, mode="dense", sijs=K, separate_rep=False)
            got = f.maximize(budget=n, optimizer="LazyGreedy", stopIfZeroGain=False, stopIfNegativeGain=False,
                             verbose=False, show_progress=False)
            return np.asarray([i for i, _ in got])
        si, ts = timed_result(sub)
        rel = abs(obj(fi.numpy()) - obj(si)) / obj(si)
        out.append(row("facility", N, d, n, t, ts + tk, "submodlib (dense kernel, LazyGreedy)",
                       f"same picks: {bool(np.array_equal(fi.numpy(), si))}; objective rel. diff {rel:.1e}",
                       floor + "; submodlib keeps the kernel in float32"))
    else:
        out.append(row("facility", N, d, n, t, None, "submodlib not installed", ""))
    return out


def _dpp_row(x, x64, n) -> dict:
    """DPP greedy MAP against Chen et al.'s fast greedy MAP in numpy on the N x N kernel."""
    N, d = x.shape
    (pi, pinfo), t = timed_result(lambda: D.dpp(x, n, start=0))  # both start at row 0
    L, tk = timed_result(lambda: rbf(x64, pinfo["bandwidth"]))
    ri, tr = timed_result(lambda: fast_map_numpy(L, n, start=0))
    return row("dpp", N, d, n, t, tr + tk, "Chen et al. fast greedy MAP, numpy, N x N kernel",
               f"same picks: {list(pi.numpy()) == ri}", f"the kernel build alone (in its time) {tk:.2f} s")


def _semdedup_row(x, n) -> dict:
    """SemDeDup's blockwise scores against the published full-matrix rule on the same clustering."""
    N, d = x.shape
    k = min(C._default_k(N), n)
    (keep, sinfo), t = timed_result(lambda: C.semdedup(x, n, k=k, seed=0))

    def literal():
        xn = C._normalise(C._rows(x))
        a, c, _ = C.kmeans(xn, k, seed=0, sample=C.TRAIN_PER_CENTRE * k)
        m = R.semdedup_m(xn, a, c)
        t = float(torch.sort(m).values[n - 1])  # the largest kept score: the n smallest scores kept
        return set(torch.nonzero(m <= t)[:, 0].tolist())
    lit, tl = timed_result(literal)
    same = lit == set(keep.tolist()) if sinfo["n_tie_fill"] == 0 else "tie at the threshold"
    return row("semdedup", N, d, n, t, tl, "the published rule, full per-cluster matrices (same k-means)",
               f"same kept set: {same} (eps {sinfo['eps']:.3g}, k {sinfo['k']})")


def _vendi_rows(x, x64, vendi) -> list:
    """The Vendi score against vendi-score's score_K (n x n) and score_dual (d x d)."""
    N, d = x.shape
    v, t = timed_result(lambda: M.vendi_score(x), 3)
    if vendi is None:
        return [row("vendi", N, d, None, t, None, "vendi-score not installed", "")]
    out = []

    def pkg():
        xn = torch.nn.functional.normalize(torch.from_numpy(x64), dim=1)
        return float(vendi.score_K((xn @ xn.T).numpy()))
    if N <= 5000:
        vp, tp = timed_result(pkg, 3 if N <= 2000 else 1)
        out.append(row("vendi", N, d, None, t, tp, "vendi-score score_K (n x n cosine kernel)",
                       f"rel. diff {abs(v - vp) / vp:.1e}"))
    else:
        out.append(row("vendi", N, d, None, t, None, "vendi-score score_K", "",
                       "skipped above 5,000 rows: an n x n eigendecomposition, O(n^3)"))
    vd, td = timed_result(lambda: float(vendi.score_dual(x64)), 3)
    out.append(row("vendi", N, d, None, t, td, "vendi-score score_dual (d x d)", f"rel. diff {abs(v - vd) / vd:.1e}"))
    return out


def _write(rows: list, out: str) -> dict:
    """selectors.json (rows and the run's machine) and selectors.md (the table) under ``out``."""
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    os.makedirs(out, exist_ok=True)
    save_json(os.path.join(out, "selectors.json"), {"meta": meta, "rows": rows})
    lines = ["| op | N | d | n | fastsel s | anchor | anchor s | anchor / fastsel | agreement |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t = "-" if r["fastsel_s"] is None else f"{r['fastsel_s']:.3f}"
        lines.append(f"| {r['op']} | {r['N']} | {r['d']} | {r['n'] or '-'} | {t} | {r['anchor']} | "
                     + (f"{r['anchor_s']:.3f} | {r['ratio']:.1f}x" if r["anchor_s"] else "- | -")
                     + f" | {'; '.join(filter(None, [r['agree'], r['note']]))} |")
    save_text(os.path.join(out, "selectors.md"), "\n".join(lines) + "\n")
    return meta


def run(args) -> list:
    sizes = [int(s) for s in (args.sizes.split(",") if isinstance(args.sizes, str) else args.sizes) if str(s).strip()]
    d, n = int(args.d), int(args.n)
    rows = scale_rows(d) if getattr(args, "scale", False) else []
    apricot_cls, submodlib_cls, vendi = _anchors()
    for N in sizes:
        first = len(rows)
        rng = np.random.default_rng(N)
        x = rng.standard_normal((N, d)).astype(np.float32)
        x64 = x.astype(np.float64)
        rows += _facility_rows(x, x64, n, apricot_cls, submodlib_cls)
        rows.append(_dpp_row(x, x64, n))
        rows.append(_semdedup_row(x, n))
        _, t = timed_result(lambda: D.herding(x, n))
        rows.append(row("herding", N, d, n, t, None, "-", "", "no library anchor installs here"))
        rows += _vendi_rows(x, x64, vendi)
        for r in rows[first:]:  # this size's rows
            print(f"{r['op']:9s} N={r['N']:>7} n={r['n'] or '-':>5}: fastsel {r['fastsel_s']:.3f} s | "
                  f"{r['anchor']}: " + (f"{r['anchor_s']:.3f} s, {r['ratio']:.1f}x" if r["anchor_s"] else "-")
                  + f" | {r['agree']} {r['note']}", flush=True)
    print(json.dumps(_write(rows, args.out)))
    return rows
