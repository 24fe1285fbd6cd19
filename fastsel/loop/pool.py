"""Building the next training set: the paradigm's candidate pool and the selector's choice.

A training set is recorded as (source, index) pairs: source 0 is the real data, source j >= 1 the
samples of generation j (the model trained at iteration j - 1). Pure functions over arrays, so the
bookkeeping is tested on hand-made pools.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch

from ..errors import FastselError
from ..selectors import select
from .config import check_selectors


class Candidates(NamedTuple):
    src: np.ndarray   # (M,) int16 source of each candidate
    idx: np.ndarray   # (M,) int64 row within its source
    feats: np.ndarray  # (M, d) float32 selection features


def candidate_pool(paradigm: str, real_feats: np.ndarray, gen_feats: Sequence[np.ndarray]) -> Candidates:
    """replace: the newest generation only; accumulate: the real data and every generation so far."""
    if not gen_feats:
        raise FastselError("no generation yet: iteration 0 trains on the real data")
    if paradigm == "replace":
        parts = [(len(gen_feats), gen_feats[-1])]
    elif paradigm == "accumulate":
        parts = [(0, real_feats)] + [(j + 1, f) for j, f in enumerate(gen_feats)]
    else:
        raise FastselError(f"paradigm must be replace or accumulate, got {paradigm!r}")
    src = np.concatenate([np.full(len(f), s, np.int16) for s, f in parts])
    idx = np.concatenate([np.arange(len(f), dtype=np.int64) for _, f in parts])
    feats = np.concatenate([np.asarray(f, np.float32) for _, f in parts])
    return Candidates(src, idx, feats)


def equal_share_counts(sizes: Sequence[int], n: int) -> list:
    """n split as evenly as possible over sources of the given sizes (capped by each size); the
    remainder goes to the earliest sources."""
    counts = [0] * len(sizes)
    left = n
    while left > 0:
        open_ = [i for i in range(len(sizes)) if counts[i] < sizes[i]]
        if not open_:
            raise FastselError(f"pool of {sum(sizes)} rows is smaller than n={n}")
        share, extra = divmod(left, len(open_))
        for r, i in enumerate(open_):
            take = min(share + (1 if r < extra else 0), sizes[i] - counts[i])
            counts[i] += take
            left -= take
    return counts


def select_from(c: Candidates, n: int, selector: str, *, vanilla: str = "uniform", seed: int = 0,
                device: str = "cpu", return_info: bool = False, **options):
    """Rows of ``c`` (positions, int64) forming the next training set of size n; with
    ``return_info``, also the selector's facts (the threshold filter's tau0, tau_end, passes,
    decays, n_filled, order). ``options``: the selector's own (``LoopConfig.options_for``; an option
    it does not declare is one line, as in :func:`fastsel.select`)."""
    M = len(c.src)
    info: dict = {}
    if selector == "all":  # every candidate (replace: all pool_factor * n generated images; Fig. 13)
        rows = np.arange(M, dtype=np.int64)
        return (rows, info) if return_info else rows
    if not 1 <= n <= M:
        raise FastselError(f"n must be in [1, {M}] (candidates), got {n}")
    rng = np.random.default_rng(seed)
    if selector == "none":
        if vanilla == "equal":
            sources = np.unique(c.src)
            sizes = [int((c.src == s).sum()) for s in sources]
            picks = []
            for s, k in zip(sources, equal_share_counts(sizes, n)):
                rows = np.flatnonzero(c.src == s)
                picks.append(rows[np.sort(rng.choice(len(rows), size=k, replace=False))])
            rows = np.concatenate(picks).astype(np.int64)
        elif n == M:
            rows = np.arange(M, dtype=np.int64)
        else:
            rows = np.sort(rng.choice(M, size=n, replace=False)).astype(np.int64)
    else:  # a registered selector (fastsel.selectors.SELECTORS) on the candidates' features
        check_selectors((selector,), "selector")  # an unknown name: one line before any work
        x = torch.from_numpy(np.ascontiguousarray(c.feats)).to(device)
        start = int(rng.integers(M))
        idx, info = select(x, n, selector, start=start, seed=seed, return_info=True, **options)
        rows = idx.cpu().numpy().astype(np.int64)
    return (rows, info) if return_info else rows


def source_shares(src: np.ndarray, n_sources: int) -> list:
    """Share of each source (0 = real, j = generation j) in a training set."""
    counts = np.bincount(np.asarray(src, np.int64), minlength=n_sources)[:n_sources]
    return (counts / max(1, len(src))).tolist()
