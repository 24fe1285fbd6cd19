"""``fastsel report RUN [RUN ...]``: the paper's figures from one or more loop runs (and the
sub-runs of a sweep), each titled with its figure number, feature space and settings, plus
report.md listing them.

Figures, as the data allows: GS / FID / entropy / class confidence per iteration, one line per arm,
training-set size and alpha (Figs. 1-right, 2a, 8-10, 13, 14); MNND and covariance trace
(Fig. 7); entropy vs GS with Pearson r and its p-value (Fig. 2b); variance vs GS (Fig. 2c);
SVD projection of real vs generated features (Fig. 6); source shares with the 1/(t+1) line
(Fig. 11); sample grids per iteration (Figs. 15-20); generated images beside their nearest
training images for a chosen iteration (Figs. 1-left, 12).
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
import textwrap
import warnings

import numpy as np

from .. import ops
from ..io import DataError, UsageProblem, atomic_path, check_distinct, save_text
from ..metrics import COPY_RATIO
from .columns import COLUMNS, figures, shown
from .config import FREE_SETTINGS, saved_settings, settings_hash
from .rundir import check_metrics, damaged, gather_rows, iter_path, load_array, read_json

FEATURE_NAMES = {"pixels": "pixels", "inception": "Inception", "dinov2-s": "DINOv2-S", "dinov2-b": "DINOv2-B",
                 "dinov2-l": "DINOv2-L", "lenet": "LeNet", "lenet-fashion": "LeNet"}


def space(name: str) -> str:
    """How a feature space is named in labels: "GS (pixels)", "FID (Inception)"."""
    return FEATURE_NAMES.get(name, name)


def _plt():
    import matplotlib  # optional: the loop extra (and start-up time)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional: the loop extra (and start-up time)
    return plt


def _suptitle(fig, text: str, fontsize: float = 8) -> None:
    """The figure's title, each line wrapped to the figure's width (a one-panel figure's long title would
    otherwise run over its legend)."""
    width = max(40, int(fig.get_figwidth() * 72 / (0.5 * fontsize)))  # characters of about half an em
    fig.suptitle("\n".join(textwrap.fill(line, width) for line in text.split("\n")), fontsize=fontsize)


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)


# ---------------------------------------------------------------------- loading

def load_sweep(run_dir: str) -> list:
    path = os.path.join(run_dir, "sweep.json")
    runs = read_json(run_dir, path).get("runs")
    if not isinstance(runs, list) or not all(isinstance(r, str) and r and os.sep not in r for r in runs):
        raise DataError(f"{path} is damaged (runs {runs!r}): not a list of sub-run names")
    return runs


def load_runs(paths) -> list:
    """[{label, dir, config, records}] for each run, a sweep's sub-runs included."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    runs = []
    for p in paths:
        base = os.path.basename(os.path.normpath(p))
        if os.path.exists(os.path.join(p, "sweep.json")):
            subs = [(name, os.path.join(p, name)) for name in load_sweep(p)]
        else:
            subs = [("", p)]
        for name, d in subs:
            mpath = os.path.join(d, "metrics.json")
            if not os.path.exists(mpath):
                if name:  # a sweep's sub-run that has not finished an iteration yet
                    continue
                raise DataError(f"{d}: no metrics.json (not a fastsel loop run, or no iteration finished yet)")
            m = check_metrics(d, mpath, read_json(d, mpath))
            check_unedited(d, mpath, m)
            label = name if len(paths) == 1 else (f"{base}/{name}" if name else base)
            runs.append({"label": label, "dir": d, "config": m["config"], "records": m["iterations"]})
    runs = [r for r in runs if r["records"]]  # a run whose iteration list is empty adds nothing
    if not runs:
        raise DataError(f"{', '.join(paths)}: no finished iteration to report")
    labels = [r["label"] for r in runs]
    if len(set(labels)) < len(labels):  # two folders of the same name (a/seed0, b/seed0): name them by path
        top = os.path.commonpath([os.path.realpath(r["dir"]) for r in runs])
        for r in runs:
            rel = os.path.relpath(os.path.realpath(r["dir"]), top)
            if labels.count(r["label"]) > 1 and rel != ".":
                r["label"] = rel
    return runs


def check_unedited(run_dir: str, mpath: str, m: dict) -> None:
    """The run's settings are the ones its results were computed with: metrics.json's config hashes to the
    config_sha256 written with it, and the run's config.json (where there is one) holds the same settings
    (FREE_SETTINGS aside; settings added since take their defaults) -- a file edited after the run (to pool
    it with other runs, or by mistake) is refused in one line naming what differs. Runs recorded before
    config_sha256 existed are read as they are."""
    h = m.get("config_sha256")
    if h is None:
        return
    if not isinstance(h, str):
        raise damaged(run_dir, mpath, f"config_sha256 {h!r}")
    try:
        now = settings_hash(m["config"])
    except (TypeError, ValueError):
        raise damaged(run_dir, mpath, "its config is not plain JSON") from None
    if now != h:
        raise DataError(f"{mpath}: its config was edited after the run (config_sha256 {h[:12]}... recorded, "
                        f"{now[:12]}... for the config it holds now): put it back -- the report pools runs by the "
                        "settings they ran with")
    cpath = os.path.join(run_dir, "config.json")
    if not os.path.isfile(cpath):
        return
    restore = ("restore it from metrics.json's \"config\", the settings the run used (only "
               f"{', '.join(FREE_SETTINGS)} may differ)")
    try:
        with open(cpath, encoding="utf-8") as f:
            c = json.load(f)
        if not isinstance(c, dict):
            raise ValueError(f"a JSON {type(c).__name__}")
        c, ran = saved_settings(c), saved_settings(m["config"])
    except (OSError, TypeError, ValueError) as e:  # UnicodeDecodeError is a ValueError
        raise DataError(f"{cpath}: not readable JSON settings ({str(e).splitlines()[0][:80]}): {restore}") from None
    diff = sorted(k for k in set(c) | set(ran) if c.get(k) != ran.get(k))
    if diff:
        shown = ", ".join(f"{k} {ran.get(k)!r} -> {c.get(k)!r}" for k in diff[:4])
        raise DataError(f"{cpath}: edited after the run: {', '.join(diff)} differ{'s' if len(diff) == 1 else ''} from the settings its results were "
                        f"computed with (metrics.json, config_sha256 {h[:12]}...: {shown}); {restore}")


ARM_COLOURS = {"none": "tab:gray", "greedy": "tab:blue", "threshold": "tab:orange", "all": "tab:green",
               "random": "tab:purple", "facility": "tab:red", "dpp": "tab:brown", "herding": "tab:pink",
               "semdedup": "tab:olive", "kmeans-balanced": "tab:cyan"}  # one colour per registered selector
MARKERS = "osD^vP*Xh<>"


def _selector(arm: str) -> str:
    return arm.split("-", 1)[1] if "-" in arm else arm


def _prefix(run) -> str:
    """The run's label without its seed part: sub-runs that differ only in the seed are replicates."""
    return re.sub(r"(^|[-/])seed-?\d+$", "", run["label"]).rstrip("-/")


FIRST = ("dataset", "paradigm", "n", "alpha", "features", "fid_features", "unet", "preset", "iterations")


def _setup(run) -> str:
    """The run's configuration but its seed: runs are seeds of one condition only when these agree."""
    return json.dumps({k: v for k, v in run["config"].items() if k != "seed"}, sort_keys=True)


def _show(v) -> str:
    return v if isinstance(v, str) else ",".join(map(_show, v)) if isinstance(v, list) else json.dumps(v)


def _differing(cfgs) -> list:
    """The settings but the seed whose values differ between the configurations, FIRST first."""
    keys = sorted(set().union(*cfgs), key=lambda k: (FIRST.index(k) if k in FIRST else len(FIRST), k))
    return [k for k in keys if k != "seed" and len({json.dumps(c.get(k), sort_keys=True) for c in cfgs}) > 1]


def _apart(runs) -> tuple:
    """({run dir: its condition's name before the arm}, [notes]): the label without its seed part; where
    runs of one such name differ in more than the seed, each setup is named by the fewest settings that
    tell them apart ("[n=32]"), with a note -- they are never pooled as seeds of one condition."""
    groups = {}
    for run in runs:
        groups.setdefault(_prefix(run), {}).setdefault(_setup(run), []).append(run)
    names, notes = {}, []
    for prefix, setups in groups.items():
        cfgs = [g[0]["config"] for g in setups.values()]
        diff = _differing(cfgs) if len(cfgs) > 1 else []
        keys = next((diff[:i] for i in range(1, len(diff))
                     if len({tuple(_show(c.get(k)) for k in diff[:i]) for c in cfgs}) == len(cfgs)), diff)
        tags = ["[" + ", ".join(f"{k}={_show(c.get(k))}" for k in keys) + "]" for c in cfgs]
        for g, tag in zip(setups.values(), tags):
            names.update({run["dir"]: f"{prefix} {tag}".strip() if keys else prefix for run in g})
        if diff:
            labels = [r["label"] or r["dir"] for g in setups.values() for r in g]
            said = "; ".join(f"{k} " + " vs ".join(_show(c.get(k)) for c in cfgs) for k in diff[:3])
            more = f"; {len(diff) - 3} more settings" if len(diff) > 3 else ""
            notes.append(f"runs {', '.join(labels)} differ in more than the seed ({said}{more}): not pooled as "
                         f"seeds, reported as separate conditions {', '.join(tags)}")
    return names, notes


def _conditions(runs) -> dict:
    """name -> {"n", "alpha", "arm", "seeds": {seed: (run, records sorted by iteration)}}: one entry per
    (run without its seed, arm); the runs that differ only in the seed are the replicates (runs whose
    configurations differ otherwise are separate conditions: _apart)."""
    out = {}
    names = _apart(runs)[0]
    for run in runs:
        arms = {}
        for r in sorted(run["records"], key=lambda r: (r["arm"], r["iteration"])):
            arms.setdefault(r["arm"], []).append(r)
        for arm, rs in arms.items():
            name = f"{names[run['dir']]} {arm}".strip()
            c = out.setdefault(name, {"n": run["config"]["n"], "alpha": run["config"].get("alpha"), "arm": arm,
                                      "paradigm": run["config"]["paradigm"], "seeds": {}})
            seed = run["config"]["seed"]
            if seed in c["seeds"] and c["seeds"][seed][0]["dir"] != run["dir"]:  # never drop a run silently
                raise DataError(f"{c['seeds'][seed][0]['dir']} and {run['dir']} are the same condition ({name}) "
                                f"with the same seed {seed}: report them separately, or give them distinct names")
            c["seeds"][seed] = (run, rs)
    return out


def _series(conds) -> dict:
    """name -> (run, records) for one replicate per condition (the lowest seed): grids and projections."""
    return {name: c["seeds"][min(c["seeds"])] for name, c in conds.items()}


def _settings(runs, conds, pooled_as: str = "mean ± sd") -> str:
    """One line of the runs' settings; ``pooled_as`` says what the numbers over seeds are (the figures: the
    mean with a 95 % t-interval of the mean)."""
    c = {k: ",".join(sorted({r["config"][k] for r in runs})) for k in ("dataset", "paradigm", "unet")}
    ns = sorted({r["config"]["n"] for r in runs})
    alphas = sorted({r["config"]["alpha"] for r in runs})
    seeds = sorted({r["config"]["seed"] for r in runs})
    pooled = any(len(c_["seeds"]) > 1 for c_ in conds.values())  # replicates averaged somewhere
    return (f"{c['dataset']}, {c['paradigm']}, n={','.join(map(str, ns))}, UNet {c['unet']}, "
            + (f"seeds {','.join(map(str, seeds))}" + (f" ({pooled_as})" if pooled else " (not pooled: one run each)")
               if len(seeds) > 1 else f"seed {seeds[0]}")
            + (f", alpha={','.join(f'{a:g}' for a in alphas)}" if any("threshold" in r["config"]["selectors"]
                                                                       for r in runs) else ""))


DODGE = 0.06  # iterations between neighbouring arms' points, so arms with equal values stay visible
CI_NOTE = "mean over seeds, bars: 95 % t-interval of the mean"  # what the figures draw over seeds


def _style(conds) -> dict:
    """name -> matplotlib style: colour and marker by arm when several arms, else by size (viridis);
    line style by size when both vary."""
    plt = _plt()
    arms = sorted({_selector(c["arm"]) for c in conds.values()})
    ns = sorted({c["n"] for c in conds.values()})
    cmap = plt.get_cmap("viridis")
    styles = {}
    for name, c in conds.items():
        i = ns.index(c["n"])
        if len(arms) > 1:
            j = arms.index(_selector(c["arm"]))
            colour = ARM_COLOURS.get(_selector(c["arm"]), None)
            ls = ["-", "--", ":", "-."][i % 4]
            marker = MARKERS[j % len(MARKERS)]
        else:
            colour = cmap(0.1 + 0.8 * i / max(1, len(ns) - 1))
            ls = "-"
            marker = MARKERS[i % len(MARKERS)]
        styles[name] = dict(color=colour, ls=ls, marker=marker)
    return styles


def _dodges(conds) -> dict:
    """name -> x offset: the lines (arms, and sizes) side by side around each iteration (0 with one line).
    Lines that coincide (two selectors reaching the same entropy, two sizes that both copy nothing) would
    otherwise hide one another."""
    keys = sorted({(_selector(c["arm"]), c["n"]) for c in conds.values()})
    step = min(DODGE, 0.4 / max(1, len(keys) - 1))  # many lines stay within +-0.2 of their iteration
    return {name: (keys.index((_selector(c["arm"]), c["n"])) - (len(keys) - 1) / 2) * step if len(keys) > 1
            else 0.0 for name, c in conds.items()}


def _t_half(values) -> float:
    """Half-width of the 95 % t-interval of the mean of ``values`` (0 with fewer than two)."""
    k = len(values)
    if k < 2:
        return 0.0
    from scipy import stats  # optional: scipy (the data and test extras), and start-up time
    return float(stats.t.ppf(0.975, k - 1) * np.std(values, ddof=1) / math.sqrt(k))


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


def _constant_panel(conds, key):
    """The one value a metric takes in every condition, seed and iteration (at least two records), else None:
    such a panel (copy fraction 0 everywhere) is a flat line that hides nothing but says one number."""
    vals = {_value(r, key) for c in conds.values() for _, rs in c["seeds"].values() for r in rs} - {None}
    count = sum(1 for c in conds.values() for _, rs in c["seeds"].values() for r in rs if _value(r, key) is not None)
    return next(iter(vals)) if len(vals) == 1 and count > 1 else None


def _curves(conds, keys, path, title, settings, dropped=None):
    """One panel per metric, one line per condition (mean over seeds, with the 95 % t-interval of the mean
    as a bar at each point); panels without data are left out, and so are constant ones (said in the title
    and appended to ``dropped``)."""
    plt = _plt()
    styles = _style(conds)
    dodge = _dodges(conds)
    have = [(key, label) for key, label in keys
            if any(_band(c["seeds"], key)[0] for c in conds.values())]
    flat = [(key, label, _constant_panel(conds, key)) for key, label in have]
    said = [f"{label}: {v:.4g} in every run, arm and iteration (panel dropped)" for _, label, v in flat if v is not None]
    keep = [(key, label) for key, label, v in flat if v is None]
    if dropped is not None:
        dropped += [f"{os.path.basename(path)}: {s}" for s in said]
    if not keep:
        return False
    fig, axes = plt.subplots(1, len(keep), figsize=(4.4 * len(keep), 3.4), squeeze=False)
    handles = {}
    pooled = False
    for ax, (key, label) in zip(axes[0], keep):
        for name, c in conds.items():
            its, mean, half, k = _band(c["seeds"], key)
            if not its:
                continue
            st = styles[name]
            x = np.asarray(its, dtype=float) + dodge[name]
            (h,) = ax.plot(x, mean, ms=4, lw=1.1, label=name + (f" ({k} seeds)" if k > 1 else ""), **st)
            if k > 1:
                pooled = True
                ax.vlines(x, mean - half, mean + half, color=st["color"], lw=1.2, alpha=0.7)
            handles.setdefault(h.get_label(), h)
        ax.set_xlabel("iteration" + (" (lines side by side)" if any(dodge.values()) else ""))
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if pooled:
        from matplotlib.lines import Line2D  # optional: the loop extra (and start-up time)
        handles["95 % t-interval of the mean over seeds"] = Line2D([], [], color="k", lw=1.2, alpha=0.7,
                                                                 marker="|", ms=8, ls="")
    fig.legend(list(handles.values()), list(handles), fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 0.95),
               frameon=False)
    _suptitle(fig, f"{title}\n{settings}" + "".join(f"\n{s}" for s in said))
    fig.tight_layout()
    _save(fig, path)
    return True


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


def _run_r_text(rc) -> str:
    if rc["r"] is None:
        return f"run means: too few for r ({rc['points']})"
    ci = f", 95 % CI [{rc['ci95'][0]:.2f}, {rc['ci95'][1]:.2f}]" if rc["ci95"] else ""
    unit = f"{rc['points']} runs" if rc["points"] == rc["runs"] else f"{rc['points']} run-arms, {rc['runs']} runs"
    return f"run means: r = {rc['r']:.3f}{ci} ({unit})"


def _quietly(where: str, fn, *args, **kwargs):
    """fn(*args, **kwargs), each warning it raises (scipy's on constant or nearly identical values) raised
    again as one line saying where (write_report prints them as "warning: ..." lines)."""
    with warnings.catch_warnings(record=True) as caught:
        out = fn(*args, **kwargs)
    for w in caught:
        warnings.warn(f"{where}: {' '.join(str(w.message).split())}", stacklevel=2)
    return out


def _arm_colour(sel: str, arms) -> str:
    return ARM_COLOURS.get(sel) or f"C{arms.index(sel) % 10}"


def _scatter_style(records):
    """(colour(record), marker(record), legend handles): with several arms, colour by arm (iteration 0,
    whose model every arm shares, in black) and marker by iteration -- by size instead when sizes vary
    too; with one arm, colour by training-set size and marker by iteration."""
    from matplotlib.lines import Line2D  # optional: the loop extra (and start-up time)
    cmap = _plt().get_cmap("viridis")
    ns = sorted({r["_n"] for r in records})
    its = sorted({r["iteration"] for r in records})
    arms = sorted({_selector(r["arm"]) for r in records if r["iteration"] > 0})
    by_n = lambda n: cmap(0.1 + 0.8 * ns.index(n) / max(1, len(ns) - 1))  # noqa: E731
    hs = []
    if len(arms) > 1:
        def colour(r):
            return "black" if r["iteration"] == 0 else _arm_colour(_selector(r["arm"]), arms)
        hs += [Line2D([], [], ls="", marker="o", color=_arm_colour(a, arms), label=a) for a in arms]
        if 0 in its:
            hs.append(Line2D([], [], ls="", marker="o", color="black", label="any arm, iteration 0 (shared model)"))
        if len(ns) > 1:
            def marker(r):
                return MARKERS[ns.index(r["_n"]) % len(MARKERS)]
            hs += [Line2D([], [], ls="", marker=MARKERS[i % len(MARKERS)], mfc="none", mec="black", label=f"n = {n}")
                   for i, n in enumerate(ns)]
            return colour, marker, hs
    else:
        def colour(r):
            return by_n(r["_n"])
        hs += [Line2D([], [], ls="", marker="o", color=by_n(n), label=f"n = {n}") for n in ns]

    def marker(r):
        return MARKERS[its.index(r["iteration"]) % len(MARKERS)]
    hs += [Line2D([], [], ls="", marker=MARKERS[i % len(MARKERS)], mfc="none", mec="black", label=f"iteration {t}")
           for i, t in enumerate(its)]
    return colour, marker, hs


def _scatter(records, panels, path, title):
    """Panels of y = log GS (or another key) against x, one point per run, arm and iteration (colours and
    markers: _scatter_style). Each panel's title: Pearson r over the points with its two-sided p-value and
    their number, and r over the runs' means with its bootstrap interval over runs (run_correlation)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.7), squeeze=False)
    colour, marker, hs = _scatter_style(records)
    stats_out = []
    for ax, (xkey, xlabel, ykey, ylabel) in zip(axes[0], panels):
        r, p, k = correlation(records, xkey, ykey)
        for r_ in records:
            if r_.get(xkey) is None or not r_.get(ykey) or not math.isfinite(r_[xkey]) or r_[ykey] <= 0:
                continue
            ax.scatter(r_[xkey], math.log(r_[ykey]), s=22, marker=marker(r_), color=colour(r_),
                       edgecolors="white", linewidths=0.4, alpha=0.8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        rc = run_correlation(records, xkey, ykey)
        ax.set_title((f"points: r = {r:.3f}, p = {p:.2g} ({k})" if r is not None else f"too few points for r ({k})")
                     + "\n" + _run_r_text(rc), fontsize=7)
        stats_out.append((r, p, k, rc))
    fig.legend(handles=hs, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False)
    _suptitle(fig, title)
    fig.tight_layout()
    _save(fig, path)
    return stats_out


def _one_source(c) -> bool:
    """Every training set of the condition is drawn from one source (replace: the newest generation)."""
    return all(sum(1 for s in r["shares"] if s > 0) <= 1 for _, rs in c["seeds"].values() for r in rs)


def _shares(conds, path, settings, dropped=None):
    """Fig. 11: one panel per condition whose training sets mix sources (a panel of one-source sets -- the
    replace paradigm's -- is one full bar per iteration and is left out, said in ``dropped``)."""
    multi = {k: c for k, c in conds.items() if max(len(r["shares"]) for _, rs in c["seeds"].values() for r in rs) > 1}
    flat = [k for k, c in multi.items() if _one_source(c)]
    if flat and dropped is not None:
        dropped.append(f"{os.path.basename(path)}: {', '.join(flat)}: every training set is one source (the newest "
                       "generation), the same in every seed (panel dropped)")
    multi = {k: c for k, c in multi.items() if k not in flat}
    if not multi:
        return False
    plt = _plt()
    ncol = min(3, len(multi))
    nrow = -(-len(multi) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 2.9 * nrow + 0.5), squeeze=False, sharey=True)
    for ax in axes.flat[len(multi):]:
        ax.axis("off")
    n_src = max(len(r["shares"]) for c in multi.values() for _, rs in c["seeds"].values() for r in rs)
    cmap = plt.get_cmap("Oranges")
    for ax, (name, c) in zip(axes.flat, multi.items()):
        its = sorted({r["iteration"] for _, rs in c["seeds"].values() for r in rs})
        bottom = np.zeros(len(its))
        k = len(c["seeds"])
        for s in range(n_src):
            per = [[r["shares"][s] if s < len(r["shares"]) else 0.0
                    for _, rs in c["seeds"].values() for r in rs if r["iteration"] == t] for t in its]
            v = np.array([np.mean(p) for p in per])
            # one colour per generation whatever the run's length, so figures of different runs compare
            ax.bar(its, v, bottom=bottom, label="real" if s == 0 else f"generation {s}",
                   color="tab:blue" if s == 0 else cmap(min(0.95, 0.45 + 0.2 * (s - 1))), edgecolor="white",
                   lw=0.5)
            if s == 0 and k > 1:  # the uncertainty of the mean real share over seeds
                ax.errorbar(its, v, yerr=[_t_half(p) for p in per], fmt="none", ecolor="black", elinewidth=0.8,
                            capsize=2, label="real share: 95 % t-interval of the mean over seeds")
            bottom += v
        if c["paradigm"] == "accumulate":
            ax.hlines([1.0 / (i + 1) for i in its], [i - 0.4 for i in its], [i + 0.4 for i in its], color="red",
                      lw=1.2, linestyles="dashed", label="1/(t+1): uniform share of real")
        ax.set_title(name + (f"\nmean of {k} seeds" if k > 1 else ""), fontsize=7)
        ax.set_xlabel("iteration")
        ax.set_xticks(its)
        ax.set_ylim(0, 1.0)
    for row in axes:
        row[0].set_ylabel("share of the training set")
    h, lab = axes.flat[len(multi) - 1].get_legend_handles_labels()
    fig.legend(h, lab, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 0.9), frameon=False)
    _suptitle(fig, f"Fig. 11: source shares of each training set\n{settings}")
    fig.tight_layout()
    _save(fig, path)
    return True


def _svd(run, rs, path, fs):
    """Real features and generated features of a few iterations projected on the first two right
    singular vectors of the centred real features."""
    try:
        real = load_array(run["dir"], os.path.join(run["dir"], "real", "feats.npy"), 2, "f").astype(np.float64)
    except OSError:
        return False
    mu = real.mean(0)
    _, _, vt = np.linalg.svd(real - mu, full_matrices=False)
    its = sorted({rs[0]["iteration"], rs[len(rs) // 2]["iteration"], rs[-1]["iteration"]})
    arm = rs[-1]["arm"]
    plt = _plt()
    fig, axes = plt.subplots(1, len(its), figsize=(3.4 * len(its), 3.4), squeeze=False, sharex=True, sharey=True)
    rp = (real - mu) @ vt[:2].T
    for ax, t in zip(axes[0], its):
        try:
            g = load_array(run["dir"], os.path.join(iter_path(run["dir"], arm, t), "feats.npy"), 2, "f",
                           tail=(real.shape[1],))
        except OSError:
            continue
        gp = (g.astype(np.float64) - mu) @ vt[:2].T
        # generated first, real on top in a marker of its own: the (usually fewer) real points stay visible
        ax.scatter(gp[:, 0], gp[:, 1], s=4, alpha=0.45, color="tab:orange", edgecolors="none", label="generated",
                   zorder=2)
        ax.scatter(rp[:, 0], rp[:, 1], s=14, marker="x", linewidths=0.9, color="tab:blue",
                   label=f"real ({len(rp)})", zorder=3)
        ax.set_title(f"generated at iteration {t}", fontsize=7)
        ax.set_xlabel(f"singular direction 1 ({fs})", fontsize=7)
    axes[0][0].set_ylabel(f"singular direction 2 ({fs})", fontsize=7)
    h, lab = axes[0][0].get_legend_handles_labels()
    fig.legend(h, lab, fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 0.9), frameon=False, markerscale=3)
    _suptitle(fig, f"Fig. 6: real and generated {fs} features on the real data's first two singular directions, "
                   f"{run['label']} {arm}".strip())
    fig.tight_layout()
    _save(fig, path)
    return True


def _samples(run, rs, path, per=10):
    """Figs. 15-20: generated samples of every iteration, one row each."""
    rows = []
    for r in rs:
        try:
            im = load_array(run["dir"], os.path.join(iter_path(run["dir"], r["arm"], r["iteration"]), "samples.npy"),
                            4, "u", mmap=True)[:per]
        except OSError:
            continue
        rows.append((r["iteration"], np.asarray(im)))
    if not rows:
        return False
    plt = _plt()
    fig, axes = plt.subplots(len(rows), per, figsize=(0.8 * per, 0.85 * len(rows) + 0.5), squeeze=False)
    for a, (t, im) in enumerate(rows):
        for j in range(per):
            ax = axes[a][j]
            ax.axis("off")
            if j < len(im):
                x = im[j]
                ax.imshow(x[..., 0] if x.shape[-1] == 1 else x, cmap="gray" if x.shape[-1] == 1 else None)
        axes[a][0].set_title(f"iteration {t}", fontsize=6, loc="left")
    fig.suptitle(f"Figs. 15-20: samples per iteration, {run['label']} {rs[0]['arm']}".strip(), fontsize=8)
    _save(fig, path)
    return True


def _neighbours(series, path, iteration=None, per=6):
    """Generated images of a chosen iteration beside their nearest training image in pixel space (the
    space of the copy fraction), each pair marked with d1/d2 (a copy: d1/d2 < 1/3)."""
    rows = []
    for name, (run, rs) in series.items():
        pick = [r for r in rs if iteration is None or r["iteration"] == iteration]
        if not pick:
            continue
        r = pick[-1]
        t, arm, d = r["iteration"], r["arm"], iter_path(run["dir"], r["arm"], r["iteration"])
        try:
            gen = np.asarray(load_array(run["dir"], os.path.join(d, "samples.npy"), 4, "u", mmap=True)[:per])
            if t == 0:
                n = r["n_train"]
                src, idx = np.zeros(n, np.int16), np.arange(n, dtype=np.int64)
            else:
                src = load_array(run["dir"], os.path.join(d, "train_src.npy"), 1, "iu")
                idx = load_array(run["dir"], os.path.join(d, "train_idx.npy"), 1, "iu", rows=len(src))
            tim, _, _ = gather_rows(run["dir"], arm, src, idx, where=os.path.join(d, "train_idx.npy") if t else
                                    os.path.join(run["dir"], "metrics.json"))
        except OSError:
            continue
        if len(tim) < 2:
            continue
        px = lambda a: np.asarray(a, np.float32).reshape(len(a), -1) / 255.0  # noqa: E731
        res = ops.nn(px(gen), px(tim), k=2)
        dist = res.distances.double().numpy()
        seed = (run.get("config") or {}).get("seed")
        named = seed is not None and re.search(rf"seed{seed}(?!\d)", name)
        rows.append((f"{name}" + (f" (seed {seed})" if seed is not None and not named else "")
                     + f", iteration {t}", gen, tim[res.indices[:, 0].numpy()], dist[:, 0] / dist[:, 1]))
    if not rows:
        return False
    plt = _plt()
    k = max(len(g) for _, g, _, _ in rows)
    fig, axes = plt.subplots(2 * len(rows), k, figsize=(0.95 * k, 2.3 * len(rows) + 0.4), squeeze=False)
    for a, (name, gen, near, ratio) in enumerate(rows):
        for j in range(k):
            for rr, im in ((2 * a, gen), (2 * a + 1, near)):
                ax = axes[rr][j]
                ax.set_xticks([])
                ax.set_yticks([])
                if j < len(im):
                    x = im[j]
                    ax.imshow(x[..., 0] if x.shape[-1] == 1 else x, cmap="gray" if x.shape[-1] == 1 else None)
                    if rr == 2 * a + 1:
                        copy = ratio[j] < COPY_RATIO
                        ax.set_xlabel(f"d1/d2 {ratio[j]:.2f}" + (" copy" if copy else ""), fontsize=5,
                                      color="red" if copy else "black")
                        for sp in ax.spines.values():
                            sp.set_color("red" if copy else "black")
                else:
                    ax.axis("off")
        axes[2 * a][0].set_ylabel("generated", fontsize=6)
        axes[2 * a + 1][0].set_ylabel("nearest\ntraining", fontsize=6)
        axes[2 * a][0].set_title(name, fontsize=6, loc="left")
    fig.suptitle("Figs. 1-left, 12: generated images (top row of each pair) and their nearest training images "
                 "(bottom row; pixel space)", fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return True


# ---------------------------------------------------------------------- statistics

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


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "run"


# ---------------------------------------------------------------------- report

def _fmt(v) -> str:
    return "" if v is None else f"{v:.4g}"


def _draw(runs, out, conds, series, settings, fs, ffs, iteration):
    """Every figure the runs' data allows, into ``out``. Returns (figures as (file, paper figure, what it
    shows), the Fig. 2b and 2c correlations, which points they pooled, [panels left out and why])."""
    figs, dropped = [], []

    def add(ok, file, paper, what):
        if ok:
            figs.append((file, paper, what))

    for stem, cols, (title, paper, what) in figures():  # the columns say which figure draws them
        keys = [(c.key, (c.axis or c.report or c.key).format(fs=fs, ffs=ffs)) for c in cols]
        add(_curves(conds, keys, os.path.join(out, f"{stem}.png"), title.format(fs=fs, ffs=ffs), settings, dropped),
            f"{stem}.png", paper, what.format(fs=fs, ffs=ffs))
    pts = distinct_points(runs)
    none_replace = [r for r in pts if r["arm"].startswith("replace-") and
                    (r["iteration"] == 0 or r["arm"].endswith("-none"))]
    pool = none_replace if len(none_replace) > 2 else pts
    which = "replace paradigm, no selection" if pool is none_replace else "all runs and arms"
    s2b = _scatter(pool, [("entropy", f"KL entropy, raw ({fs})", "gs", f"log GS ({fs})"),
                          ("entropy_fixed", f"KL entropy at m rows ({fs})", "gs", f"log GS ({fs})"),
                          ("entropy_fixed", f"KL entropy at m rows ({fs})", "gs_norm", "log GS / held-out GS")],
                   os.path.join(out, "entropy_vs_gs.png"),
                   f"Fig. 2b: training-set entropy vs log GS ({fs}; {which}; one point per run, arm and iteration)")
    add(True, "entropy_vs_gs.png", "2b", f"entropy vs log GS over {which}")
    s2c = _scatter(pool, [("cov_trace", f"covariance trace ({fs})", "gs", f"log GS ({fs})"),
                          ("cov_trace", f"covariance trace ({fs})", "gs_norm", "log GS / held-out GS")],
                   os.path.join(out, "variance_vs_gs.png"),
                   f"Fig. 2c: training-set variance (covariance trace) vs log GS ({fs}; {which})")
    add(True, "variance_vs_gs.png", "2c", f"variance vs log GS over {which}")
    add(_shares(conds, os.path.join(out, "shares.png"), settings, dropped), "shares.png", "11",
        "share of real and of each generation in each training set (accumulate: with the 1/(t+1) line)")
    name0, (run0, rs0) = next(iter(series.items()))
    add(_svd(run0, rs0, os.path.join(out, "svd.png"), fs), "svd.png", "6",
        f"real vs generated features on the real data's first two singular directions ({name0})")
    for name, (run, rs) in series.items():
        file = f"samples_{_slug(name)}.png"
        add(_samples(run, rs, os.path.join(out, file)), file, "15-20", f"samples of every iteration, {name}")
    add(_neighbours(series, os.path.join(out, "neighbours.png"), iteration), "neighbours.png", "1-left, 12",
        "generated images above their nearest training images (pixels), iteration "
        + ("newest" if iteration is None else str(iteration)) + "; d1/d2 < 1/3 marks a copy")
    return figs, list(s2b) + list(s2c), which, dropped


def _head_lines(runs, settings, fs, ffs, figs, notes=(), dropped=()) -> list:
    """The title, what the features are, the runs (and which were not pooled), and the table of figures."""
    cfg = runs[0]["config"]
    seeds = sorted({r["config"]["seed"] for r in runs})
    lines = [f"# fastsel loop report: {settings}", "",
             f"GS, entropy and MNND are computed on **{fs}** features; FID on **{ffs}** features"
             + ("" if (cfg["features"], cfg["fid_features"]) == ("dinov2-s", "inception")
                else " (the paper: DINOv2 for GS/entropy, Inception for FID -- numbers here are not comparable "
                     "with the paper's)") + ". The copy fraction is the share of samples whose nearest training "
                     "image (pixels) is closer than a third of the second nearest; GS/held-out divides GS by the "
                     "mean 1-NN distance from held-out real images to the same training set.", "",
             f"Runs: {', '.join(r['label'] or os.path.basename(os.path.normpath(r['dir'])) for r in runs)}; "
             f"{cfg['iterations']} iterations, seeds {', '.join(map(str, seeds))}"
             + (f", threshold: decay {cfg.get('decay', 'empty-pass')}, order {cfg.get('order', 'index')}"
                if any("threshold" in r["config"]["selectors"] for r in runs) else "") + ".", ""]
    lines += [x for note in notes for x in (f"**Not pooled:** {note}.", "")]
    lines += ["## Figures", "", f"Figures over seeds: {CI_NOTE}.", "",
              "| file | paper figure | what it shows |", "|---|---|---|"]
    lines += [f"| [{fn}]({fn}) | Fig. {paper} | {what} |" for fn, paper, what in figs]
    return lines + (["", "Left out of the figures: " + "; ".join(dropped) + "."] if dropped else [])


CORR_PAIRS = [("raw KL entropy", "log GS"), ("KL entropy at m", "log GS"), ("KL entropy at m", "log GS/held-out"),
              ("covariance trace", "log GS"), ("covariance trace", "log GS/held-out")]


def _correlation_lines(corr, which) -> list:
    lines = ["", "## Correlations (Fig. 2b, 2c)", "",
             f"Pearson r over {which}, one point per run, arm and iteration (iteration 0 once per run); "
             "two-sided p (scipy). These points are not independent (a run's iterations follow one another).",
             "", "| x | y | r | p | points |", "|---|---|---|---|---|"]
    for (xl, yl), (r_, p_, k_, _) in zip(CORR_PAIRS, corr):
        lines.append(f"| {xl} | {yl} | {_fmt(r_)} | {_fmt(p_)} | {k_} |")
    lines += ["", "One point per run and arm -- the mean of x and of log y over its iterations (the shared "
              "iteration 0 counted in each arm) -- with a 95 % percentile bootstrap interval over runs "
              "(10,000 resamples of whole runs, seed 0):", "",
              "| x | y | r of run means | 95 % bootstrap CI | points | runs |", "|---|---|---|---|---|---|"]
    for (xl, yl), (_, _, _, rc) in zip(CORR_PAIRS, corr):
        ci = f"[{rc['ci95'][0]:.3g}, {rc['ci95'][1]:.3g}]" if rc["ci95"] else ""
        lines.append(f"| {xl} | {yl} | {_fmt(rc['r'])} | {ci} | {rc['points']} | {rc['runs']} |")
    return lines


def _arm_test_lines(conds, out) -> list:
    """The arms against none at the last iteration (also written to arm_tests.json)."""
    tests = arm_tests(conds)
    if not tests:
        return []
    lines = ["", "## Arms against none (last iteration)", "",
             "Mean ± sd over seeds; difference = arm − none with its 95 % Welch interval and Welch's "
             "two-sided p-value (scipy; blank with fewer than two seeds).", "",
             "| condition | it | metric | arm | none | arm − none | 95 % CI | p |",
             "|---|---|---|---|---|---|---|---|"]

    def ms(m, sd):
        return _fmt(m) + (f" ± {sd:.2g}" if sd is not None else "")
    for t_ in tests:
        ci = f"[{t_['ci95'][0]:.3g}, {t_['ci95'][1]:.3g}]" if t_["ci95"] else ""
        lines.append(f"| {t_['condition']} | {t_['iteration']} | {t_['metric']} | "
                     f"{ms(t_['mean_arm'], t_['sd_arm'])} | {ms(t_['mean_none'], t_['sd_none'])} | "
                     f"{t_['diff']:+.3g} | {ci} | {_fmt(t_['p'])} |")
    save_text(os.path.join(out, "arm_tests.json"), json.dumps(tests, indent=1))
    return lines


def _metric_lines(conds, records, fs, ffs) -> list:
    """Every report column, mean over seeds, per condition and iteration."""
    cols = shown(records, "report")
    lines = ["", "## Metrics (mean over seeds)", "",
             "| run / arm | iteration | seeds | " + " | ".join(c.report.format(fs=fs, ffs=ffs) for c in cols) + " |",
             "|---|---|---|" + "---|" * len(cols)]
    for name, c in conds.items():
        its = sorted({r["iteration"] for _, rs in c["seeds"].values() for r in rs})
        for t_ in its:
            recs = [r for _, rs in c["seeds"].values() for r in rs if r["iteration"] == t_]
            vals = []
            for col in cols:
                v = [col.value(r) for r in recs]
                v = [x for x in v if x is not None and math.isfinite(x)]
                vals.append(_fmt(float(np.mean(v))) if v else "")
            lines.append(f"| {name} | {t_} | {len(recs)} | " + " | ".join(vals) + " |")
    return lines


def _pool_lines(conds) -> list:
    """Per source of the candidate pool: spread, distance to the rest, kept share (mean over seeds)."""
    pools = [(name, x) for name, c in conds.items() for _, rs in c["seeds"].values() for x in rs
             if x.get("pool_sources")]
    if not pools:
        return []
    lines = ["", "## The candidate pool's sources (selection features)", "",
             "Per source of the pool a selector chose from: its spread (mean 1-NN distance within the source) "
             "and its distance to the other sources (mean 1-NN distance to the rest of the pool), and the "
             "share of it the selector kept. Mean over seeds.", "",
             "| run / arm | iteration | source | rows | within-source 1-NN | to other sources 1-NN | kept share |",
             "|---|---|---|---|---|---|---|"]
    agg = {}
    for name, x in pools:
        for s_ in x["pool_sources"]:
            agg.setdefault((name, x["iteration"], s_["source"]), []).append(s_)
    for (name, t_, src), ss in agg.items():
        def mean(k):
            v = [s[k] for s in ss if s.get(k) is not None]
            return _fmt(float(np.mean(v))) if v else ""
        lines.append(f"| {name} | {t_} | {'real' if src == 0 else f'generation {src}'} | {mean('rows')} | "
                     f"{mean('within_nn')} | {mean('to_others_nn')} | {mean('kept_share')} |")
    return lines


def _threshold_lines(series) -> list:
    th = [(name, x) for name, (_, rs) in series.items() for x in rs if x.get("selection")]
    if not th:
        return []
    lines = ["", "Threshold filter per iteration (tau0 -> tau_end, decays, passes, filled, order):", "",
             "| run / arm | iteration | tau0 | tau_end | decays | passes | filled | order |",
             "|---|---|---|---|---|---|---|---|"]
    for name, x in th:
        s_ = x["selection"]
        lines.append(f"| {name} | {x['iteration']} | {_fmt(s_.get('tau0'))} | {_fmt(s_.get('tau_end'))} | "
                     f"{s_.get('decays')} | {s_.get('passes')} | {s_.get('n_filled')} | {s_.get('order')} |")
    return lines


def _check_no_input_in(out: str, runs) -> None:
    """Refuse an ``out`` holding a link (or hard link) to a file the report reads: writing the report
    would replace the run's data. Inputs are the files under each run folder, ``out``'s own excepted."""
    real_out = os.path.realpath(out)
    existing = [os.path.join(out, f) for f in os.listdir(out)]
    if not existing:
        return
    inputs = []
    for run in runs:
        for dirpath, dirs, names in os.walk(run["dir"]):
            if os.path.realpath(dirpath) == real_out:
                dirs[:] = []
                continue
            inputs += [os.path.join(dirpath, n) for n in names]
    check_distinct(existing, inputs)


REPORT_MARK = ".fastsel-report"  # in an output folder: the report made it (or took it over while empty)


def _check_out_ours(out: str, run_dirs, runs) -> None:
    """Before anything is written: ``out`` is new, empty, one an earlier report wrote (REPORT_MARK) or
    the report/ folder of a run being reported; a folder of other files -- the user's own -- is refused."""
    if not os.path.isdir(out) or os.path.exists(os.path.join(out, REPORT_MARK)):
        return
    mine = {os.path.realpath(os.path.join(d, "report")) for d in list(run_dirs) + [r["dir"] for r in runs]}
    names = sorted(os.listdir(out))
    if names and os.path.realpath(out) not in mine and not _earlier_report(names):
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise DataError(f"{out} holds files the report did not write ({shown}): nothing was written -- choose a "
                        "new or empty folder for the report")


def _earlier_report(names) -> bool:
    """A report's folder written before REPORT_MARK: report.md with the figures every report draws, and
    only files a report writes."""
    return {"report.md", "entropy_vs_gs.png", "variance_vs_gs.png"} <= set(names) and all(
        n in ("report.md", "arm_tests.json") or n.endswith(".png") for n in names)


def _check_iteration(runs, iteration) -> None:
    its = sorted({r["iteration"] for run in runs for r in run["records"]})
    if iteration is not None and iteration not in its:
        raise UsageProblem(f"iteration {iteration}: no run has it (the runs have iterations "
                           f"{', '.join(map(str, its))}); choose one of those")


def _print_warnings(caught) -> None:
    """Each distinct warning as one "warning: ..." line on stderr (no file:line, no source line)."""
    seen = []
    for w in caught:
        msg = " ".join(str(w.message).split())
        if msg not in seen:
            seen.append(msg)
            print(f"warning: {msg}", file=sys.stderr, flush=True)


def write_report(run_dirs, out: str | None = None, iteration: int | None = None, quiet: bool = False) -> str:
    """Draw every figure the runs' data allows and write report.md beside them.

    report.md lists the figures with their paper figure numbers, the arms' differences from `none`
    with 95 % intervals and p-values (seeds as replicates: runs whose configurations differ in more
    than the seed are separate conditions, said in report.md and on stderr), and the correlations
    of Fig. 2. Warnings (scipy's on identical values, ...) are printed as one "warning: ..." line each.

    Args:
        run_dirs: one run folder (str) or several (the seeds and arms of a sweep, compared).
        out: where the figures and report.md go; default: the first run's ``report/``. A folder holding
            other files is refused (unless it is a run's report/ or an earlier report's folder).
        iteration: the iteration whose samples the nearest-neighbour figure shows (one the runs have);
            default: the newest.
        quiet: do not print the report's path.

    Returns:
        The path of report.md.

    Raises:
        fastsel.io.DataError: a folder holds no finished iteration (not a loop run, or none finished yet),
            a damaged metrics.json, or ``out`` holds files the report did not write.
        fastsel.errors.UsageProblem: ``iteration`` is in none of the runs.
    """
    with warnings.catch_warnings(record=True) as caught:
        try:
            path = _write_report(run_dirs, out, iteration)
        finally:
            _print_warnings(caught)
    if not quiet:
        print(path)
    return path


def _write_report(run_dirs, out, iteration) -> str:
    dirs = [run_dirs] if isinstance(run_dirs, str) else list(run_dirs)
    runs = load_runs(dirs)
    _check_iteration(runs, iteration)
    out = out or os.path.join(dirs[0], "report")
    _check_out_ours(out, dirs, runs)
    os.makedirs(out, exist_ok=True)
    _check_no_input_in(out, runs)
    open(os.path.join(out, REPORT_MARK), "a").close()  # ours from now on
    fs, ffs = ("/".join(sorted({space(r["config"][k]) for r in runs})) for k in ("features", "fid_features"))
    notes = _apart(runs)[1]
    for note in notes:
        warnings.warn(note, stacklevel=2)
    conds = _conditions(runs)
    settings = _settings(runs, conds)
    series = _series(conds)
    records = [r for run in runs for r in run["records"]]
    fig_settings = _settings(runs, conds, pooled_as=CI_NOTE)
    figs, corr, which, dropped = _draw(runs, out, conds, series, fig_settings, fs, ffs, iteration)
    lines = (_head_lines(runs, settings, fs, ffs, figs, notes, dropped) + _correlation_lines(corr, which)
             + _arm_test_lines(conds, out) + _metric_lines(conds, records, fs, ffs) + _pool_lines(conds)
             + _threshold_lines(series))
    lines += [""] + [f"![Fig. {paper}]({fn})" for fn, paper, _ in figs] + [""]
    path = os.path.join(out, "report.md")
    save_text(path, "\n".join(lines))
    return path
