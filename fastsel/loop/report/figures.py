"""The report's figures (matplotlib, drawn off screen), each titled with its paper figure number."""
from __future__ import annotations

import math
import os
import re
import textwrap

import numpy as np

from ...io import atomic_path
from ..analysis import PRIMARY
from ..columns import CORRELATIONS, column, figures
from ..rundir import gather_rows, iter_path, load_array
from .load import _selector
from .stats import _band, _t_half, _value, correlation, distinct_points, run_correlation
from ...ops.nn import nn
from ...metrics import COPY_RATIO


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


ARM_COLOURS = {"none": "tab:gray", "greedy": "tab:blue", "threshold": "tab:orange", "all": "tab:green",
               "random": "tab:purple", "facility": "tab:red", "dpp": "tab:brown", "herding": "tab:pink",
               "semdedup": "tab:olive", "kmeans-balanced": "tab:cyan"}  # one colour per registered selector
MARKERS = "osD^vP*Xh<>"


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


def _run_r_text(rc) -> str:
    if rc["r"] is None:
        return f"run means: too few for r ({rc['points']})"
    ci = f", 95 % CI [{rc['ci95'][0]:.2f}, {rc['ci95'][1]:.2f}]" if rc["ci95"] else ""
    unit = f"{rc['points']} runs" if rc["points"] == rc["runs"] else f"{rc['points']} run-arms, {rc['runs']} runs"
    return f"run means: r = {rc['r']:.3f}{ci} ({unit})"


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
        res = nn(px(gen), px(tim), k=2)
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


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "run"


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
    corr = []
    for stem, (paper, title, what, panels) in CORRELATIONS.items():  # Figs. 2b, 2c
        corr += _scatter(pool, [(p.x, column(p.x).axis.format(fs=fs), p.y, p.y_axis.format(fs=fs)) for p in panels],
                         os.path.join(out, f"{stem}.png"), title.format(fs=fs, which=which))
        add(True, f"{stem}.png", paper, what.format(which=which))
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
    return figs, corr, which, dropped


def _p_text(p: float) -> str:
    """A p as the docs write it: three decimals (0.100, 0.014), two significant digits below 0.001."""
    return f"{p:.3f}" if p >= 0.001 else f"{p:.2g}"


def analysis_figure(res: dict, path: str) -> bool:
    """The declared analysis (:func:`fastsel.loop.analysis.analyse`'s result) drawn from its own numbers:
    (a) the primary measure's mean by arm and iteration over the complete seeds, (b) each arm minus none by
    iteration with its 95 % t interval -- the declared iteration filled, the exploratory ones hollow --,
    (c) the per-seed differences at the declared iteration with their mean and bootstrap interval.
    False (nothing drawn) when no arm has a tested difference."""
    prim = [p for p in res["primary"] if p.get("values")]
    if not prim:
        return False
    plt = _plt()
    it0 = res["iteration"]
    arms = ["none"] + [p["arm"] for p in prim]
    style = {a: dict(color=ARM_COLOURS.get(a, "k"), marker=MARKERS[i % len(MARKERS)]) for i, a in enumerate(arms)}
    step = min(DODGE, 0.4 / max(1, len(arms) - 1))
    n_seeds = len(res["seeds_complete"])
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(14.5, 4.6))
    for i, a in enumerate(arms):  # (a)
        t = res["trajectory"].get(a)
        if not t or not t["iterations"]:
            continue
        x = np.asarray(t["iterations"], float) + (i - (len(arms) - 1) / 2) * step
        ax1.plot(x, t["mean"], ms=4, lw=1.1, label=a if min(t.get("n", [2])) == n_seeds else
                 f"{a} (n = {min(t['n'])}–{max(t['n'])} seeds)", **style[a])
        for xi, c in zip(x, t["ci95"]):
            if c is not None:
                ax1.vlines(xi, c[0], c[1], color=style[a]["color"], lw=1.2, alpha=0.7)
    ax1.set_title(f"(a) {PRIMARY} by arm, mean over the {n_seeds} complete seeds\nbars: each arm's own 95 % t interval (not the "
                  "paired test: see (b));\niteration 0: one shared model", fontsize=9)
    ax1.set_xlabel("iteration (arms side by side)")
    ax1.set_ylabel(PRIMARY)
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(fontsize=8, frameon=False)
    ax2.axhline(0, color="k", lw=0.8)  # (b)
    for j, p in enumerate(prim):
        a = p["arm"]
        rows = sorted([s for s in res["secondary"] if s["arm"] == a and s["metric"] == PRIMARY and s["diff"] is not None]
                      + [p], key=lambda s: s["iteration"])
        off = (j - (len(prim) - 1) / 2) * step
        x = np.array([s["iteration"] for s in rows], float) + off
        ax2.plot(x, [s["diff"] for s in rows], lw=1.0, color=style[a]["color"], alpha=0.6)
        for xi, s in zip(x, rows):
            declared = s is p
            ax2.plot([xi], [s["diff"]], ls="", ms=6 if declared else 4, mfc=style[a]["color"] if declared else "white",
                     mec=style[a]["color"], marker=style[a]["marker"],
                     label=(f"{a} (iteration {it0}, {p['n']} seeds" + (f": Holm-adjusted p = {_p_text(p['p_holm'])})"
                            if p.get("p_holm") is not None else ": no test)") if declared else None))
            if s["ci95"] is not None:
                ax2.vlines(xi, *s["ci95"], color=style[a]["color"], lw=1.2, alpha=0.7)
    tested = "the declared test" if res.get("declared_iteration", True) else "the tested iteration (not the declared one)"
    ax2.set_title(f"(b) arm − none, paired over seeds, 95 % t interval\nfilled: {tested} (iteration {it0}); "
                  "hollow: exploratory", fontsize=9)
    ax2.set_xlabel("iteration (arms side by side)")
    ax2.set_ylabel(f"{PRIMARY}: arm − none")
    ax2.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.16))  # below: no bar hidden
    ax3.axhline(0, color="k", lw=0.8)  # (c)
    for j, p in enumerate(prim):
        v = np.asarray(p["values"])
        k = np.argsort(np.argsort(v))  # points spread by rank, so equal values stay visible
        x = j + (k - (len(v) - 1) / 2) * (0.5 / max(1, len(v)))
        ax3.plot(x, v, ls="", ms=4, alpha=0.8, **style[p["arm"]])
        ax3.hlines(p["diff"], j - 0.3, j + 0.3, color="k", lw=1.4)
        if p["boot95"] is not None:
            ax3.add_patch(plt.Rectangle((j - 0.3, p["boot95"][0]), 0.6, p["boot95"][1] - p["boot95"][0],
                                        color=style[p["arm"]]["color"], alpha=0.15, lw=0))
    ax3.set_xticks(range(len(prim)), [p["arm"] for p in prim])
    ax3.set_xlim(-0.6, len(prim) - 0.4)
    ax3.set_title(f"(c) per-seed arm − none at iteration {it0}\nline: mean; band: 95 % bootstrap interval over seeds",
                  fontsize=9)
    ax3.set_ylabel(f"{PRIMARY}: arm − none")
    for ax in (ax1, ax2):
        ax.xaxis.get_major_locator().set_params(integer=True)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3)
    state = (f"INTERIM: {n_seeds} of {len(res['declared_seeds'])} declared seeds, decides nothing" if res["interim"]
             else f"all {len(res['declared_seeds'])} declared seeds")
    _suptitle(fig, f"Declared analysis (docs/analysis.md), {res.get('family', 'accumulate')} family: {state}", 11)
    fig.tight_layout()
    _save(fig, path)
    return True
