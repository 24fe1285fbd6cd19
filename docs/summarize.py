"""The tables of docs/reproduction.md, recomputed from the committed records
(docs/reproduction/records/<experiment>/<sub-run>/metrics.json):

    python docs/summarize.py [docs/reproduction/records]

mean ± sd over seeds per (size, arm, iteration); each arm against none at the last iteration (95 %
Welch interval, Welch's p); Pearson r of entropy / variance vs log GS over distinct points, and over one
point per run (and arm) -- its mean over iterations, or its last iteration -- with a 95 % bootstrap
interval over runs (fastsel.loop.report.run_correlation)."""
import json
import math
import os
import sys

import numpy as np

from fastsel.loop.report import arm_tests, correlation, distinct_points, run_correlation

KEYS = [("copy_fraction", "copies"), ("copy_fraction_holdout", "held-out copies"), ("gs_norm", "GS/held-out"),
        ("gs", "GS"), ("entropy", "entropy (raw)"), ("entropy_fixed", "entropy at m=16"), ("cov_trace", "cov trace"),
        ("vendi", "Vendi"),
        ("fid", "FID"), ("share_real", "real share"), ("class_confidence", "LeNet conf")]


def load(exp_dir):
    runs = []
    for sub in sorted(os.listdir(exp_dir)):
        p = os.path.join(exp_dir, sub, "metrics.json")
        if os.path.isfile(p):
            with open(p) as f:
                m = json.load(f)
            runs.append({"label": sub, "dir": os.path.join(exp_dir, sub), "config": m["config"],
                         "records": m["iterations"]})
    return runs


def val(r, k):
    v = r["shares"][0] if k == "share_real" else r.get(k)
    return None if v is None or not math.isfinite(v) else float(v)


def table(runs):
    groups = {}
    for run in runs:
        for r in run["records"]:
            groups.setdefault((run["config"]["n"], r["arm"], r["iteration"]), []).append(r)
    keys = [(k, lab) for k, lab in KEYS if any(val(r, k) is not None for g in groups.values() for r in g)]
    print("| n | arm | it | seeds | " + " | ".join(lab for _, lab in keys) + " |")
    print("|---|---|---|---|" + "---|" * len(keys))
    for (n, arm, t), rs in sorted(groups.items()):
        cells = []
        for k, _ in keys:
            v = [x for x in (val(r, k) for r in rs) if x is not None]
            cells.append("" if not v else f"{np.mean(v):.3g} ± {np.std(v, ddof=1):.2g}" if len(v) > 1
                         else f"{v[0]:.3g}")
        print(f"| {n} | {arm} | {t} | {len(rs)} | " + " | ".join(cells) + " |")


def tests(runs):
    conds = {}
    for run in runs:
        for r in sorted(run["records"], key=lambda r: r["iteration"]):
            name = f"n{run['config']['n']} {r['arm']}"
            c = conds.setdefault(name, {"n": run["config"]["n"], "alpha": run["config"]["alpha"], "arm": r["arm"],
                                        "paradigm": run["config"]["paradigm"], "seeds": {}})
            c["seeds"].setdefault(run["config"]["seed"], (run, []))[1].append(r)
    out = arm_tests(conds, keys=("copy_fraction", "gs_norm", "gs", "entropy", "entropy_fixed", "vendi", "fid",
                                 "share_real", "class_confidence"))
    if not out:
        return
    print("\n| arm | it | metric | arm mean ± sd | none mean ± sd | arm − none [95 % CI] | p (Welch) |")
    print("|---|---|---|---|---|---|---|")
    for t in out:
        ci = f" [{t['ci95'][0]:.3g}, {t['ci95'][1]:.3g}]" if t["ci95"] else ""
        print(f"| {t['condition']} | {t['iteration']} | {t['metric']} | {t['mean_arm']:.3g} ± {t['sd_arm'] or 0:.2g} | "
              f"{t['mean_none']:.3g} ± {t['sd_none'] or 0:.2g} | {t['diff']:+.3g}{ci} | "
              + (f"{t['p']:.2g}" if t["p"] is not None else "") + " |")


def correlations(runs):
    pts = distinct_points(runs)
    print("\n| x | y | Pearson r | p | points |\n|---|---|---|---|---|")
    for x, y in (("entropy", "gs"), ("entropy_fixed", "gs"), ("entropy_fixed", "gs_norm"), ("cov_trace", "gs"),
                 ("cov_trace", "gs_norm")):
        r, p, k = correlation(pts, x, y)
        print(f"| {x} | log {y} | " + (f"{r:.3f} | {p:.2g}" if r is not None else "- | -") + f" | {k} |")
    print("\n| x | y | r, run means [95 % bootstrap CI] | r, last iteration [95 % bootstrap CI] | points | runs |")
    print("|---|---|---|---|---|---|")
    for x, y in (("entropy", "gs"), ("entropy_fixed", "gs"), ("entropy_fixed", "gs_norm"), ("cov_trace", "gs"),
                 ("cov_trace", "gs_norm")):
        cells = []
        for how in ("mean", "last"):
            rc = run_correlation(pts, x, y, how=how)
            cells.append("-" if rc["r"] is None else f"{rc['r']:.3f}" + (
                f" [{rc['ci95'][0]:.2f}, {rc['ci95'][1]:.2f}]" if rc["ci95"] else ""))
        print(f"| {x} | log {y} | {cells[0]} | {cells[1]} | {rc['points']} | {rc['runs']} |")


def pools(runs):
    rows = {}
    for run in runs:
        for r in run["records"]:
            for s in r.get("pool_sources") or []:
                rows.setdefault((r["arm"], r["iteration"], s["source"]), []).append(s)
    if not rows:
        return
    print("\n| arm | it | source | within-source 1-NN | to other sources 1-NN | kept (of n) |")
    print("|---|---|---|---|---|---|")
    for (arm, t, src), ss in sorted(rows.items()):
        def ms(k):
            v = [s[k] for s in ss if s.get(k) is not None]
            return f"{np.mean(v):.3g} ± {np.std(v, ddof=1):.2g}" if len(v) > 1 else (f"{v[0]:.3g}" if v else "")
        print(f"| {arm} | {t} | {'real' if src == 0 else f'gen {src}'} | {ms('within_nn')} | {ms('to_others_nn')} | "
              f"{ms('kept_share')} |")


if __name__ == "__main__":
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "reproduction", "records")
    for exp in sorted(os.listdir(root)):
        runs = load(os.path.join(root, exp))
        print(f"\n## {exp} ({len(runs)} runs)\n")
        table(runs)
        tests(runs)
        correlations(runs)
        pools(runs)
