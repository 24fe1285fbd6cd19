"""Exact k nearest neighbours."""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..errors import FastselError
from ._dispatch import _impl
from ._inputs import as_tensor, check_int, ldexp, pow2_scale, unscale


class NNResult(NamedTuple):
    distances: torch.Tensor  # (Q, k) ascending Euclidean distances
    indices: torch.Tensor    # (Q, k) int64 rows of ref


def nn(query, ref=None, k: int = 1, exclude_self: bool = False, *, backend: str = "auto") -> NNResult:
    """Exact k nearest neighbours of each query row among ``ref`` rows (``ref=None``: the
    query set itself, with ``exclude_self=True`` to skip each row's own entry).

    Distances ascend; ties go to the lowest ref index. Memory stays bounded
    (blocked GEMM with a fused top-k); candidates are re-checked in float64.

    Args:
        query: (Q, d) rows whose neighbours are wanted.
        ref: (R, d) rows to search; None searches ``query`` itself.
        k: neighbours per query row, 1 <= k <= R (R - 1 with ``exclude_self``).
        exclude_self: with ``ref=None``, skip each row's own entry.
        backend: "auto", "cpp" or "torch".

    Returns:
        NNResult: ``distances`` (Q, k) ascending Euclidean distances and ``indices`` (Q, k) int64
        rows of ``ref``. Distances are returned detached; selection is not differentiable.

    Raises:
        FastselError: NaN or infinite values, a dimension mismatch, k out of range.
    """
    query = as_tensor(query, "query")
    ref = query if ref is None else as_tensor(ref, "ref")
    if query.shape[1] != ref.shape[1]:
        raise FastselError(f"dimension mismatch: query has d={query.shape[1]}, ref has d={ref.shape[1]}")
    if ref.dtype != query.dtype:
        ref = ref.to(torch.promote_types(ref.dtype, query.dtype))
        query = query.to(ref.dtype)
    # the kernels' rules (csrc/utils.h check_nn_args) checked here: a FastselError, not their RuntimeError
    if exclude_self and query.shape[0] != ref.shape[0]:
        raise FastselError(f"exclude_self needs query and ref of the same length, got {query.shape[0]} "
                           f"and {ref.shape[0]}")
    k = check_int(k, "k", 1, ref.shape[0] - int(bool(exclude_self)))
    fn, _ = _impl("nn", query, backend)
    e = pow2_scale(query, ref)
    q = ldexp(query, e)
    d, i = fn(q, q if ref is query else ldexp(ref, e), k, bool(exclude_self))
    return NNResult(unscale(d, e), i)
