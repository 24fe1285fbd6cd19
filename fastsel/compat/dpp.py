"""Drop-in for fast-map-dpp (github.com/laming-chen/fast-map-dpp, ``dpp.py``): greedy MAP inference
of a determinantal point process on a precomputed kernel matrix, plain and with a sliding window::

    from dpp import dpp, dpp_sw   ->  from fastsel.compat.dpp import dpp, dpp_sw

Same signatures, defaults and return type (a list of row indices in pick order), the same first
pick (the largest diagonal entry), the same stopping rule (stop before a pick whose gain, the
conditional variance d^2 = det L_{S+j} / det L_S, is below ``epsilon``; the first pick is always
made) and the same sliding window (each pick maximises the determinant over the newest
``window_size`` picks, itself included). ``dpp`` runs on :func:`fastsel.diversity.dpp` with
``kernel="precomputed"``; everything is float64.

Differences (docs/compat.md): indices are Python ints (the peer's are numpy integers, equal to
them); near-ties (within 1e-10 relative) go to the lowest index (the peer's ``np.argmax`` takes the
exact maximum); inputs outside the peer's documented contract are refused with a FastselError
rather than giving its quirks -- ``max_length`` or ``window_size`` below 1 (the peer returns one
pick for ``max_length=0``), an ``epsilon`` that is not a positive finite number (the peer, with
``-inf``, repeats picks), a kernel that is not square, symmetric and finite, or has a negative
diagonal entry (the peer reads only the picked rows of an asymmetric matrix).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import diversity as _div
from ..errors import FastselError
from ..ops._inputs import check_int, check_real

__all__ = ["dpp", "dpp_sw"]


def _check_eps(epsilon) -> float:
    eps = check_real(epsilon, "epsilon")
    if not (math.isfinite(eps) and eps > 0):
        raise FastselError(f"epsilon must be a positive finite number, got {epsilon!r}")
    return eps


def _below(eps: float) -> float:
    """The largest float64 under ``eps``: fastsel stops at gains <= its epsilon, the peer at gains
    < epsilon, and d^2 < eps exactly when d^2 <= nextafter(eps, 0)."""
    return float(np.nextafter(eps, 0.0))


def dpp(kernel_matrix, max_length, epsilon=1E-10):
    """Greedy MAP of a DPP with kernel ``kernel_matrix`` (fast-map-dpp's ``dpp``).

    Args:
        kernel_matrix: (N, N) symmetric positive semi-definite kernel L, array or tensor (float64).
        max_length: the most items to pick, >= 1 (more than N picks at most N).
        epsilon: stop before a pick whose gain d^2 is below this (the first pick is always made).

    Returns:
        list: row indices (ints) in pick order, at most ``max_length``.

    Raises:
        FastselError: a kernel that is not square, symmetric and finite or has a negative diagonal,
            max_length < 1, epsilon not positive and finite.
    """
    eps = _check_eps(epsilon)
    L = _div._check_gram(kernel_matrix)
    n = min(check_int(max_length, "max_length", 1), L.shape[0])
    idx, info = _div.dpp(L, n, kernel="precomputed", epsilon=_below(eps))
    spent = info["rank_spent_at"]
    return idx.tolist() if spent is None else idx[:max(spent, 1)].tolist()


def dpp_sw(kernel_matrix, window_size, max_length, epsilon=1E-10):
    """Greedy MAP of a DPP over a sliding window (fast-map-dpp's ``dpp_sw``): each pick j maximises
    det L_{W+j} / det L_W, W the newest ``window_size - 1`` picks (all picks while there are fewer).

    The window's Cholesky rows C (m, N) are kept, C^T C = L_{:,W} L_W^{-1} L_{W,:}. Dropping the oldest
    pick needs no new kernel row: with V = C[:, W]^T (V V^T = L_W), the unit vector u with V[1:] u = 0
    spans what the newest m - 1 picks do not explain; a Householder reflection taking u to the first
    axis splits C into u^T C (added back to the gains) and the rows of the smaller window.
    O(window N) per pick.

    Args:
        kernel_matrix: (N, N) symmetric positive semi-definite kernel L, array or tensor (float64).
        window_size: picks the diversity is measured over, >= 1 (1: the largest L_jj left).
        max_length: the most items to pick, >= 1.
        epsilon: stop before a pick whose windowed gain is below this (the first pick is always made).

    Returns:
        list: row indices (ints) in pick order, at most ``max_length``.

    Raises:
        FastselError: as :func:`dpp`, and window_size < 1.
    """
    eps = _check_eps(epsilon)
    L = _div._check_gram(kernel_matrix)
    w = check_int(window_size, "window_size", 1)
    N = L.shape[0]
    n = min(check_int(max_length, "max_length", 1), N)
    d2 = L.diagonal().clone()
    taken = torch.zeros(N, dtype=torch.bool)
    C = L.new_zeros((0, N))
    j = _div._first_tied(d2, 1)
    picks = [j]
    if float(d2[j]) < eps:  # even the first pick adds nothing (a zero kernel): no row can follow it
        return picks
    while len(picks) < n:
        taken[j] = True
        e = (L[j] - C[:, j] @ C) / math.sqrt(float(d2[j]))
        C = torch.cat([C, e[None]])
        d2 -= e * e
        if C.shape[0] >= w:  # drop the oldest pick from the window
            m = C.shape[0]
            V = C[:, picks[-m:]].T
            u = torch.linalg.solve(V, torch.eye(m, dtype=L.dtype)[:, 0])
            u /= torch.linalg.vector_norm(u)
            v = u.clone()
            v[0] += math.copysign(1.0, float(u[0]))
            C = C - (2.0 / float(v @ v)) * torch.outer(v, v @ C)  # H C, H u = -sign(u_0) e_1
            d2 += C[0] * C[0]
            C = C[1:]
        d2[taken] = -math.inf
        j = _div._first_tied(d2, 1)
        if float(d2[j]) < eps:
            break
        picks.append(j)
    return picks
