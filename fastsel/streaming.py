"""Greedy selection over pools larger than memory: stream row chunks of a memory-mapped array
and skip the chunks that provably cannot change.

Each chunk keeps a bounding ball (float64 centre c_k, radius r_k) and the largest min-distance
of its unselected rows M_k. When a new pick p satisfies (|p - c_k| - r_k)^2 * (1 - eps) >= M_k,
the triangle inequality puts every row of the chunk at a computed squared distance >= M_k from p
(eps covers the kernel's float32 rounding), so no min-distance in it can fall: the chunk is not
read. Every other chunk is read and updated by the single-process kernel's arithmetic, so the
picks equal the in-memory op's bit for bit. Skipping pays off when the file's row order is
spatially coherent (rows stored cluster by cluster, class by class, generation by generation);
on a randomly ordered pool every ball spans the data and few chunks are skipped.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from . import reference
from .errors import FastselError
from .ops._dispatch import _impl, _mixed_scales, _underflowed
from .ops._inputs import (
    DEFAULT_SEED,
    _check_n,
    _check_start,
    as_tensor,
    check_int,
    ldexp,
    magnitude,
    scale_exponent,
    unscale,
)
from .ops.greedy import GreedyResult


def greedy(pool, n: int, start: Optional[int] = None, *, chunk_rows: int = 65536, seed: int = DEFAULT_SEED,
           backend: str = "auto", stats: Optional[dict] = None,
           progress: Optional[Callable[[int], None]] = None, _f64: bool = False) -> GreedyResult:
    """Greedy selection (Algorithm 1) streaming ``pool`` (an (N, d) numpy array or memmap) by chunks.

    ``stats``, when given, receives ``chunk_reads``, ``chunk_skips`` and ``skip_rate``.

    Args:
        pool: (N, d) numpy array or memmap (``np.load(path, mmap_mode="r")``).
        n: rows to pick, 1 <= n <= N.
        start: the first pick (None: drawn from ``seed``).
        chunk_rows: rows read per chunk.
        seed: the seed of the start draw.
        backend: "auto", "cpp" or "torch".
        stats: a dict to fill with the chunk reads and skips, or None.
        progress: called with the number of picks made.

    Returns:
        GreedyResult: as :func:`fastsel.greedy` (the same picks).
    """
    if not isinstance(pool, np.ndarray) or pool.ndim != 2 or pool.shape[0] == 0:
        raise FastselError("pool must be a non-empty 2-D numpy array or memmap")
    N, d = pool.shape
    n = _check_n(n, N)
    start = _check_start(start, N, seed)
    chunk_rows = check_int(chunk_rows, "chunk_rows", 1)
    chunks = [(a, min(N, a + chunk_rows)) for a in range(0, N, chunk_rows)]
    e = 0  # the pow2 scale of extreme magnitudes (fastsel.ops._inputs.pow2_scale), known after the first pass

    def rows(a, b, name="x"):
        t = as_tensor(np.asarray(pool[a:b]), name)
        return ldexp(t.double() if _f64 else t, e)
    first = rows(0, 1)
    acc = reference.acc_dtype(first.dtype)
    update, _ = _impl("update_min_d2", first, backend)
    eps = 4.0 * (d + 8) * (2.0 ** -53 if acc == torch.float64 else 2.0 ** -24)
    centres, radii, md, best = [], [], [], []
    mag = 0.0
    for a, b in chunks:  # one pass: bounding balls (float64), finiteness checks, the largest magnitude
        blk = as_tensor(np.asarray(pool[a:b]), "pool").double()
        mag = max(mag, magnitude(blk))
        c = blk.mean(0)
        centres.append(c)
        radii.append(float(((blk - c) ** 2).sum(1).max().sqrt()))
        md.append(torch.full((b - a,), math.inf, dtype=acc))
        best.append((math.inf, 0))  # (largest min-distance, local index of the lowest holding it)
    e = scale_exponent(mag, first.dtype)  # exact: a power of two; the balls scale with the rows
    centres_t = torch.stack(centres) * math.ldexp(1.0, e)
    radii_t = torch.tensor(radii, dtype=torch.float64) * math.ldexp(1.0, e)
    reads = skips = 0
    idx = torch.empty(n, dtype=torch.int64)
    d2 = torch.empty(n, dtype=acc)
    pick, val = start, math.inf
    for t in range(n):
        idx[t], d2[t] = pick, val
        k = next(j for j, (a, b) in enumerate(chunks) if a <= pick < b)
        md[k][pick - chunks[k][0]] = -1
        row = rows(pick, pick + 1)
        lb = ((centres_t - row.double()).pow(2).sum(1).sqrt() - radii_t).clamp_min(0)
        for j, (a, b) in enumerate(chunks):
            m_j = best[j][0] if j != k else math.inf  # the pick's own chunk changed: always read
            if m_j < 0 or (lb[j] > 0 and float(lb[j]) ** 2 * (1 - eps) >= m_j):
                skips += 1
                continue
            reads += 1
            x = rows(a, b)
            md[j], s = update(x, md[j], row, math.inf, b - a)
            best[j] = (float(s[0]), int(s[1]))
        if t + 1 < n:  # global arg-max: largest value, earliest chunk, lowest index on ties
            j = max(range(len(chunks)), key=lambda q: (best[q][0], -q))
            val, pick = best[j][0], chunks[j][0] + best[j][1]
        if progress is not None:
            progress(1)
    if stats is not None:
        stats.update(chunk_reads=reads, chunk_skips=skips, skip_rate=skips / max(1, reads + skips))
    if first.dtype != torch.float16:  # mixed scales: float32 distances underflow (fastsel.ops.greedy): redo in float64
        if _underflowed(pool, idx, d2):
            if first.dtype == torch.float64:
                raise _mixed_scales("pool")
            return greedy(pool, n, start, chunk_rows=chunk_rows, seed=seed, backend=backend, stats=stats, _f64=True)
    return GreedyResult(idx, unscale(d2.sqrt(), e))
