"""Drop-in for ``vendi_score.vendi`` (vendi-score 0.0.3)::

    from vendi_score import vendi  ->  from fastsel.compat import vendi

``score``, ``score_K``, ``score_X`` and ``score_dual`` with vendi's signatures, defaults and
conventions: the kernel is weighted by 1/n (or by sqrt(p_i p_j) with ``p``, used as given, not
rescaled), the eigenvalues are used as they come out of the float64 eigensolver (not rescaled to sum
to 1; exactly-positive ones enter the entropy), ``normalize`` divides K by sqrt(k_ii k_jj) (score,
score_K) or the rows by their L2 norm, a zero row staying zero (score_X, score_dual). The order q is
any number >= 0, or "inf" / ``math.inf`` (1 / the largest eigenvalue).

Differences from vendi-score 0.0.3 (docs/compat.md): ``score_X`` uses the q it is given (vendi's
always computes q = 1) and, for n > d rows, the d x d dual matrix (the same nonzero eigenvalues in
O(n d^2)); ``q=math.inf`` works as "inf" (vendi's gives NaN); a scipy sparse K is made dense (vendi's
asks a sparse eigensolver for its 6 largest eigenvalues only); a negative or NaN q is refused.
fastsel's own :func:`fastsel.metrics.vendi_score` rescales the eigenvalues to sum to 1 and counts
rounding-level ones as 0 (the numerical rank), which matters only for q < 1 on rank-deficient kernels.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import FastselError
from ..metrics import vendi_order

__all__ = ["score", "score_K", "score_X", "score_dual", "entropy_q", "weight_K", "normalize_K"]


def _matrix(K, name="K") -> np.ndarray:
    if hasattr(K, "toarray") and hasattr(K, "tocsr"):
        K = K.toarray()
    if not isinstance(K, np.ndarray):
        try:
            K = K.detach().cpu().numpy()
        except AttributeError:
            K = np.asarray(K)
    if K.ndim != 2 or K.dtype.kind not in "iufb":
        raise FastselError(f"{name} must be a 2-D numeric array, got shape {np.shape(K)} dtype {K.dtype}")
    K = np.asarray(K, dtype=np.float64)  # no copy of float64 input: nothing here writes into K
    if not np.isfinite(K.sum()) and not np.isfinite(K).all():  # one pass unless the sum is non-finite
        raise FastselError(f"{name} holds NaN or infinite values")
    return K


def _weights(p, n: int) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    if p.shape != (n,) or not np.isfinite(p).all() or (p < 0).any():
        raise FastselError(f"p must hold {n} finite probabilities >= 0")
    return p


def _l2_rows(X: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", X, X))
    norms[norms == 0] = 1.0
    return X / norms[:, None]


def weight_K(K, p=None) -> np.ndarray:
    """K / n, or K * sqrt(p_i p_j) with ``p`` (used as given).

    Args:
        K: (n, n) kernel.
        p: (n,) probabilities, or None.

    Returns:
        numpy.ndarray: the weighted kernel.
    """
    K = _matrix(K)
    if p is None:
        return K / K.shape[0]
    s = np.sqrt(_weights(p, K.shape[0]))
    return K * np.outer(s, s)


def normalize_K(K) -> np.ndarray:
    """K / sqrt(k_ii k_jj): unit diagonal.

    Args:
        K: (n, n) kernel with a positive diagonal.

    Returns:
        numpy.ndarray: the normalised kernel.
    """
    K = _matrix(K)
    d = np.sqrt(np.diagonal(K))
    if not (d > 0).all():
        raise FastselError("normalize needs a positive diagonal")
    return K / np.outer(d, d)


def entropy_q(p, q=1) -> float:
    """The Renyi entropy of order q of the values p as given: Shannon for q = 1, -log max p for
    q = inf, else log(sum p^q) / (1 - q), over the positive entries.

    Args:
        p: 1-D values (eigenvalues).
        q: the order, >= 0 or "inf".

    Returns:
        float: the entropy (nats).
    """
    q = vendi_order(q)
    p = np.asarray(p, dtype=np.float64).reshape(-1)
    p_ = p[p > 0]
    if q == 1:
        return float(-(p_ * np.log(p_)).sum())
    if math.isinf(q):
        return float(-np.log(np.max(p)))
    return float(np.log((p_ ** q).sum()) / (1 - q))


def _eig_score(M: np.ndarray, q) -> float:
    if M.shape[0] != M.shape[1]:
        raise FastselError(f"the kernel must be square, got shape {M.shape}")
    return float(np.exp(entropy_q(np.linalg.eigvalsh(M), q)))


def score_K(K, q=1, p=None, normalize=False) -> float:
    """The Vendi score of order q of a precomputed (n, n) similarity matrix: exp of the order-q
    entropy of the eigenvalues of K / n (or of K * sqrt(p_i p_j)).

    Args:
        K: (n, n) symmetric positive semi-definite kernel, k(x, x) = 1 in the definition.
        q: the order, >= 0 or "inf".
        p: (n,) sample probabilities, or None for 1/n each.
        normalize: first scale K to a unit diagonal.

    Returns:
        float: the score.
    """
    vendi_order(q)
    K = _matrix(K)
    if K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise FastselError(f"K must be a non-empty square matrix, got shape {K.shape}")
    if normalize:
        K = normalize_K(K)
    return _eig_score(weight_K(K, p), q)


def score(samples, k, q=1, p=None, normalize=False) -> float:
    """The Vendi score of ``samples`` under the similarity function ``k`` (symmetric, k(x, x) = 1):
    K[i, j] = k(samples[i], samples[j]) for i <= j, mirrored, then :func:`score_K`.

    Args:
        samples: a sequence of n items.
        k: the similarity function of two items.
        q: the order, >= 0 or "inf".
        p: (n,) sample probabilities, or None.
        normalize: scale K to a unit diagonal.

    Returns:
        float: the score.
    """
    n = len(samples)
    if n == 0:
        raise FastselError("score needs at least 1 sample")
    rows = [samples[i] for i in range(n)]
    # k called in vendi's order (i, then j >= i), its values stored as float64 as item assignment stores them
    vals = np.fromiter((k(a, b) for i, a in enumerate(rows) for b in rows[i:]), dtype=np.float64,
                       count=n * (n + 1) // 2)
    K = np.empty((n, n))
    iu = np.triu_indices(n)
    K[iu] = vals
    K.T[iu] = vals
    return score_K(K, q=q, p=p, normalize=normalize)


def score_X(X, q=1, p=None, normalize=True) -> float:
    """The Vendi score of order q with the linear kernel K = X X^T on the (L2-normalised) rows.
    For n > d rows the nonzero eigenvalues come from the d x d matrix X^T diag(w) X (w = p, or 1/n):
    O(n d^2), never n x n.

    Args:
        X: (n, d) embeddings.
        q: the order, >= 0 or "inf" (vendi-score 0.0.3 ignores it and computes q = 1).
        p: (n,) sample probabilities, or None.
        normalize: L2-normalise the rows first.

    Returns:
        float: the score.
    """
    vendi_order(q)
    X = _matrix(X, "X")
    n, d = X.shape
    if n == 0:
        raise FastselError("X needs at least 1 row")
    if normalize:
        X = _l2_rows(X)
    if n <= d:
        return score_K(X @ X.T, q=q, p=p)
    w = np.full(n, 1.0 / n) if p is None else _weights(p, n)
    return _eig_score(X.T @ (X * w[:, None]), q)


def score_dual(X, q=1, normalize=True) -> float:
    """The Vendi score of order q from the d x d matrix X^T X / n of the (L2-normalised) rows: the
    same nonzero eigenvalues as X X^T / n, in O(n d^2).

    Args:
        X: (n, d) embeddings.
        q: the order, >= 0 or "inf".
        normalize: L2-normalise the rows first.

    Returns:
        float: the score.
    """
    vendi_order(q)
    X = _matrix(X, "X")
    if X.shape[0] == 0:
        raise FastselError("X needs at least 1 row")
    if normalize:
        X = _l2_rows(X)
    return _eig_score(X.T @ X / X.shape[0], q)
