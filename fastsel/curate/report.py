"""report.md and its two image grids."""
from __future__ import annotations

import math
import os
import warnings

import numpy as np

from .. import metrics as M
from ..io import atomic_path
from .embed import _to_array
from .output import _drop_stale


def _grid(images: list, titles: list, path: str, cols: int, suptitle: str):
    import matplotlib  # optional: matplotlib (the loop extra)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # optional: matplotlib (the loop extra)
    rows = (len(images) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.45 * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, im, t in zip(axes.ravel(), images, titles):
        ax.imshow(im[..., 0] if im.shape[-1] == 1 else im, cmap="gray" if im.shape[-1] == 1 else None,
                  vmin=0, vmax=255)
        ax.set_title(t, fontsize=7)
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _entropies(sub, rsub, dedup, log) -> tuple:
    """KL entropy of the subset and of the random one (None where exact duplicates make it -inf: JSON
    has no -inf), and a note saying why one is missing."""
    if len(sub) < 2:
        return None, None, "a subset of one row has no KL entropy (it needs two)"
    with warnings.catch_warnings():  # exact duplicates: -inf, said once below
        warnings.simplefilter("ignore")
        ent, rent = M.kl_entropy(sub), M.kl_entropy(rsub)
    inf = [w for v, w in ((ent, "this subset"), (rent, "the random subset")) if not math.isfinite(v)]
    note = None
    if inf:
        note = (f"{' and '.join(inf)} {'hold' if len(inf) == 2 else 'holds'} exact duplicates (distance 0 "
                f"in feature space), so {'their' if len(inf) == 2 else 'its'} KL entropy is -inf"
                + ("; --dedup 1e-6 removes them before selection" if dedup is None else ""))
        log(f"note: {note}")
    return (*(v if math.isfinite(v) else None for v in (ent, rent)), note)


def _report_pngs(src, first: np.ndarray, pairs: list, shape, out_dir, log) -> list:
    """The report's grids: the first picks (source indices ``first``) and the rejected images nearest
    to the subset, ``pairs`` = [(source index, distance, source index of its nearest pick, pick rank)]."""
    try:
        import matplotlib  # noqa: F401 -- optional: matplotlib (the loop extra); without it, no grids
    except ImportError:
        log("note: matplotlib is not installed: report.md without its image grids")
        _drop_stale(out_dir, "first_picks.png", "redundant.png")  # an earlier run's grids, not this one's
        return []

    def img(si):  # an image the report cannot read (features given by --embeddings) is a grey tile
        try:
            return _to_array(src.load(int(si)), shape)
        except Exception:
            return np.full(shape, 128, np.uint8)
    k = len(first)
    _grid([img(i) for i in first], [f"#{r}" for r in range(k)], os.path.join(out_dir, "first_picks.png"), 8,
          f"the first {k} picks, in pick order")
    pngs = ["first_picks.png"]
    if pairs:
        pair_ims, titles = [], []
        for si, dd, sj, j in pairs:
            pair_ims += [img(si), img(sj)]
            titles += [f"rejected, d={dd:.3g}", f"kept, pick #{j}"]
        _grid(pair_ims, titles, os.path.join(out_dir, "redundant.png"), 6,
              "the rejected images nearest to the subset (left of each pair) and the kept image they are nearest to")
        pngs.append("redundant.png")
    else:
        _drop_stale(out_dir, "redundant.png")  # an earlier run's grid: nothing was rejected now
    return pngs


def _g(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def _report_md(r: dict, pngs: list) -> str:
    cov, rc = r["coverage"], r["coverage_random"]
    e = r["embedding"]
    lines = [f"# fastsel curate: {r['n']} of {r['readable']} images", "",
             f"Source `{r['source']}` ({r['kind']}; {r['rows']} rows, {r['unreadable']} unreadable and skipped); "
             f"features {r['features']} ({r['dim']}-d); method {r['method']}"
             + "".join(f", {k} {v}" for k, v in (r.get("options") or {}).items()) + f", seed {r['seed']}.", ""]
    if r["dedup"]:
        lines += [f"SemDeDup before selection: eps {r['dedup']['eps']}, {r['dedup']['k']} clusters, "
                  f"{r['dedup']['removed']} near-duplicates removed.", ""]
    lines += ["| | this subset | a random subset of the same size |", "|---|---|---|",
              f"| largest distance from any image to the subset (coverage radius) | {cov['max']:.4g} | {rc['max']:.4g} |",
              f"| mean distance from an image to the subset | {cov['mean']:.4g} | {rc['mean']:.4g} |",
              f"| KL entropy of the subset (nats) | {_g(r['entropy'])} | {_g(r['entropy_random'])} |", "",
              *([f"Entropy: {r['entropy_note']} (shown as n/a).", ""] if r.get("entropy_note") else []),
              (f"Embedding: {e['embedded']} images in {e['seconds']:.1f} s ({e['img_per_s']:.0f} img/s; loading the "
               f"network {e.get('load_seconds', 0):.1f} s more) this run; "
               if e.get("img_per_s") else f"Embedding: none this run ({e.get('from') or 'every shard was on disk'}); ") +
              f"selection {r['select_seconds']:.2f} s; whole command {r['seconds']:.1f} s.", "",
              f"Subset: {r['subset']}. `selected.csv`: rank, row of `embeddings.npy`, source index, id, distance "
              "to the earlier picks at pick time.", ""]
    for p in pngs:
        lines += [f"![{p}]({p})", ""]
    return "\n".join(lines)
