"""Greedy selection (Algorithm 1): farthest-point sampling, exact."""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import torch

from ._dispatch import _impl, _mixed_scales, _resolved, _resumable, _underflowed, _watched
from ._inputs import DEFAULT_SEED, _check_call, ldexp, pow2_scale, unscale


class GreedyResult(NamedTuple):
    indices: torch.Tensor    # (n,) int64, pick order
    distances: torch.Tensor  # (n,) min distance of each pick when picked (inf for the first)


GREEDY_MODES = ("auto", "single", "multi")


def greedy(x, n: int, start: Optional[int] = None, *, seed: int = DEFAULT_SEED, backend: str = "auto",
           mode: str = "auto", progress: Optional[Callable[[int], None]] = None) -> GreedyResult:
    """Greedy selection (Algorithm 1): farthest-point sampling, exact.

    Repeatedly adds the row whose min distance to the selected set is largest;
    ties go to the lowest index. ``start`` is the first pick (drawn from
    ``seed`` when None). ``progress(k)`` is called with the number of picks made.
    ``mode``: "single" reads the pool once per pick; "multi" makes exact multi-pick
    passes (a GEMM per pass, same picks bit for bit; exact block pruning on clustered
    pools); "auto" uses multi for large pools. ``fastsel.greedy`` (this op behind the set
    dispatch of :mod:`fastsel.sets`) also takes ``x`` of shape (B, N, d): it selects in each of B
    sets (``fastsel.sets.greedy_sets``: ``n``/``start`` may be per set; masks there).

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
        returned detached; selection is not differentiable.

    Raises:
        FastselError: NaN or infinite values, n outside [1, N], an unknown mode or backend.
        TypeError: a fractional, bool or string ``n``, ``start`` or ``seed``.
    """
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
