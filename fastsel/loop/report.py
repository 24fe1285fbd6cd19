"""``fastsel report RUN_DIR``: plots and report.md from a loop's metrics (the paper's Figures 2b,
3, 8-12): GS, FID and entropy per iteration per arm, source shares, entropy vs log GS with its
Pearson r, and generated images beside their nearest training images."""
from __future__ import annotations

import json
import math
import os

import numpy as np

from .. import metrics as M
from ..io import DataError, atomic_path, save_text
from .run import gather_rows, iter_path


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)


def _by_arm(records):
    arms = {}
    for r in sorted(records, key=lambda r: (r["arm"], r["iteration"])):
        arms.setdefault(r["arm"], []).append(r)
    return arms


def _line_plot(arms, key, label, path):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for arm, rs in arms.items():
        pts = [(r["iteration"], r[key]) for r in rs if r.get(key) is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=arm)
    ax.set_xlabel("iteration")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save(fig, path)


def _shares_plot(arms, path):
    plt = _plt()
    fig, axes = plt.subplots(1, len(arms), figsize=(4 * len(arms), 3.2), squeeze=False)
    for ax, (arm, rs) in zip(axes[0], arms.items()):
        its = [r["iteration"] for r in rs]
        bottom = np.zeros(len(rs))
        n_src = max(len(r["shares"]) for r in rs)
        others = plt.cm.autumn(np.linspace(0.1, 0.9, max(1, n_src - 1)))
        for s in range(n_src):
            v = np.array([r["shares"][s] if s < len(r["shares"]) else 0.0 for r in rs])
            ax.bar(its, v, bottom=bottom, label="real" if s == 0 else f"gen {s}",
                   color="tab:blue" if s == 0 else others[s - 1], edgecolor="white", linewidth=0.5)
            bottom += v
        ax.set_xticks(its)
        ax.plot(its, [1.0 / (i + 1) for i in its], color="red", lw=1, label="1/(t+1)")
        ax.set_title(arm, fontsize=9)
        ax.set_xlabel("iteration")
        ax.set_ylim(0, 1.05)
    axes[0][0].set_ylabel("share of training set")
    axes[0][-1].legend(fontsize=6, loc="upper right")
    _save(fig, path)


FEATURE_NAMES = {"pixels": "pixels", "inception": "Inception", "dinov2-s": "DINOv2-S", "dinov2-b": "DINOv2-B",
                 "dinov2-l": "DINOv2-L", "lenet": "LeNet"}


def space(name: str) -> str:
    """How a feature space is named in labels: "GS (pixels)", "FID (Inception)"."""
    return FEATURE_NAMES.get(name, name)


def _scatter(records, path, feat="features"):
    pts = [(r["entropy"], math.log(r["gs"])) for r in records
           if r.get("entropy") is not None and r.get("gs") and r["gs"] > 0]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(4.4, 3.4))
    r = None
    if pts:
        e, g = map(np.array, zip(*pts))
        ax.scatter(e, g, s=14)
        if len(pts) > 2 and np.std(e) > 0 and np.std(g) > 0:
            r = M.pearson(e, g)
    ax.set_xlabel(f"entropy of the training set ({feat})")
    ax.set_ylabel(f"log GS ({feat})")
    ax.set_title(f"Pearson r = {r:.3f}" if r is not None else "Pearson r: too few points", fontsize=9)
    _save(fig, path)
    return r


def _neighbours(run_dir, arms, path, per_arm=6):
    """Generated images of each arm's newest iteration beside their nearest training image."""
    from .. import ops
    rows = []
    for arm, rs in arms.items():
        t = rs[-1]["iteration"]
        d = iter_path(run_dir, arm, t)
        try:
            gen = np.load(os.path.join(d, "samples.npy"), mmap_mode="r", allow_pickle=False)[:per_arm]
            gf = np.load(os.path.join(d, "feats.npy"), allow_pickle=False)[:per_arm]
            if t == 0:  # trained on the first n real rows
                n = rs[-1]["n_train"]
                src, idx = np.zeros(n, np.int16), np.arange(n, dtype=np.int64)
            else:
                src = np.load(os.path.join(d, "train_src.npy"), allow_pickle=False)
                idx = np.load(os.path.join(d, "train_idx.npy"), allow_pickle=False)
            tim, _, tf = gather_rows(run_dir, arm, src, idx)
        except OSError:
            continue
        nn = ops.nn(gf, tf, k=1).indices[:, 0].numpy()
        rows.append((f"{arm} it{t}", np.asarray(gen), tim[nn]))
    if not rows:
        return False
    plt = _plt()
    k = max(len(g) for _, g, _ in rows)
    fig, axes = plt.subplots(len(rows), 2 * k, figsize=(1.1 * 2 * k, 1.25 * len(rows)), squeeze=False)
    for a, (name, gen, near) in enumerate(rows):
        for j in range(k):
            for c, im in ((2 * j, gen), (2 * j + 1, near)):
                ax = axes[a][c]
                ax.axis("off")
                if j < len(im):
                    x = im[j]
                    ax.imshow(x[..., 0] if x.shape[-1] == 1 else x, cmap="gray" if x.shape[-1] == 1 else None)
        axes[a][0].set_title(name, fontsize=6, loc="left")
    fig.suptitle("generated | nearest training image (feature space)", fontsize=8)
    _save(fig, path)
    return True


def write_report(run_dir: str, quiet: bool = False) -> str:
    mpath = os.path.join(run_dir, "metrics.json")
    if not os.path.exists(mpath):
        raise DataError(f"{run_dir}: no metrics.json (not a fastsel loop run, or no iteration finished yet)")
    with open(mpath) as f:
        m = json.load(f)
    records = m["iterations"]
    out = os.path.join(run_dir, "report")
    os.makedirs(out, exist_ok=True)
    arms = _by_arm(records)
    cfg = m["config"]
    fs, ffs = space(cfg["features"]), space(cfg["fid_features"])
    _line_plot(arms, "gs", f"GS ({fs}): mean 1-NN dist. generated -> training", os.path.join(out, "gs.png"))
    _line_plot(arms, "fid", f"FID ({ffs})", os.path.join(out, "fid.png"))
    _line_plot(arms, "entropy", f"KL entropy of the training set ({fs})", os.path.join(out, "entropy.png"))
    _shares_plot(arms, os.path.join(out, "shares.png"))
    r = _scatter(records, os.path.join(out, "entropy_vs_gs.png"), fs)
    has_nn = _neighbours(run_dir, arms, os.path.join(out, "neighbours.png"))
    lines = [f"# fastsel loop report: {cfg['dataset']} ({cfg['preset']} preset)", "",
             f"GS, entropy and MNND are computed on **{fs}** features; FID on **{ffs}** features"
             + ("" if (cfg["features"], cfg["fid_features"]) == ("dinov2-s", "inception")
                else " (the paper: DINOv2 for GS/entropy, Inception for FID -- numbers here are not comparable "
                     "with the paper's)") + ".", "",
             f"paradigm {cfg['paradigm']}, selectors {', '.join(cfg['selectors'])}, n = {cfg['n']}, "
             f"{cfg['iterations']} iterations, UNet {cfg['unet']}, seed {cfg['seed']}"
             + (f", threshold: alpha {cfg['alpha']}, decay {cfg.get('decay', 'empty-pass')}, "
                f"order {cfg.get('order', 'index')}" if "threshold" in cfg["selectors"] else "") + ".", "",
             f"| arm | iteration | GS ({fs}) | FID ({ffs}) | entropy ({fs}) | MNND ({fs}) | cov trace ({fs}) "
             "| real share |", "|---|---|---|---|---|---|---|---|"]

    def f(v):
        return "" if v is None else f"{v:.4g}"
    for arm, rs in arms.items():
        for x in rs:
            lines.append(f"| {arm} | {x['iteration']} | {f(x['gs'])} | {f(x['fid'])} | {f(x['entropy'])} | "
                         f"{f(x['mnnd'])} | {f(x['cov_trace'])} | {f(x['shares'][0])} |")
    th = [(arm, x) for arm, rs in arms.items() for x in rs if x.get("selection")]
    if th:
        lines += ["", "Threshold filter per iteration (tau0 -> tau_end, decays, passes, filled, order):", "",
                  "| arm | iteration | tau0 | tau_end | decays | passes | filled | order |", "|---|---|---|---|---|---|---|---|"]
        for arm, x in th:
            s_ = x["selection"]
            lines.append(f"| {arm} | {x['iteration']} | {f(s_['tau0'])} | {f(s_['tau_end'])} | {s_['decays']} | "
                         f"{s_['passes']} | {s_['n_filled']} | {s_['order']} |")
    lines += ["", f"Entropy vs log GS ({fs}) over all arms and iterations: Pearson r = {f(r)}.", "",
              "![generalization score](gs.png) ![FID](fid.png) ![entropy](entropy.png)", "",
              "![source shares](shares.png) ![entropy vs log GS](entropy_vs_gs.png)", ""]
    if has_nn:
        lines += ["![generated images beside their nearest training images](neighbours.png)", ""]
    path = os.path.join(out, "report.md")
    save_text(path, "\n".join(lines))
    if not quiet:
        print(path)
    return path
