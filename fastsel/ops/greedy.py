"""Greedy selection (Algorithm 1): farthest-point sampling, exact."""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Union

import numpy as np
import torch

from .. import reference
from ..errors import FastselError
from ._dispatch import _impl, _mixed_scales, _resolved, _resumable, _underflowed, _watched
from ._inputs import (
    DEFAULT_SEED,
    GREEDY_MODES,
    _check_call,
    _whole,
    as_tensor,
    ldexp,
    magnitude,
    pow2_scale,
    scale_exponent,
    unscale,
)
from .sets import SetsResult, greedy_sets


class GreedyResult(NamedTuple):
    indices: torch.Tensor    # (n,) int64, pick order
    distances: torch.Tensor  # (n,) min distance of each pick when picked (inf for the first)


def greedy(x, n: int, start: Optional[int] = None, *, seed: int = DEFAULT_SEED, backend: str = "auto",
           mode: str = "auto", progress: Optional[Callable[[int], None]] = None) -> Union[GreedyResult, SetsResult]:
    """Greedy selection (Algorithm 1): farthest-point sampling, exact.

    Repeatedly adds the row whose min distance to the selected set is largest;
    ties go to the lowest index. ``start`` is the first pick (drawn from
    ``seed`` when None). ``progress(k)`` is called with the number of picks made.
    ``mode``: "single" reads the pool once per pick; "multi" makes exact multi-pick
    passes (a GEMM per pass, same picks bit for bit; exact block pruning on clustered
    pools); "auto" uses multi for large pools. ``x`` of shape (B, N, d) selects in each of B
    sets (:func:`fastsel.ops.sets.greedy_sets`, ``fastsel.greedy_sets``: ``n``/``start`` may be
    per set; masks there).

    Args:
        x: the pool, (N, d) (or (B, N, d) sets): a tensor or array of float32 / float64 / float16 /
            bfloat16 (integers become float64 exactly); a CUDA tensor runs the CUDA kernels.
        n: how many rows to pick, 1 <= n <= N.
        start: the first pick, a row index; None draws it from ``seed``.
        seed: the seed of that draw, an integer in [0, 2**32 - 1].
        backend: "auto", "cpp" (the compiled kernels) or "torch" (the PyTorch fallback).
        mode: "auto", "single" or "multi" (see above; same picks).
        progress: called with the number of picks made so far.

    Returns:
        GreedyResult: ``indices`` (n,) int64 in pick order; ``distances`` (n,) each pick's min
        distance to the earlier picks when picked (inf for the first), in x's float dtype. Distances are
        returned detached; selection is not differentiable. (B, N, d) sets: a SetsResult, as
        :func:`fastsel.ops.sets.greedy_sets` returns it.

    Raises:
        FastselError: NaN or infinite values, n outside [1, N], an unknown mode or backend.
        TypeError: a fractional, bool or string ``n``, ``start`` or ``seed``.
    """
    if getattr(x, "ndim", 2) == 3:  # (B, N, d): each set on its own (progress is not reported there)
        return greedy_sets(x, n, start, seed=seed, backend=backend, mode=mode)
    x, N, n, start = _check_call(x, n, start, seed, mode, GREEDY_MODES)
    x0 = x
    fn, be = _impl("greedy", x, backend)
    e = pow2_scale(x)
    x = ldexp(x, e)
    watched = progress is not None and be == "cpp" and x.device.type == "cpu"
    if watched and _resolved("greedy", mode, N, n) == "multi":
        outs = [_watched(lambda: fn(x, n, start, None, mode), n, progress)]
    else:
        outs = _resumable(lambda k, prev: fn(x, k, start if prev is None else -1, None if prev is None else prev[2],
                                             mode), n, progress, 100 if mode == "single" else 10)
    idx, d2 = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    if x.dtype != torch.float16 and _underflowed(x, idx, d2):  # mixed scales: float32 cannot tell these rows apart
        if x.dtype == torch.float64:
            raise _mixed_scales("x")
        return greedy(x0.double(), n, start, seed=seed, backend=backend, mode=mode)  # exact on the same values
    return GreedyResult(idx, unscale(d2.sqrt(), e))


def greedy_from(x, n: int, initial, *, backend: str = "auto") -> GreedyResult:
    """Greedy selection (Algorithm 1) that extends a selection already made: the ``initial`` rows
    count as picked from the start (every row's distance is to its nearest initial row), are never
    picked again and are not returned; each of the ``n`` new picks is the row farthest from all rows
    chosen so far (ties: the lowest index). The same picks as :func:`fastsel.greedy` continued after
    its first ``len(initial)`` picks, when ``initial`` were those picks. One pass over the pool per
    pick (the single-pick kernel, no pruning).

    Args:
        x: (N, d) rows, float dtypes as for :func:`fastsel.greedy`.
        n: new picks, 1 <= n <= N - len(initial).
        initial: row indices already chosen (a sequence of distinct ints, or a bool mask of N values);
            at least one.
        backend: "auto", "cpp" or "torch".

    Returns:
        GreedyResult: ``indices`` (n,) the new picks in order, ``distances`` (n,) each one's distance
        to the nearest row chosen before it (initial rows included).

    Raises:
        FastselError: no initial row, an index out of range or repeated, n out of range.
    """
    x0 = x = as_tensor(x, "x")
    N = x.shape[0]
    init = _initial_rows(initial, N)
    if not 1 <= int(n) <= N - len(init):
        raise FastselError(f"n must be in 1..{N - len(init)} (the rows not in initial), got {n}")
    n = int(n)
    e = scale_exponent(magnitude(x), x.dtype) if x.dtype != torch.float16 else 0
    xs = ldexp(x, e)
    acc = reference.acc_dtype(xs.dtype)
    update, _ = _impl("update_min_d2", xs, backend)
    md = torch.full((N,), math.inf, dtype=acc, device=xs.device)
    sel = torch.as_tensor(init, dtype=torch.int64, device=xs.device)
    md[sel] = -1
    md, s = update(xs, md, xs[sel], math.inf, N)
    idx = torch.empty(n, dtype=torch.int64)
    d2 = torch.empty(n, dtype=acc)
    for t in range(n):
        d2[t], idx[t] = float(s[0]), int(s[1])
        md[int(idx[t])] = -1
        md, s = update(xs, md, xs[int(idx[t])][None], math.inf, N)
    if xs.dtype != torch.float16 and _underflowed(xs, torch.cat([sel.cpu(), idx]),
                                                  torch.cat([torch.full((len(init),), math.inf, dtype=acc), d2])):
        if x.dtype == torch.float64:
            raise _mixed_scales("x")
        return greedy_from(x0.double(), n, init, backend=backend)
    return GreedyResult(idx, unscale(d2.sqrt(), e))


def _initial_rows(initial, N: int) -> list:
    """``initial`` as a list of distinct row indices in 0..N-1 (a bool mask of N values taken too)."""
    t = initial if isinstance(initial, torch.Tensor) else torch.as_tensor(np.asarray(initial))
    t = t.detach().cpu()
    if t.dtype == torch.bool:
        if t.shape != (N,):
            raise FastselError(f"initial as a mask needs {N} values, got shape {tuple(t.shape)}")
        t = torch.nonzero(t)[:, 0]
    t = _whole(t, "initial")
    rows = t.tolist()
    if not rows:
        raise FastselError("initial holds no row (use fastsel.greedy to start from nothing)")
    bad = [r for r in rows if not 0 <= r < N]
    if bad:
        raise FastselError(f"initial row {bad[0]} is out of range for {N} rows")
    if len(set(rows)) != len(rows):
        raise FastselError("initial repeats a row")
    return rows
