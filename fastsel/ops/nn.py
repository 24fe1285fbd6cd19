"""Exact k nearest neighbours."""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence, Union

import torch

from ..errors import FastselError
from ._dispatch import _impl
from ._inputs import as_tensor, check_int, ldexp, pow2_scale, unscale

Offsets = Union[Sequence[int], torch.Tensor]


class NNResult(NamedTuple):
    distances: torch.Tensor  # (Q, k) ascending distances (Euclidean, or cosine with cosine=True)
    indices: torch.Tensor    # (Q, k) int64 rows of ref (-1 past a set's rows, with ptr)


def nn(query, ref=None, k: int = 1, exclude_self: bool = False, *, ptr: Optional[Offsets] = None,
       ref_ptr: Optional[Offsets] = None, cosine: bool = False, backend: str = "auto") -> NNResult:
    """Exact k nearest neighbours of each query row among ``ref`` rows (``ref=None``: the
    query set itself, with ``exclude_self=True`` to skip each row's own entry).

    Distances ascend; ties go to the lowest ref index. Memory stays bounded
    (blocked GEMM with a fused top-k); candidates are re-checked in float64.

    Batches (``ptr``): query rows ``ptr[b]:ptr[b+1]`` search only ref rows
    ``ref_ptr[b]:ref_ptr[b+1]`` (``ref_ptr`` defaults to ``ptr`` when ``ref`` is None); indices
    stay global ref rows. A set with fewer than k ref rows pads its rows' tail with index -1 and
    distance inf, so k may exceed a set's size (but not every set's: at least one must hold k).

    Cosine (``cosine=True``): the distance is 1 - cos(query row, ref row), ranked exactly: rows
    are normalised in float64 and searched there (the squared Euclidean distance of unit rows is
    twice the cosine distance). A zero row has no direction and is refused.

    Args:
        query: (Q, d) rows whose neighbours are wanted.
        ref: (R, d) rows to search; None searches ``query`` itself.
        k: neighbours per query row, 1 <= k <= R (R - 1 with ``exclude_self``); with ``ptr``,
            1 <= k <= the largest set's ref rows (minus one with ``exclude_self``).
        exclude_self: with ``ref=None``, skip each row's own entry.
        ptr: B + 1 offsets of the query's sets (rising from 0 to Q), or None for one set.
        ref_ptr: B + 1 offsets of the ref's sets (rising from 0 to R); None: ``ptr`` when ``ref``
            is None.
        cosine: rank by cosine distance instead of Euclidean distance.
        backend: "auto", "cpp" or "torch".

    Returns:
        NNResult: ``distances`` (Q, k) ascending Euclidean (or cosine) distances and ``indices``
        (Q, k) int64 rows of ``ref`` (-1 and inf past a small set's rows).

    Raises:
        FastselError: NaN or infinite values, a dimension mismatch, k out of range, offsets that
            do not rise from 0 to the row count or disagree in length, a zero row with ``cosine``.
    """
    query = as_tensor(query, "query")
    same = ref is None
    ref = query if same else as_tensor(ref, "ref")
    if query.shape[1] != ref.shape[1]:
        raise FastselError(f"dimension mismatch: query has d={query.shape[1]}, ref has d={ref.shape[1]}")
    if ref.dtype != query.dtype:
        ref = ref.to(torch.promote_types(ref.dtype, query.dtype))
        query = query.to(ref.dtype)
    # the kernels' rules (csrc/utils.h check_nn_args) checked here: a FastselError, not their RuntimeError
    if exclude_self and query.shape[0] != ref.shape[0]:
        raise FastselError(f"exclude_self needs query and ref of the same length, got {query.shape[0]} "
                           f"and {ref.shape[0]}")
    if not isinstance(cosine, bool):
        raise FastselError(f"cosine must be True or False, got {cosine!r}")
    out_dtype = query.dtype
    if cosine:
        query = _unit_rows(query, "query")
        ref = query if same else _unit_rows(ref, "ref")
    if ptr is None and ref_ptr is None:
        k = check_int(k, "k", 1, ref.shape[0] - int(bool(exclude_self)))
        d, i = _search(query, ref, same, k, bool(exclude_self), backend)
    else:
        d, i = _search_sets(query, ref, same, k, bool(exclude_self), ptr, ref_ptr, backend)
    if cosine:  # |a - b|^2 = 2 - 2 cos(a, b) for unit rows
        d = (d.double() ** 2 / 2).to(out_dtype)
    return NNResult(d, i)


def _unit_rows(x: torch.Tensor, name: str) -> torch.Tensor:
    x = x.double()
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    if bool((norms == 0).any()):
        row = int(torch.nonzero(norms.reshape(-1) == 0)[0])
        raise FastselError(f"cosine distance is undefined for a zero row ({name} row {row})")
    return x / norms


def _search(query, ref, same, k, exclude_self, backend):
    fn, _ = _impl("nn", query, backend)
    e = pow2_scale(query, ref)
    q = ldexp(query, e)
    d, i = fn(q, q if same else ldexp(ref, e), k, exclude_self)
    return unscale(d, e), i


def _offsets(p, rows: int, name: str) -> list:
    p = p.tolist() if isinstance(p, torch.Tensor) else list(p)
    p = [check_int(v, f"{name}[{j}]") for j, v in enumerate(p)]
    if len(p) < 2 or p[0] != 0 or p[-1] != rows or any(b < a for a, b in zip(p, p[1:])):
        raise FastselError(f"{name} must hold B + 1 offsets rising from 0 to {rows} (its rows), got {p}")
    return p


def _search_sets(query, ref, same, k, exclude_self, ptr, ref_ptr, backend):
    if ptr is None:
        raise FastselError("ref_ptr needs ptr (the query's set offsets)")
    qp = _offsets(ptr, query.shape[0], "ptr")
    if ref_ptr is None:
        if not same:
            raise FastselError("give ref_ptr (the ref's set offsets) with ptr when ref is given")
        rp = qp
    else:
        rp = _offsets(ref_ptr, ref.shape[0], "ref_ptr")
    if len(rp) != len(qp):
        raise FastselError(f"ptr and ref_ptr must give the same number of sets, got {len(qp) - 1} "
                           f"and {len(rp) - 1}")
    if exclude_self and rp != qp:
        raise FastselError("exclude_self needs the same sets in query and ref (ref_ptr equal to ptr)")
    avail = [rp[b + 1] - rp[b] - int(exclude_self) for b in range(len(qp) - 1)]
    k = check_int(k, "k", 1, max(max(avail), 1))
    fn, _ = _impl("nn", query, backend)
    e = pow2_scale(query, ref)
    q = ldexp(query, e)
    r = q if same else ldexp(ref, e)
    dev = query.device
    out_d = torch.full((query.shape[0], k), math.inf, dtype=query.dtype, device=dev)
    out_i = torch.full((query.shape[0], k), -1, dtype=torch.int64, device=dev)
    for b, kb in enumerate(avail):
        q0, q1, r0, r1 = qp[b], qp[b + 1], rp[b], rp[b + 1]
        kb = min(k, kb)
        if q1 == q0 or kb <= 0:
            continue
        d, i = fn(q[q0:q1], r[r0:r1], kb, exclude_self)
        out_d[q0:q1, :kb] = d.to(out_d.dtype)
        out_i[q0:q1, :kb] = i + r0
    return unscale(out_d, e), out_i
