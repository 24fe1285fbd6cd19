"""The report's statistics: means over seeds with 95 % t-intervals, Pearson correlations (per point, and
over run means with a bootstrap interval over runs), and each arm against `none` (Welch)."""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..analysis import t_half
from ..columns import COLUMNS
from .load import _selector


def _t_half(values) -> float:
    """Half-width of the 95 % t-interval of the mean of ``values`` (0 with fewer than two)."""
    half = t_half(values)
    return 0.0 if half is None else half


def _band(rs_by_seed, key):
    """(iterations, mean, half-width of the 95 % t-interval of the mean, seeds) of a metric over the
    replicates (iterations every seed reached)."""
    per = {}
    for _, rs in rs_by_seed.values():
        for r in rs:
            v = _value(r, key)
            if v is not None:
                per.setdefault(r["iteration"], []).append(v)
    k = len(rs_by_seed)
    its = sorted(t for t, v in per.items() if len(v) == k)
    mean = np.array([np.mean(per[t]) for t in its])
    half = np.array([_t_half(per[t]) for t in its])
    return its, mean, half, k


def distinct_points(runs) -> list:
    """One record per (run, arm, iteration), iteration 0 once per run (every arm shares its model)."""
    out, seen = [], set()
    for run in runs:
        for r in run["records"]:
            key = (run["dir"], "shared" if r["iteration"] == 0 else r["arm"], r["iteration"])
            if key not in seen:
                seen.add(key)
                out.append(r | {"_n": run["config"]["n"], "_run": run["dir"]})
    return out


def correlation(records, xkey, ykey="gs", log_y=True):
    """(r, p, points) of Pearson's r between a record key and (log) GS over the given records."""
    pts = [(r[xkey], r[ykey]) for r in records if r.get(xkey) is not None and r.get(ykey) is not None
           and math.isfinite(r[xkey]) and (r[ykey] > 0 or not log_y)]
    if len(pts) < 3:
        return None, None, len(pts)
    x = np.array([a for a, _ in pts])
    y = np.array([math.log(b) if log_y else b for _, b in pts])
    if np.std(x) == 0 or np.std(y) == 0:
        return None, None, len(pts)
    from scipy import stats  # optional: scipy (the data and test extras), and start-up time
    r, p = _quietly(f"Pearson r of {xkey} and {'log ' if log_y else ''}{ykey}", stats.pearsonr, x, y)
    return float(r), float(p), len(pts)


def run_correlation(records, xkey, ykey="gs", log_y=True, how="mean", n_boot=10000, seed=0):
    """Pearson r with one point per run and arm, and its 95 % bootstrap interval over runs.

    ``records``: distinct_points' records (each knows its run, ``_run``). Each (run, arm) is one point:
    the mean of x and of (log) y over its iterations (``how="mean"``; the shared iteration 0 counts in each
    arm of its run) or its last iteration's values (``how="last"``). The interval resamples whole runs
    with replacement (``n_boot`` times, percentile interval; resamples whose points have no spread are
    skipped), so the arms of one run -- which share its iteration 0 and seed -- move together.

    Returns {"r", "ci95", "points", "runs", "boot"} ("r"/"ci95" None with fewer than 3 points or no spread)."""
    def ok(r):
        return r.get(xkey) is not None and r.get(ykey) is not None and math.isfinite(r[xkey]) and (
            r[ykey] > 0 or not log_y) and math.isfinite(r[ykey])
    by_run = {}
    for r in records:
        by_run.setdefault(r.get("_run", r.get("_n")), []).append(r)
    units = {}  # run -> [(x, y), ...] one per arm
    for run, rs in by_run.items():
        shared = [r for r in rs if r["iteration"] == 0]
        arms = sorted({r["arm"] for r in rs if r["iteration"] > 0}) or [None]
        for arm in arms:
            pts = sorted((r for r in shared + [r for r in rs if r["iteration"] > 0 and r["arm"] == arm] if ok(r)),
                         key=lambda r: r["iteration"])
            if not pts:
                continue
            if how == "last":
                pts = pts[-1:]
            ys = [math.log(r[ykey]) if log_y else r[ykey] for r in pts]
            units.setdefault(run, []).append((float(np.mean([r[xkey] for r in pts])), float(np.mean(ys))))
    runs = sorted(units, key=lambda k: units[k])  # by value: the same resamples whatever order the runs came in
    out = {"r": None, "ci95": None, "points": sum(len(u) for u in units.values()), "runs": len(runs), "boot": 0}

    def pearson(pairs):
        if len(pairs) < 3:
            return None
        a = np.array(pairs)
        if np.ptp(a[:, 0]) == 0 or np.ptp(a[:, 1]) == 0:
            return None
        return float(np.corrcoef(a[:, 0], a[:, 1])[0, 1])
    out["r"] = pearson([p for u in units.values() for p in u])
    if out["r"] is None or len(runs) < 2:
        return out
    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(runs), len(runs))
        b = pearson([p for i in pick for p in units[runs[i]]])
        if b is not None:
            boot.append(b)
    if boot:
        out["ci95"] = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
    out["boot"] = len(boot)
    return out


def _quietly(where: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), each warning it raises (scipy's on constant or nearly identical values) raised
    again as one line saying where (write_report prints them as "warning: ..." lines)."""
    with warnings.catch_warnings(record=True) as caught:
        out = fn(*args, **kwargs)
    for w in caught:
        warnings.warn(f"{where}: {' '.join(str(w.message).split())}", stacklevel=2)
    return out


STAT_KEYS = tuple(c.key for c in COLUMNS if c.test)  # the columns that declare themselves tested
_BY_KEY = {c.key: c for c in COLUMNS}


def _value(r, key):
    v = _BY_KEY[key].value(r) if key in _BY_KEY else r.get(key)
    return float(v) if v is not None and math.isfinite(float(v)) else None


def arm_tests(conds, keys=STAT_KEYS) -> list:
    """Each selector arm against `none` of the same run (size, alpha) at the last iteration every seed
    reached: per metric the means, sds, the difference (arm - none) with a 95 % Welch interval and
    Welch's two-sided p-value (scipy; None with fewer than 2 seeds a side or no spread)."""
    from scipy import stats  # optional: scipy (the data and test extras), and start-up time
    out = []
    for name, c in conds.items():
        if _selector(c["arm"]) == "none":
            continue
        base = name[: len(name) - len(c["arm"])] + c["arm"].split("-", 1)[0] + "-none"
        ref = conds.get(base)
        if ref is None:
            continue
        last = min(max(r["iteration"] for _, rs in cc["seeds"].values() for r in rs) for cc in (c, ref))
        for key in keys:
            def vals(cc):
                return [v for _, rs in cc["seeds"].values() for r in rs if r["iteration"] == last
                        for v in [_value(r, key)] if v is not None]
            a, b = vals(c), vals(ref)
            if not a or not b:
                continue
            row = {"condition": name, "vs": base, "iteration": last, "metric": key, "n_arm": len(a), "n_none": len(b),
                   "mean_arm": float(np.mean(a)), "sd_arm": float(np.std(a, ddof=1)) if len(a) > 1 else None,
                   "mean_none": float(np.mean(b)), "sd_none": float(np.std(b, ddof=1)) if len(b) > 1 else None,
                   "diff": float(np.mean(a) - np.mean(b)), "ci95": None, "p": None}
            if len(a) > 1 and len(b) > 1:
                va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
                se = math.sqrt(va + vb)
                if se > 0:
                    df = (va + vb) ** 2 / ((va ** 2 / (len(a) - 1) if va else 0) + (vb ** 2 / (len(b) - 1) if vb else 0))
                    h = float(stats.t.ppf(0.975, df)) * se
                    row["ci95"] = [row["diff"] - h, row["diff"] + h]
                    row["p"] = float(_quietly(f"Welch test of {key}, {name} vs {base}", stats.ttest_ind, a, b,
                                              equal_var=False).pvalue)
            out.append(row)
    return out
