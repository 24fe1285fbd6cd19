"""Greedy selection on many independent sets at once (point-cloud batches, per-class pools).

Two forms:
  * padded: ``greedy_sets(x, n)`` with ``x`` of shape (B, N, d), an optional ``mask`` (B, N) of
    valid rows and ``n`` an int or B ints; returns local row numbers (B, max n), -1 past a set's n;
    ``fastsel.greedy`` hands 3-D input here.
  * packed, as torch_cluster's ``fps(src, batch, ratio)``: ``fps(x, batch=None, ratio=0.5)`` with
    ``x`` (R, d) and ``batch`` (R,) sorted set ids, or ``ptr`` (B + 1) offsets; returns global row
    numbers, set after set.
Every set's picks equal ``fastsel.greedy`` on that set alone (same start, same ties). The CPU
kernel (``fastsel::greedy_sets``) runs many sets in parallel, one thread per set, and few large
sets one after another with every thread; elsewhere (CUDA, no extension) sets run one by one.
Starts: set b draws its first pick from ``seed + b`` (set 0 as ``fastsel.greedy`` with ``seed``),
unless given.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from .. import _backend
from ..errors import FastselError
from ._dispatch import _impl, _mixed_scales, _underflowed
from ._inputs import (
    DEFAULT_SEED,
    GREEDY_MODES,
    _draw_start,
    _whole,
    as_tensor,
    check_int,
    check_real,
    check_seed,
    ldexp,
    pow2_scale,
    unscale,
)

IntOrInts = Union[int, Sequence[int], torch.Tensor]


class SetsResult(NamedTuple):
    indices: torch.Tensor    # (B, max n) int64 local row numbers (into each set's N rows), -1 past n[b]
    distances: torch.Tensor  # (B, max n) min distance of each pick when picked (inf first, nan past n[b])


def _per_set(v: IntOrInts, B: int, name: str) -> list:
    if isinstance(v, torch.Tensor):
        v = v.tolist()
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
        return [check_int(v, name)] * B
    v = list(v)
    if len(v) != B:
        raise FastselError(f"{name} must be an int or {B} ints (one per set), got {v!r}")
    return [check_int(a, f"{name}[{k}]") for k, a in enumerate(v)]


def _run(rows: torch.Tensor, ptr: list, n: list, start: list, backend: str, mode: str):
    """(global indices, distances) of every set's picks, set after set."""
    B = len(n)
    sizes = [ptr[b + 1] - ptr[b] for b in range(B)]
    for b in range(B):
        if not 0 <= n[b] <= sizes[b]:
            raise FastselError(f"set {b}: n = {n[b]} is not in [0, {sizes[b]}] (its number of rows)")
        if n[b] and not 0 <= start[b] < sizes[b]:
            raise FastselError(f"set {b}: start = {start[b]} is not in [0, {sizes[b]})")
    rows0 = rows
    e = pow2_scale(rows)
    rows = ldexp(rows, e)
    total = sum(n)
    dev = rows.device.type
    # CUDA: one block per set pays where the sets are many or their rows short (point clouds); a few wide
    # sets keep greedy's grid-wide kernel set after set (provisional until fastsel/benchmarks/gpu_sets.py has
    # measured both)
    one_launch = dev == "cuda" and _backend.cuda_kernel_enabled("greedy_sets") and (rows.shape[1] <= 32 or len(n) >= 32)
    use_kernel = (backend != "torch" and (dev == "cpu" or one_launch) and _backend.has_kernel("greedy_sets", dev))
    if backend == "cpp" and not use_kernel:
        _impl("greedy", rows, "cpp")  # raises the one-line reason
    if use_kernel:
        t = lambda v: torch.tensor(v, dtype=torch.int64)  # noqa: E731
        idx, d2 = torch.ops.fastsel.greedy_sets(rows, t(ptr), t(n), t(start), total, mode)
    else:  # one set after another through greedy's kernel (rows already checked and scaled above)
        fn, _ = _impl("greedy", rows, backend)
        parts_i, parts_d = [], []
        for b in range(B):
            if n[b]:
                i, d, _ = fn(rows[ptr[b]:ptr[b + 1]], n[b], start[b], None, mode)
                parts_i.append(i + ptr[b])
                parts_d.append(d)
        if not parts_i:
            return torch.zeros(0, dtype=torch.int64), torch.zeros(0)
        idx, d2 = torch.cat(parts_i), torch.cat(parts_d)
    if rows.dtype != torch.float16:  # mixed scales within a set: float32 distances underflow (see greedy)
        offs = [0]
        for k in n:
            offs.append(offs[-1] + k)
        if any(n[b] and _underflowed(rows[ptr[b]:ptr[b + 1]], idx[offs[b]:offs[b + 1]] - ptr[b],
                                     d2[offs[b]:offs[b + 1]]) for b in range(B)):
            if rows.dtype == torch.float64:
                raise _mixed_scales("x")
            return _run(rows0.double(), ptr, n, start, backend, mode)
    return idx, unscale(d2.sqrt(), e)


def _starts(start: Optional[IntOrInts], sizes: list, seed: int) -> list:
    if start is None:
        seed = check_seed(seed)
        return [_draw_start(s, seed + b) if s else 0 for b, s in enumerate(sizes)]
    return _per_set(start, len(sizes), "start")


def greedy_sets(x, n: IntOrInts, start: Optional[IntOrInts] = None, *, mask: Optional[torch.Tensor] = None,
                seed: int = DEFAULT_SEED, backend: str = "auto", mode: str = "auto") -> SetsResult:
    """Greedy selection (Algorithm 1) on each of B sets: ``x`` (B, N, d); ``mask`` (B, N) bool marks
    valid rows (default: all). ``n``: picks, an int or one per set. ``start``: each set's first pick,
    a row number in 0..N-1 (a valid row under ``mask``), an int or one per set; None draws set b's
    from ``seed + b``. Each set's picks equal :func:`fastsel.greedy` on that set alone.

    Args:
        x: (B, N, d) sets of rows, float dtypes as for :func:`fastsel.greedy`.
        n: picks per set: an int, or a sequence of B ints (each within its set's valid rows).
        start: first pick per set (an int or B ints); None draws set b's from ``seed + b``.
        mask: (B, N) bool, True for a set's valid rows; None: every row is valid.
        seed: the seed of the start draws.
        backend: "auto", "cpp" or "torch".
        mode: "auto", "single" or "multi".

    Returns:
        SetsResult: ``indices`` (B, max n) int64 row numbers in 0..N-1, -1 past a set's n;
        ``distances`` (B, max n) each pick's min distance when picked.

    Raises:
        FastselError: x not 3-D, no sets, n larger than a set's valid rows, a start on a masked row.
    """
    if mode not in GREEDY_MODES:
        raise FastselError(f"mode must be one of {GREEDY_MODES}, got {mode!r}")
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x)
    if x.dim() != 3:
        raise FastselError(f"x must be 3-D (B, N, d) for sets, got shape {tuple(x.shape)}")
    B, N, d = x.shape
    if B == 0:
        raise FastselError("x holds no sets (B = 0)")
    flat = as_tensor(x.reshape(B * N, d), "x")
    if mask is None:
        keep = None
        sizes = [N] * B
        rows = flat
    else:
        mask = torch.as_tensor(mask)
        if mask.shape != (B, N) or mask.dtype != torch.bool:
            raise FastselError(f"mask must be a bool tensor of shape ({B}, {N}), got {mask.dtype} {tuple(mask.shape)}")
        keep = mask.reshape(-1).to(flat.device)
        sizes = mask.sum(1).tolist()
        rows = flat[keep]
        if rows.shape[0] == 0:
            raise FastselError("mask marks no valid row")
    nn = _per_set(n, B, "n")
    if mask is None or start is None:
        st = _starts(start, sizes, seed)
    else:
        # local numbering: valid rows of each set in order; starts given as row numbers are mapped
        given = _per_set(start, B, "start")
        st = []
        for b, s in enumerate(given):
            if not (0 <= s < N and bool(mask[b, s])):
                raise FastselError(f"set {b}: start {s} is not a valid (mask True) row")
            st.append(int(mask[b, :s].sum()))
    ptr = [0]
    for s in sizes:
        ptr.append(ptr[-1] + s)
    idx, dist = _run(rows, ptr, nn, st, backend, mode)
    m = max(nn) if nn else 0
    counts = torch.tensor(nn, dtype=torch.int64)
    filled = torch.arange(m)[None, :] < counts[:, None]  # (B, m): set after set, as idx is laid out
    # a pick's row number in its set: its flat position in the (B, N) grid, minus the set's start
    flat_pos = idx.cpu() if keep is None else torch.nonzero(keep.cpu()).reshape(-1)[idx.cpu()]
    out_i = torch.full((B, m), -1, dtype=torch.int64)
    out_i[filled] = flat_pos - torch.repeat_interleave(torch.arange(B, dtype=torch.int64) * N, counts)
    out_d = torch.full((B, m), math.nan, dtype=dist.dtype)
    out_d[filled] = dist.cpu()
    return SetsResult(out_i, out_d)


def fps(x, batch: Optional[torch.Tensor] = None, ratio: float = 0.5, *, ptr: Optional[Sequence[int]] = None,
        random_start: bool = True, seed: int = DEFAULT_SEED, backend: str = "auto",
        mode: str = "auto") -> torch.Tensor:
    """torch_cluster-style farthest-point sampling on packed sets: ``x`` (R, d), ``batch`` (R,) sorted
    set ids (or ``ptr`` offsets); ceil(ratio * size) picks per set; returns global row numbers, set
    after set. ``random_start=False`` starts every set at its first row.

    Args:
        x: (R, d) rows of all sets, packed set after set.
        batch: (R,) int64 sorted set id of each row (None with ``ptr``, or one set).
        ratio: the share of each set to pick, in (0, 1].
        ptr: set offsets (B + 1 ints) instead of ``batch``.
        random_start: draw each set's first pick from ``seed`` (else its first row).
        seed: the seed of those draws.
        backend: "auto", "cpp" or "torch".
        mode: "auto", "single" or "multi".

    Returns:
        torch.Tensor: (sum of ceil(ratio * size),) int64 global row numbers, set after set.

    Raises:
        FastselError: ratio outside (0, 1], both batch and ptr, an unsorted batch.
        TypeError: a string or bool ratio.
    """
    if mode not in GREEDY_MODES:
        raise FastselError(f"mode must be one of {GREEDY_MODES}, got {mode!r}")
    rows = as_tensor(x, "x")
    R = rows.shape[0]
    ratio = check_real(ratio, "ratio")  # a string or a bool: TypeError
    if not 0 < ratio <= 1:
        raise FastselError(f"ratio must be in (0, 1], got {ratio!r}")
    if not isinstance(random_start, (bool, np.bool_)):
        raise FastselError(f"random_start must be True or False, got {random_start!r}")
    if ptr is not None and batch is not None:
        raise FastselError("give batch or ptr, not both")
    if ptr is not None:
        ptr = _whole(ptr, "ptr").tolist()
        if not ptr:
            raise FastselError("ptr is empty: give B + 1 offsets, from 0 to the number of rows")
        if ptr[0] != 0 or ptr[-1] != R or any(b < a for a, b in zip(ptr, ptr[1:])):
            raise FastselError(f"ptr must rise from 0 to the number of rows ({R})")
    elif batch is not None:
        batch = _whole(batch, "batch")
        if batch.numel() != R:
            raise FastselError(f"batch has {batch.numel()} entries for {R} rows")
        if R > 1 and bool((batch[1:] < batch[:-1]).any()):
            raise FastselError("batch must be sorted (rows of each set together, sets in order)")
        if int(batch[0]) < 0:
            raise FastselError("batch ids must be >= 0")
        counts = torch.bincount(batch).tolist()
        ptr = [0]
        for c in counts:
            ptr.append(ptr[-1] + c)
    else:
        ptr = [0, R]
    sizes = [b - a for a, b in zip(ptr, ptr[1:])]
    n = [math.ceil(ratio * s) for s in sizes]
    st = _starts(None, sizes, seed) if random_start else [0] * len(sizes)
    return _run(rows, ptr, n, st, backend, mode)[0]
