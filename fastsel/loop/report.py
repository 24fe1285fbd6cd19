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

import numpy as np

from ..io import DataError, atomic_path, save_text
from .columns import shown
from .rundir import gather_rows, iter_path

FEATURE_NAMES = {"pixels": "pixels", "inception": "Inception", "dinov2-s": "DINOv2-S", "dinov2-b": "DINOv2-B",
                 "dinov2-l": "DINOv2-L", "lenet": "LeNet", "lenet-fashion": "LeNet"}


def space(name: str) -> str:
    """How a feature space is named in labels: "GS (pixels)", "FID (Inception)"."""
    return FEATURE_NAMES.get(name, name)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)


# ---------------------------------------------------------------------- loading

def load_sweep(run_dir: str) -> list:
    with open(os.path.join(run_dir, "sweep.json")) as f:
        return list(json.load(f)["runs"])


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
            with open(mpath) as f:
                m = json.load(f)
            label = name if len(paths) == 1 else (f"{base}/{name}" if name else base)
            runs.append({"label": label, "dir": d, "config": m["config"], "records": m["iterations"]})
    if not runs:
        raise DataError(f"{', '.join(paths)}: no finished iteration to report")
    return runs


def _series(runs) -> dict:
    """(label of run + arm) -> (run, records sorted by iteration)."""
    out = {}
    for run in runs:
        arms = {}
        for r in sorted(run["records"], key=lambda r: (r["arm"], r["iteration"])):
            arms.setdefault(r["arm"], []).append(r)
        for arm, rs in arms.items():
            out[f"{run['label']} {arm}".strip()] = (run, rs)
    return out


def _settings(runs) -> str:
    c = runs[0]["config"]
    ns = sorted({r["config"]["n"] for r in runs})
    alphas = sorted({r["config"]["alpha"] for r in runs})
    return (f"{c['dataset']}, {c['paradigm']}, n={','.join(map(str, ns))}, UNet {c['unet']}"
            + (f", alpha={','.join(f'{a:g}' for a in alphas)}" if any("threshold" in r["config"]["selectors"]
                                                                       for r in runs) else ""))


# ---------------------------------------------------------------------- figures

def _curves(series, keys, path, title, settings):
    plt = _plt()
    fig, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.5), squeeze=False)
    drawn = False
    for ax, (key, label) in zip(axes[0], keys):
        for name, (_, rs) in series.items():
            pts = [(r["iteration"], r[key]) for r in rs if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=name)
                drawn = True
        ax.set_xlabel("iteration")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    if not drawn:
        plt.close(fig)
        return False
    axes[0][-1].legend(fontsize=6)
    fig.suptitle(f"{title}\n{settings}", fontsize=8)
    _save(fig, path)
    return True


def _scatter(records, xkey, path, title, xlabel, ylabel, log_gs=True):
    """y = log GS against x; Pearson r and its two-sided p-value (scipy)."""
    pts = [(r[xkey], math.log(r["gs"]) if log_gs else r["gs"]) for r in records
           if r.get(xkey) is not None and math.isfinite(r[xkey]) and r.get("gs") and r["gs"] > 0]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.6, 3.5))
    r = p = None
    if pts:
        x, y = map(np.array, zip(*pts))
        ax.scatter(x, y, s=14)
        if len(pts) > 2 and np.std(x) > 0 and np.std(y) > 0:
            from scipy import stats
            r, p = (float(v) for v in stats.pearsonr(x, y))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    stat = f"Pearson r = {r:.3f}, p = {p:.2g} ({len(pts)} points)" if r is not None else "too few points for r"
    ax.set_title(f"{title}\n{stat}", fontsize=8)
    _save(fig, path)
    return r, p, len(pts)


def _shares(series, path, settings):
    multi = {k: v for k, v in series.items() if max(len(r["shares"]) for r in v[1]) > 1}
    if not multi:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, len(multi), figsize=(3.6 * len(multi), 3.2), squeeze=False)
    for ax, (name, (_, rs)) in zip(axes[0], multi.items()):
        its = [r["iteration"] for r in rs]
        bottom = np.zeros(len(rs))
        n_src = max(len(r["shares"]) for r in rs)
        cmap = plt.get_cmap("Oranges")
        for s in range(n_src):
            v = np.array([r["shares"][s] if s < len(r["shares"]) else 0.0 for r in rs])
            ax.bar(its, v, bottom=bottom, label="real" if s == 0 else f"gen {s}",
                   color="tab:blue" if s == 0 else cmap(0.3 + 0.6 * s / max(1, n_src - 1)), edgecolor="white", lw=0.5)
            bottom += v
        ax.plot(its, [1.0 / (i + 1) for i in its], color="red", lw=1, label="1/(t+1)")
        ax.set_title(name, fontsize=7)
        ax.set_xlabel("iteration")
        ax.set_xticks(its)
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel("share of the training set")
    axes[0][-1].legend(fontsize=6, loc="upper right")
    fig.suptitle(f"Fig. 11: source shares of each training set\n{settings}", fontsize=8)
    _save(fig, path)
    return True


def _svd(run, rs, path, fs):
    """Real features and generated features of a few iterations projected on the first two right
    singular vectors of the centred real features."""
    try:
        real = np.load(os.path.join(run["dir"], "real", "feats.npy"), allow_pickle=False).astype(np.float64)
    except OSError:
        return False
    mu = real.mean(0)
    _, _, vt = np.linalg.svd(real - mu, full_matrices=False)
    its = sorted({rs[0]["iteration"], rs[len(rs) // 2]["iteration"], rs[-1]["iteration"]})
    arm = rs[-1]["arm"]
    plt = _plt()
    fig, axes = plt.subplots(1, len(its), figsize=(3.4 * len(its), 3.3), squeeze=False)
    rp = (real - mu) @ vt[:2].T
    for ax, t in zip(axes[0], its):
        try:
            g = np.load(os.path.join(iter_path(run["dir"], arm, t), "feats.npy"), allow_pickle=False)
        except OSError:
            continue
        gp = (g.astype(np.float64) - mu) @ vt[:2].T
        ax.scatter(rp[:, 0], rp[:, 1], s=3, alpha=0.4, label="real")
        ax.scatter(gp[:, 0], gp[:, 1], s=3, alpha=0.5, color="tab:orange", label=f"generated, iteration {t}")
        ax.set_title(f"iteration {t}", fontsize=7)
        ax.legend(fontsize=6)
    fig.suptitle(f"Fig. 6: SVD projection of {fs} features, {run['label']} {arm}".strip(), fontsize=8)
    _save(fig, path)
    return True


def _samples(run, rs, path, per=10):
    """Figs. 15-20: generated samples of every iteration, one row each."""
    rows = []
    for r in rs:
        try:
            im = np.load(os.path.join(iter_path(run["dir"], r["arm"], r["iteration"]), "samples.npy"),
                         mmap_mode="r", allow_pickle=False)[:per]
        except OSError:
            continue
        rows.append((r["iteration"], np.asarray(im)))
    if not rows:
        return False
    plt = _plt()
    fig, axes = plt.subplots(len(rows), per, figsize=(0.8 * per, 0.85 * len(rows)), squeeze=False)
    for a, (t, im) in enumerate(rows):
        for j in range(per):
            ax = axes[a][j]
            ax.axis("off")
            if j < len(im):
                x = im[j]
                ax.imshow(x[..., 0] if x.shape[-1] == 1 else x, cmap="gray" if x.shape[-1] == 1 else None)
        axes[a][0].set_title(f"it {t}", fontsize=6, loc="left")
    fig.suptitle(f"Figs. 15-20: samples per iteration, {run['label']} {rs[0]['arm']}".strip(), fontsize=8)
    _save(fig, path)
    return True


def _neighbours(series, path, iteration=None, per=6):
    """Generated images of a chosen iteration beside their nearest training image (feature space)."""
    from .. import ops
    rows = []
    for name, (run, rs) in series.items():
        pick = [r for r in rs if iteration is None or r["iteration"] == iteration]
        if not pick:
            continue
        r = pick[-1]
        t, arm, d = r["iteration"], r["arm"], iter_path(run["dir"], r["arm"], r["iteration"])
        try:
            gen = np.load(os.path.join(d, "samples.npy"), mmap_mode="r", allow_pickle=False)[:per]
            gf = np.load(os.path.join(d, "feats.npy"), allow_pickle=False)[:per]
            if t == 0:
                n = r["n_train"]
                src, idx = np.zeros(n, np.int16), np.arange(n, dtype=np.int64)
            else:
                src = np.load(os.path.join(d, "train_src.npy"), allow_pickle=False)
                idx = np.load(os.path.join(d, "train_idx.npy"), allow_pickle=False)
            tim, _, tf = gather_rows(run["dir"], arm, src, idx)
        except OSError:
            continue
        nn = ops.nn(gf, tf, k=1).indices[:, 0].numpy()
        rows.append((f"{name} it{t}", np.asarray(gen), tim[nn]))
    if not rows:
        return False
    plt = _plt()
    k = max(len(g) for _, g, _ in rows)
    fig, axes = plt.subplots(len(rows), 2 * k, figsize=(1.0 * 2 * k, 1.15 * len(rows)), squeeze=False)
    for a, (name, gen, near) in enumerate(rows):
        for j in range(k):
            for c, im in ((2 * j, gen), (2 * j + 1, near)):
                ax = axes[a][c]
                ax.axis("off")
                if j < len(im):
                    x = im[j]
                    ax.imshow(x[..., 0] if x.shape[-1] == 1 else x, cmap="gray" if x.shape[-1] == 1 else None)
        axes[a][0].set_title(name, fontsize=6, loc="left")
    fig.suptitle("Figs. 1-left, 12: generated | nearest training image (feature space)", fontsize=8)
    _save(fig, path)
    return True


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_") or "run"


# ---------------------------------------------------------------------- report

def write_report(run_dirs, out: str | None = None, iteration: int | None = None, quiet: bool = False) -> str:
    """Draw every figure the runs' data allows into ``out`` (default: the first run's report/)
    and write report.md listing them with their paper figure numbers."""
    runs = load_runs(run_dirs)
    first = run_dirs if isinstance(run_dirs, str) else list(run_dirs)[0]
    out = out or os.path.join(first, "report")
    os.makedirs(out, exist_ok=True)
    cfg = runs[0]["config"]
    fs, ffs = space(cfg["features"]), space(cfg["fid_features"])
    settings = _settings(runs)
    series = _series(runs)
    records = [r for run in runs for r in run["records"]]
    figs = []  # (file, paper figures, what it shows)

    def add(ok, file, paper, what):
        if ok:
            figs.append((file, paper, what))

    add(_curves(series, [("gs", f"GS ({fs})")], os.path.join(out, "gs.png"),
                f"Figs. 1-right, 2a, 8, 13, 14: generalization score (mean 1-NN distance generated -> training, {fs})",
                settings), "gs.png", "1-right, 2a, 8, 13, 14", f"GS ({fs}) per iteration, one line per run and arm")
    add(_curves(series, [("fid", f"FID ({ffs})")], os.path.join(out, "fid.png"),
                f"Figs. 9, 14: FID ({ffs}) of the generated images against the real data", settings),
        "fid.png", "9, 14", f"FID ({ffs}) per iteration")
    add(_curves(series, [("entropy", f"KL entropy ({fs})")], os.path.join(out, "entropy.png"),
                f"Fig. 10: KL entropy of the training set ({fs})", settings), "entropy.png", "10",
        f"training-set entropy ({fs}) per iteration")
    add(_curves(series, [("mnnd", f"MNND ({fs})"), ("cov_trace", f"covariance trace ({fs})")],
                os.path.join(out, "mnnd_cov.png"), f"Fig. 7: MNND and covariance trace of the training set ({fs})",
                settings), "mnnd_cov.png", "7", "MNND and trace of covariance per iteration")
    if any("class_confidence" in r for r in records):
        add(_curves(series, [("class_confidence", "mean LeNet confidence"), ("class_entropy", "entropy of labels")],
                    os.path.join(out, "class.png"), "LeNet class statistics of the generated samples "
                    "(confidence: recognisable digits; label entropy: mode collapse lowers it)", settings),
            "class.png", "(MNIST; not in the paper)", "mean max-softmax and predicted-label entropy of the samples")
    none_replace = [r for run in runs for r in run["records"]
                    if run["config"]["paradigm"] == "replace" and r["arm"].endswith("-none")]
    pool = none_replace if len(none_replace) > 2 else records
    which = "replace paradigm, no selection" if pool is none_replace else "all runs and arms"
    r2b = _scatter(pool, "entropy", os.path.join(out, "entropy_vs_gs.png"),
                   f"Fig. 2b: training-set entropy vs log GS ({fs}; {which})", f"KL entropy ({fs})", f"log GS ({fs})")
    add(True, "entropy_vs_gs.png", "2b", f"entropy vs log GS over {which}: Pearson r = "
        + (f"{r2b[0]:.3f}, p = {r2b[1]:.2g}, {r2b[2]} points" if r2b[0] is not None else "n/a (too few points)"))
    r2c = _scatter(pool, "cov_trace", os.path.join(out, "variance_vs_gs.png"),
                   f"Fig. 2c: training-set variance (covariance trace) vs log GS ({fs}; {which})",
                   f"covariance trace ({fs})", f"log GS ({fs})")
    add(True, "variance_vs_gs.png", "2c", f"variance vs log GS over {which}: Pearson r = "
        + (f"{r2c[0]:.3f}, p = {r2c[1]:.2g}" if r2c[0] is not None else "n/a"))
    add(_shares(series, os.path.join(out, "shares.png"), settings), "shares.png", "11",
        "share of real and of each generation in each training set, with the 1/(t+1) line")
    name0, (run0, rs0) = next(iter(series.items()))
    add(_svd(run0, rs0, os.path.join(out, "svd.png"), fs), "svd.png", "6",
        f"real vs generated features on the real data's first two singular directions ({name0})")
    for name, (run, rs) in series.items():
        f = f"samples_{_slug(name)}.png"
        add(_samples(run, rs, os.path.join(out, f)), f, "15-20", f"samples of every iteration, {name}")
    add(_neighbours(series, os.path.join(out, "neighbours.png"), iteration), "neighbours.png", "1-left, 12",
        "generated images beside their nearest training images, iteration "
        + ("newest" if iteration is None else str(iteration)))
    th = [(name, x) for name, (_, rs) in series.items() for x in rs if x.get("selection")]

    def f(v):
        return "" if v is None else f"{v:.4g}"
    lines = [f"# fastsel loop report: {settings}", "",
             f"GS, entropy and MNND are computed on **{fs}** features; FID on **{ffs}** features"
             + ("" if (cfg["features"], cfg["fid_features"]) == ("dinov2-s", "inception")
                else " (the paper: DINOv2 for GS/entropy, Inception for FID -- numbers here are not comparable "
                     "with the paper's)") + ".", "",
             f"Runs: {', '.join(r['label'] or os.path.basename(os.path.normpath(r['dir'])) for r in runs)}; "
             f"{cfg['iterations']} iterations, seed {cfg['seed']}"
             + (f", threshold: decay {cfg.get('decay', 'empty-pass')}, order {cfg.get('order', 'index')}"
                if any("threshold" in r["config"]["selectors"] for r in runs) else "") + ".", "",
             "## Figures", "", "| file | paper figure | what it shows |", "|---|---|---|"]
    lines += [f"| [{fn}]({fn}) | Fig. {paper} | {what} |" for fn, paper, what in figs]
    cols = shown(records, "report")
    lines += ["", "## Metrics", "",
              "| run / arm | iteration | " + " | ".join(c.report.format(fs=fs, ffs=ffs) for c in cols) + " |",
              "|---|---|" + "---|" * len(cols)]
    for name, (_, rs) in series.items():
        for x in rs:
            lines.append(f"| {name} | {x['iteration']} | " + " | ".join(f(c.value(x)) for c in cols) + " |")
    if th:
        lines += ["", "Threshold filter per iteration (tau0 -> tau_end, decays, passes, filled, order):", "",
                  "| run / arm | iteration | tau0 | tau_end | decays | passes | filled | order |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, x in th:
            s_ = x["selection"]
            lines.append(f"| {name} | {x['iteration']} | {f(s_['tau0'])} | {f(s_['tau_end'])} | {s_['decays']} | "
                         f"{s_['passes']} | {s_['n_filled']} | {s_['order']} |")
    lines += [""] + [f"![{paper}]({fn})" for fn, paper, _ in figs] + [""]
    path = os.path.join(out, "report.md")
    save_text(path, "\n".join(lines))
    if not quiet:
        print(path)
    return path
