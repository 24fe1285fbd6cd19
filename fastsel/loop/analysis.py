"""The declared analysis of docs/analysis.md, computed from loop runs: ``fastsel report --analysis``.

What is fixed in advance (the constants below are that page's, changed only with it): the primary
endpoint (``novelty_real`` at iteration 5, each selector arm against ``none``), its test (paired t
over seeds, two-sided, Holm over the arms), the intervals (t, and a percentile bootstrap over seeds),
an exact sign-flip permutation p beside it, the secondary endpoints (exploratory, unadjusted), the
manipulation check, the null controls' bounds, the correlation with one point per (seed, arm), and
"interim" until every declared seed is in.
"""
from __future__ import annotations

import itertools
import math
import warnings
from typing import Optional

import numpy as np

from ..io import DataError

PRIMARY = "novelty_real"
ITERATION = 5
SEEDS = tuple(range(1001, 1017))
ALPHA = 0.05
BOOT = 10_000
ARMS = ("greedy", "threshold")  # the family the Holm correction is over
DESIGN = {"preset": "cpu", "paradigm": "accumulate", "n": 16, "train_steps": 1250, "features": "lenet"}
# The two declared families, each with its own Holm correction: accumulate (the primary one) and then
# replace with selection (docs/analysis.md, "Then: the replace paradigm": same seeds, arms and test).
DESIGNS = {"accumulate": DESIGN, "replace": {**DESIGN, "paradigm": "replace", "pool_factor": 2}}
SECONDARY = ("entropy_samples", "copy_abs", "fid", "gs_norm", "copy_fraction", "share_real")
MANIPULATION = "entropy_fixed"
CONTROLS = {"novelty_real_holdout": (0.9, 1.1), "copy_abs_holdout": (0.0, 0.05)}


def _value(rec: dict, key: str):
    v = rec["shares"][0] if key == "share_real" else rec.get(key)
    return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)


def _design_problem(cfg: dict, iteration: int, design: dict = DESIGN) -> Optional[str]:
    """Why a run is not one of the declared design's (None: it is)."""
    for k, v in design.items():
        if cfg.get(k) != v:
            return f"{k} {cfg.get(k)!r}, the design's {v!r}"
    if cfg.get("iterations", 0) <= iteration:
        return f"{cfg.get('iterations')} iterations, iteration {iteration} needed"
    return None


def _by_seed(runs) -> dict:
    """seed -> {(arm selector, iteration): record}; iteration 0 (shared) filed under every arm."""
    out = {}
    for run in runs:
        seed = run["config"]["seed"]
        if seed in out:
            raise DataError(f"seed {seed} appears in two runs ({run['dir']}): one run per seed")
        recs = {}
        for r in run["records"]:
            recs[(r["arm"].split("-", 1)[-1], r["iteration"])] = r
        out[seed] = recs
    return out


def holm(ps: list) -> list:
    """Holm's step-down adjusted p-values, in the order given."""
    m = len(ps)
    order = sorted(range(m), key=lambda i: ps[i])
    adj, run = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        run = max(run, min(1.0, (m - rank) * ps[i]))
        adj[i] = run
    return adj


def sign_flip_p(d: np.ndarray) -> float:
    """Exact two-sided sign-flip permutation p of the mean of paired differences (all 2^n patterns
    up to n = 20; beyond, 2^20 seeded random patterns)."""
    n = len(d)
    obs = abs(d.mean())
    if n <= 20:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=n)))
    else:
        signs = np.random.default_rng(0).choice((1.0, -1.0), size=(1 << 20, n))
    means = np.abs(signs @ d / n)
    return float((means >= obs - 1e-12 * max(1.0, obs)).mean())


def t_half(v) -> Optional[float]:
    """Half-width of the 95 % t interval of the mean of v (None below two values): the one rule the
    analysis and the report's means over seeds (fastsel.loop.report.stats) use."""
    n = len(v)
    if n < 2:
        return None
    from scipy import stats  # optional: scipy (the data and test extras), and start-up time
    return float(stats.t.ppf(0.975, n - 1) * np.std(v, ddof=1) / math.sqrt(n))


def t_interval(v: np.ndarray) -> Optional[list]:
    """The 95 % t interval of the mean of v (None below two values)."""
    half = t_half(v)
    return None if half is None else [float(v.mean() - half), float(v.mean() + half)]


def paired(d: np.ndarray, rng_seed: int = 0) -> dict:
    """Mean of the paired differences d with its t interval, two-sided t p, bootstrap interval over
    seeds and the sign-flip permutation p."""
    from scipy import stats  # optional: scipy (the data and test extras), and start-up time
    n = len(d)
    out = {"n": n, "diff": float(d.mean()) if n else None, "p": None, "ci95": None, "boot95": None,
           "p_perm": None, "sd": float(d.std(ddof=1)) if n > 1 else None}
    if n < 2:
        return out
    if np.ptp(d) <= 1e-12 * max(1.0, abs(float(d.mean()))):  # the same difference in every seed (up to the
        out["sd"] = 0.0  # rounding of the subtraction): no t-test, whatever the difference
        out["ci95"] = out["boot95"] = [out["diff"], out["diff"]]
        out["p_perm"] = sign_flip_p(d)
        return out
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # identical differences: p undefined, reported as None
        t = stats.ttest_1samp(d, 0.0)
    out["p"] = None if not math.isfinite(t.pvalue) else float(t.pvalue)
    out["ci95"] = t_interval(d)
    rng = np.random.default_rng(rng_seed)
    boots = d[rng.integers(n, size=(BOOT, n))].mean(1)
    out["boot95"] = [float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))]
    out["p_perm"] = sign_flip_p(d)
    return out


def _diffs(by_seed: dict, arm: str, key: str, it: int) -> tuple:
    seeds, d = [], []
    for s, recs in sorted(by_seed.items()):
        a, b = recs.get((arm, it)), recs.get(("none", it))
        va, vb = (_value(a, key) if a else None), (_value(b, key) if b else None)
        if va is not None and vb is not None:
            seeds.append(s)
            d.append(va - vb)
    return seeds, np.array(d, dtype=np.float64)


def correlation(by_seed: dict, arms: list, it: int) -> Optional[dict]:
    """Pearson r of entropy_fixed (the training set) against log novelty_real (its model), one point per
    (seed, arm) at iteration ``it``, with a bootstrap interval that resamples whole seeds."""
    pts = {}
    for s, recs in by_seed.items():
        for a in arms:
            r = recs.get((a, it))
            x, y = (_value(r, MANIPULATION), _value(r, PRIMARY)) if r else (None, None)
            if x is not None and y is not None and y > 0:
                pts.setdefault(s, []).append((x, math.log(y)))
    allp = [p for v in pts.values() for p in v]
    if len(allp) < 3:
        return None
    xs, ys = np.array(allp).T
    if xs.std() == 0 or ys.std() == 0:
        return {"r": None, "points": len(allp), "seeds": len(pts), "boot95": None}
    r = float(np.corrcoef(xs, ys)[0, 1])
    rng, seeds, rs = np.random.default_rng(0), sorted(pts), []
    for _ in range(2000):
        pick = [p for s in rng.choice(seeds, size=len(seeds)) for p in pts[s]]
        a, b = np.array(pick).T
        if a.std() > 0 and b.std() > 0:
            rs.append(np.corrcoef(a, b)[0, 1])
    return {"r": r, "points": len(allp), "seeds": len(pts),
            "boot95": [float(np.percentile(rs, 2.5)), float(np.percentile(rs, 97.5))] if rs else None}


def trajectory(by_seed: dict, arms: list, iteration: int, seeds: list) -> dict:
    """arm -> {iterations, mean, ci95, n, seeds} of the primary measure over the complete ``seeds`` (n: the
    seeds with a value at that iteration), iterations 0..``iteration`` (iteration 0 is the shared model: the
    same records under every arm) -- what the figure draws beside the tests; the 95 % t interval of each
    mean over seeds (None below 2 seeds)."""
    out = {}
    for a in arms:
        its, means, cis, ns = [], [], [], []
        for it in range(iteration + 1):
            recs = [by_seed[s].get((a, it)) or (by_seed[s].get(("none", 0)) if it == 0 else None) for s in seeds]
            v = [_value(r, PRIMARY) for r in recs if r is not None]
            v = np.array([x for x in v if x is not None], dtype=np.float64)
            if not len(v):
                continue
            its.append(it)
            means.append(float(v.mean()))
            cis.append(t_interval(v))
            ns.append(len(v))
        out[a] = {"iterations": its, "mean": means, "ci95": cis, "n": ns, "seeds": len(seeds)}
    return out


def family_of(runs) -> str:
    """The declared family the runs are analysed as: the paradigm of the first run that has a declared
    one (accumulate when none has); runs of the other family are left out and named, never pooled."""
    for run in runs:
        if run["config"].get("paradigm") in DESIGNS:
            return run["config"]["paradigm"]
    return "accumulate"


def analyse(runs, iteration: int = ITERATION, declared_seeds=SEEDS, check_design: bool = True,
            family: Optional[str] = None) -> dict:
    """The declared analysis over loop runs (one run per seed, arms none + selectors) of one family
    (``DESIGNS``: accumulate or replace; None: :func:`family_of` the runs). Runs of other seeds than the
    declared ones, or of another design or family, are left out and named (``excluded``); arms outside
    the declared family are not tested."""
    family = family_of(runs) if family is None else family
    if family not in DESIGNS:
        raise DataError(f"family must be one of {', '.join(DESIGNS)}, got {family!r}")
    excluded = []
    keep = []
    for run in runs:
        seed = run["config"].get("seed")
        why = (None if not check_design else _design_problem(run["config"], iteration, DESIGNS[family]))
        if seed not in declared_seeds:
            why = f"seed {seed} is not a declared seed"
        if why:
            excluded.append({"run": run.get("label", run.get("dir")), "why": why})
        else:
            keep.append(run)
    by_seed = _by_seed(keep)
    present = {a for recs in by_seed.values() for (a, _) in recs}
    arms = [a for a in ARMS if a in present]
    complete = sorted(s for s, recs in by_seed.items() if all((a, iteration) in recs for a in arms + ["none"]))
    interim = not set(declared_seeds) <= set(complete)
    prim = []
    for a in arms:
        seeds, d = _diffs(by_seed, a, PRIMARY, iteration)
        missing = sorted(set(by_seed) - set(seeds))  # a seed without a finite value is named, never dropped silently
        prim.append({"arm": a, "metric": PRIMARY, "iteration": iteration, "seeds": seeds, "missing": missing,
                     "values": [float(v) for v in d], **paired(d)})
    ps = [p["p"] for p in prim]
    if all(p is not None for p in ps) and ps:
        for p, adj in zip(prim, holm(ps)):
            p["p_holm"] = adj
            p["perm_disagrees"] = p["p_perm"] is not None and ((p["p_perm"] < ALPHA) != (p["p"] < ALPHA))
            p["power_assumed"] = _power(p)
    sec = []
    for a in arms:
        for it in range(1, iteration):
            seeds, d = _diffs(by_seed, a, PRIMARY, it)
            sec.append({"arm": a, "metric": PRIMARY, "iteration": it, **paired(d)})
        for key in SECONDARY + (MANIPULATION,):
            seeds, d = _diffs(by_seed, a, key, iteration)
            sec.append({"arm": a, "metric": key, "iteration": iteration, **paired(d),
                        "role": "manipulation check" if key == MANIPULATION else "exploratory"})
    controls = {}
    for key, (lo, hi) in CONTROLS.items():
        vals = [_value(r, key) for recs in by_seed.values() for r in recs.values()]
        vals = [v for v in vals if v is not None]
        m = float(np.mean(vals)) if vals else None
        controls[key] = {"mean": m, "records": len(vals), "bounds": [lo, hi],
                         "ok": m is not None and lo <= m <= hi}
    return {"family": family, "iteration": iteration, "declared_iteration": iteration == ITERATION,
            "excluded": excluded,
            "arms": arms, "seeds_complete": complete, "declared_seeds": list(declared_seeds),
            "interim": interim, "primary": prim, "secondary": sec, "controls": controls,
            "correlation": correlation(by_seed, arms + ["none"], iteration),
            "trajectory": trajectory(by_seed, ["none"] + arms, iteration, complete),
            "readable": all(c["ok"] for c in controls.values())}


ASSUMED_DZ = {"greedy": 0.86, "threshold": 1.13}  # docs/analysis.md's power calculation (half the tuning seeds')


def _power(p: dict) -> Optional[float]:
    """The design's power for the effect docs/analysis.md assumed, at Holm's first step (alpha / arms)."""
    from scipy import stats  # optional: scipy (the data and test extras), and start-up time
    dz, n = ASSUMED_DZ.get(p["arm"]), p["n"]
    if dz is None or n < 2:
        return None
    df, a = n - 1, ALPHA / len(ASSUMED_DZ)
    crit, nc = stats.t.ppf(1 - a / 2, df), dz * math.sqrt(n)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def _verdict(p: dict) -> str:
    """The result sentence docs/analysis.md fixed in advance."""
    if p.get("p_holm") is None:
        return f"{p['arm']}: not enough seeds for a test"
    if p["p_holm"] < ALPHA:
        word = "raises" if p["diff"] > 0 else "lowers"
        return (f"{p['arm']} {word} {PRIMARY} at iteration {p['iteration']} by {_f(p['diff'])} "
                f"{_ci(p['ci95'])} (Holm-adjusted p = {_f(p['p_holm'])})")
    return (f"{p['arm']}: no significant effect at iteration {p['iteration']} (Holm-adjusted p = {_f(p['p_holm'])}), "
            f"with power {_f(p.get('power_assumed'))} for the assumed effect")


def _f(v, digits=3):
    if v is None:
        return "n/a"
    return f"{v:.{digits}g}" if abs(v) < 1e4 else f"{v:.4g}"


def _p_cell(s: dict) -> str:
    """A p, or why there is none: a difference of 0 in every seed (the replace paradigm's real share,
    0 in every arm) has no test."""
    if s["p"] is None and s.get("sd") == 0 and s.get("n", 0) > 1:  # paired() found every difference equal
        return f"n/a (the same difference, {_f(s['diff'])}, in every seed)"
    return _f(s["p"])


def _ci(c):
    return "n/a" if c is None else f"[{_f(c[0])}, {_f(c[1])}]"


def markdown(res: dict) -> str:
    """The analysis as docs/analysis.md declares it: the primary test first."""
    it = res["iteration"]
    head = ("**INTERIM** — " + f"{len(res['seeds_complete'])} of {len(res['declared_seeds'])} declared seeds "
            "complete: no test decides anything yet (docs/analysis.md)." if res["interim"] else
            f"All {len(res['declared_seeds'])} declared seeds complete.")
    if not res.get("declared_iteration", True):
        head += f" **Iteration {it} is not the declared one ({ITERATION}): exploratory, not the declared analysis.**"
    if res.get("excluded"):
        head += " Left out: " + "; ".join(f"{e['run']} ({e['why']})" for e in res["excluded"]) + "."
    fam = res.get("family", "accumulate")
    head = (f"Family: **{fam}** ({'the primary family' if fam == 'accumulate' else 'the second family'}, "
            f"its own Holm correction). " + head)
    lines = ["# Declared analysis (docs/analysis.md)", "", head, "",
             f"## Primary: {PRIMARY} at iteration {it}, arm − none, paired t over seeds (two-sided), Holm over "
             f"{len(res['arms'])} arms", "",
             "| arm | seeds | arm − none | 95 % t CI | 95 % bootstrap CI | p | p (Holm) | p (sign-flip) |",
             "|---|---|---|---|---|---|---|---|"]
    for p in res["primary"]:
        lines.append(f"| {p['arm']} | {p['n']} | {_f(p['diff'])} | {_ci(p['ci95'])} | {_ci(p['boot95'])} | "
                     f"{_f(p['p'])} | {_f(p.get('p_holm'))} | {_f(p['p_perm'])} |")
    lines += [""] + [f"- {_verdict(p)}" + (" (interim: decides nothing)" if res["interim"] else "")
                     for p in res["primary"]]
    for p in res["primary"]:
        if p.get("perm_disagrees"):
            lines.append(f"- {p['arm']}: the sign-flip permutation p ({_f(p['p_perm'])}) and the t-test p "
                         f"({_f(p['p'])}) fall on different sides of {ALPHA}")
        if p.get("missing"):
            lines.append(f"- {p['arm']}: no finite value for seeds {p['missing']} (named, not dropped silently)")
    lines += ["", "## Null controls", "", "| control | mean | records | bounds | ok |", "|---|---|---|---|---|"]
    for k, c in res["controls"].items():
        lines.append(f"| {k} | {_f(c['mean'])} | {c['records']} | {c['bounds']} | {'yes' if c['ok'] else 'NO'} |")
    if not res["readable"]:
        lines += ["", "**A control is out of its bounds: the primary result cannot be read (docs/analysis.md).**"]
    lines += ["", "## Secondary (exploratory: unadjusted p) and the manipulation check", "",
              "| arm | metric | iteration | role | seeds | arm − none | 95 % t CI | p |", "|---|---|---|---|---|---|---|---|"]
    for s in res["secondary"]:
        lines.append(f"| {s['arm']} | {s['metric']} | {s['iteration']} | {s.get('role', 'exploratory')} | {s['n']} | "
                     f"{_f(s['diff'])} | {_ci(s['ci95'])} | {_p_cell(s)} |")
    c = res["correlation"]
    lines += ["", f"## Training-set entropy at m vs log {PRIMARY}, one point per (seed, arm) at iteration {it}", ""]
    lines.append("not enough points" if c is None else
                 f"r = {_f(c['r'])}, bootstrap over seeds {_ci(c['boot95'])}, {c['points']} points from {c['seeds']} seeds")
    return "\n".join(lines) + "\n"
