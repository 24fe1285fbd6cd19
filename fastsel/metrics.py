"""Metrics of Shi et al. 2025: KL entropy, MNND, generalization score, covariance trace, Pearson r.

All sums are taken in float64; nearest-neighbour distances come from
:func:`fastsel.ops.nn` (exact, float64-accurate distances).
"""
from __future__ import annotations

import math
import numbers
import warnings

import numpy as np
import torch

from .errors import FastselError
from .ops._inputs import as_tensor
from .ops.nn import nn

_EULER = 0.57721566490153286060651209008240243


def digamma_int(n: int) -> float:
    """ψ(n) for a positive integer n: −γ + H(n−1), with the asymptotic series for large n.

    Args:
        n: a positive integer.

    Returns:
        float: ψ(n).

    Raises:
        FastselError: n < 1.
    """
    n = int(n)
    if n < 1:
        raise FastselError(f"digamma_int needs n >= 1, got {n}")
    if n <= 64:
        return -_EULER + math.fsum(1.0 / j for j in range(1, n))
    x = float(n)
    x2 = 1.0 / (x * x)
    return math.log(x) - 0.5 / x - x2 * (1 / 12 - x2 * (1 / 120 - x2 * (1 / 252 - x2 * (1 / 240 - x2 / 132))))


def log_unit_ball_volume(d: int) -> float:
    """log c_d, c_d = π^{d/2} / Γ(d/2 + 1): the volume of the unit ball in R^d.

    Args:
        d: the dimension.

    Returns:
        float: log c_d.
    """
    return 0.5 * d * math.log(math.pi) - math.lgamma(0.5 * d + 1.0)


def kl_entropy(x, k: int = 1, *, backend: str = "auto") -> float:
    """Kozachenko–Leonenko entropy: ψ(N) − ψ(k) + log c_d + (d/N) Σ log ε_k(x).

    ε_k is the distance to the k-th nearest other row. Exact duplicates make some
    ε_k zero and the estimate −inf (a warning says how many).

    Args:
        x: (N, d) rows.
        k: the neighbour whose distance is used, 1 <= k < N.
        backend: "auto", "cpp" or "torch" (the k-NN).

    Returns:
        float: the estimate in nats (-inf with exact duplicates).

    Raises:
        FastselError: k outside [1, N), NaN or infinite values.
    """
    x = as_tensor(x)
    N, d = x.shape
    if not 1 <= k < N:
        raise FastselError(f"kl_entropy needs 1 <= k < N={N}, got k={k}")
    eps = nn(x, k=k, exclude_self=True, backend=backend).distances[:, k - 1].double()
    zeros = int((eps == 0).sum())
    if zeros:
        warnings.warn(f"{zeros} of {N} rows have a duplicate at distance 0: the KL entropy is -inf", stacklevel=2)
        return -math.inf
    return digamma_int(N) - digamma_int(k) + log_unit_ball_volume(d) + d * float(torch.log(eps).mean())


def mnnd(x, *, backend: str = "auto") -> float:
    """Mean nearest-neighbour distance within a set (Appendix E.1): Dist(D, D) without self-pairs.

    Args:
        x: (N, d) rows, N >= 2.
        backend: "auto", "cpp" or "torch".

    Returns:
        float: the mean distance from each row to its nearest other row.
    """
    x = as_tensor(x)
    if x.shape[0] < 2:
        raise FastselError("mnnd needs at least 2 rows")
    return float(nn(x, k=1, exclude_self=True, backend=backend).distances[:, 0].double().mean())


def generalization_score(generated, train, *, backend: str = "auto") -> float:
    """GS(G, D): mean distance from each generated row to its nearest training row (Section 3).

    Args:
        generated: (G, d) generated rows.
        train: (T, d) training rows.
        backend: "auto", "cpp" or "torch".

    Returns:
        float: the mean nearest-training-row distance (0: every row is a copy).
    """
    return float(nn(generated, train, k=1, backend=backend).distances[:, 0].double().mean())


COPY_RATIO = 1.0 / 3.0


def distinct_rows(train, ratio: float = COPY_RATIO, k: int = 16, *, backend: str = "auto") -> torch.Tensor:
    """Indices of ``train`` with near-duplicate groups collapsed to their lowest index: rows closer than
    ``ratio`` times the median within-set 1-NN distance are joined (through each row's ``k`` nearest
    neighbours, transitively). A set without near-duplicates keeps (almost) every row.

    Args:
        train: (T, d) rows.
        ratio: the share of the median 1-NN distance under which two rows are joined.
        k: neighbours searched per row.
        backend: "auto", "cpp" or "torch".

    Returns:
        torch.Tensor: int64 indices of the kept rows, ascending.
    """
    t = as_tensor(train)
    N = t.shape[0]
    if N < 3:
        return torch.arange(N)
    res = nn(t, k=min(k, N - 1), exclude_self=True, backend=backend)
    d, idx = res.distances.double().cpu(), res.indices.cpu()
    radius = ratio * float(d[:, 0].median())
    parent = list(range(N))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i
    for i, j in zip(*torch.nonzero(d < radius, as_tuple=True)):
        a, b = root(int(i)), root(int(idx[i, j]))
        if a != b:
            parent[max(a, b)] = min(a, b)
    return torch.tensor(sorted({root(i) for i in range(N)}), dtype=torch.long)


def copy_fraction(generated, train, ratio: float = COPY_RATIO, *, dedup: bool = True,
                  backend: str = "auto") -> float:
    """Share of generated rows that are copies of a training row: the nearest training row is closer
    than ``ratio`` times the second nearest (d1 < d2 / 3). The ratio test of the memorization
    literature on diffusion models (Yoon et al. 2023, "Diffusion probabilistic models generalize when
    they fail to memorize"; Gu et al. 2023, "On memorization in diffusion models"), there on pixels.

    A copy is close to *one* training row and far from the rest, so the test does not fire for a sample
    that merely sits in a dense region (where d1 and d2 are both small). A training image present twice
    (a real image and a generated copy of it, in a self-consuming loop) would hide its copies (d1 ~ d2):
    with ``dedup`` (default) near-duplicate training rows count as one (:func:`distinct_rows`) first.
    Needs >= 2 training rows.

    Args:
        generated: (G, d) generated rows.
        train: (T, d) training rows, T >= 2.
        ratio: the d1 / d2 bound under which a row counts as a copy.
        dedup: first collapse near-identical training rows (see above).
        backend: "auto", "cpp" or "torch".

    Returns:
        float: the share of generated rows that are copies, in [0, 1].
    """
    g = as_tensor(generated)
    t = as_tensor(train)
    if t.shape[0] < 2:
        raise FastselError("copy_fraction needs at least 2 training rows")
    if g.shape[0] < 1:
        raise FastselError("copy_fraction needs at least 1 generated row")
    if not 0 < ratio <= 1:
        raise FastselError(f"copy_fraction ratio must be in (0, 1], got {ratio}")
    if dedup:
        keep = distinct_rows(t, ratio, backend=backend)
        if len(keep) >= 2:
            t = t[keep.to(t.device)]
    d = nn(g, t, k=2, backend=backend).distances.double()
    return float((d[:, 0] < ratio * d[:, 1]).double().mean())


def gs_normalized(generated, train, holdout, *, backend: str = "auto") -> float:
    """GS(G, T) / GS(H, T): the generalization score divided by the mean 1-NN distance from held-out
    real rows H (drawn from the same distribution as T, not in T) to the same training set.

    1 means "as far from the training set as fresh real data", 0 means exact copies; a denser training
    set lowers GS(G, T) and GS(H, T) alike, so the ratio does not mistake density for copying.

    Args:
        generated: (G, d) generated rows.
        train: (T, d) training rows.
        holdout: (H, d) real rows from the training distribution, not in ``train``.
        backend: "auto", "cpp" or "torch".

    Returns:
        float: GS(G, T) / GS(H, T).
    """
    ref = generalization_score(holdout, train, backend=backend)
    if ref == 0:
        raise FastselError("gs_normalized: every held-out row is in the training set (reference distance 0)")
    return generalization_score(generated, train, backend=backend) / ref


COPY_QUANTILE = 0.05
COPY_FACTOR = 0.5


def copy_threshold(holdout, reference, quantile: float = COPY_QUANTILE, factor: float = COPY_FACTOR, *,
                   backend: str = "auto") -> float:
    """An absolute copy distance calibrated on fresh real data: ``factor`` times the ``quantile`` of the
    1-NN distances from held-out real rows to ``reference`` (real rows of the same distribution).

    A held-out real row copies nothing, so the distances it keeps from real training rows are "how close
    a fresh row comes by chance"; a sample much closer than that to a training row is a copy. Unlike the
    d1/d2 ratio (:func:`copy_fraction`) it does not depend on the second neighbour, so it sees copies of
    a training set that holds near-duplicates of itself (a collapsing self-consuming loop).

    Args:
        holdout: (H, d) held-out real rows, not in ``reference``.
        reference: (R, d) real rows the threshold is calibrated against.
        quantile: the quantile of the held-out 1-NN distances, in (0, 1).
        factor: the margin below that quantile, in (0, 1].
        backend: "auto", "cpp" or "torch".

    Returns:
        float: the distance under which a row counts as a copy (same units as the rows).
    """
    h, r = as_tensor(holdout), as_tensor(reference)
    if h.shape[0] < 1 or r.shape[0] < 1:
        raise FastselError("copy_threshold needs at least 1 held-out and 1 reference row")
    if not (0 < quantile < 1 and 0 < factor <= 1):
        raise FastselError(f"copy_threshold: quantile in (0, 1) and factor in (0, 1], got {quantile}, {factor}")
    d = nn(h, r, k=1, backend=backend).distances.double()[:, 0]
    return float(factor * torch.quantile(d, quantile))


def copy_fraction_abs(generated, train, tau: float, *, backend: str = "auto") -> float:
    """Share of generated rows whose nearest training row is closer than the absolute distance ``tau``
    (from :func:`copy_threshold`).

    Args:
        generated: (G, d) generated rows.
        train: (T, d) training rows.
        tau: the copy distance, > 0.
        backend: "auto", "cpp" or "torch".

    Returns:
        float: the share of copies, in [0, 1].
    """
    g, t = as_tensor(generated), as_tensor(train)
    if g.shape[0] < 1 or t.shape[0] < 1:
        raise FastselError("copy_fraction_abs needs at least 1 generated and 1 training row")
    if not (tau > 0 and math.isfinite(tau)):
        raise FastselError(f"copy_fraction_abs: tau must be a finite distance > 0, got {tau}")
    d = nn(g, t, k=1, backend=backend).distances.double()[:, 0]
    return float((d < tau).double().mean())


ENTROPY_M = 16
ENTROPY_DRAWS = 32


def kl_entropy_fixed(x, m: int = ENTROPY_M, draws: int = ENTROPY_DRAWS, seed: int = 0, k: int = 1, *,
                     backend: str = "auto") -> float:
    """The KL estimate at a fixed sample size: the mean of :func:`kl_entropy` over ``draws`` seeded
    random subsets of ``m`` rows (the whole set, once, when it has exactly m rows).

    The KL estimator's bias depends on the number of rows (in 84 dimensions, subsets of one
    distribution score lower the more rows they have), so raw estimates of sets of different sizes
    are not comparable; estimates at one fixed m are (same distribution -> same expected value).

    Args:
        x: (N, d) rows, N >= m.
        m: the subset size.
        draws: how many subsets are averaged.
        seed: the seed of the subsets.
        k: as for :func:`kl_entropy`.
        backend: "auto", "cpp" or "torch".

    Returns:
        float: the mean estimate in nats.
    """
    x = as_tensor(x)
    N = x.shape[0]
    if not k < m <= N:
        raise FastselError(f"kl_entropy_fixed needs k < m <= N (rows), got m={m}, N={N}")
    if N == m:
        return kl_entropy(x, k=k, backend=backend)
    g = torch.Generator().manual_seed(int(seed))
    vals = []
    for _ in range(max(1, int(draws))):
        rows = torch.randperm(N, generator=g)[:m]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vals.append(kl_entropy(x[rows.to(x.device)], k=k, backend=backend))
    return float(sum(vals) / len(vals))


def vendi_order(q) -> float:
    """Check a Vendi / Hill-number order: a real number q >= 0, ``math.inf`` or the string "inf".

    Args:
        q: the order.

    Returns:
        float: q as a float (``math.inf`` for "inf").

    Raises:
        FastselError: q negative, NaN, a bool or not a number.
    """
    if isinstance(q, str) and q.strip().lower() in ("inf", "infinity"):
        return math.inf
    if isinstance(q, bool) or not isinstance(q, numbers.Real) or not float(q) >= 0:
        raise FastselError(f"the Vendi order q must be a number >= 0 or 'inf', got {q!r}")
    return float(q)


def hill_number(p, q) -> float:
    """The Hill number (effective number) of order q of a probability vector: q = 0 the count of
    nonzero entries, q = 1 exp of the Shannon entropy, q = inf 1 / max p, else
    (sum p^q)^(1 / (1 - q)). Zero entries are left out (0 log 0 = 0); ``p`` is used as given (not
    renormalised).

    Args:
        p: 1-D nonnegative values (float64 tensor or array).
        q: the order (see :func:`vendi_order`).

    Returns:
        float: the Hill number.
    """
    q = vendi_order(q)
    p = torch.as_tensor(p, dtype=torch.float64).flatten()
    p = p[p > 0]
    if p.numel() == 0:
        raise FastselError("hill_number needs at least one positive value")
    if q == 0:
        return float(p.numel())
    if q == 1:
        return float(torch.exp(-(p * torch.log(p)).sum()))
    if math.isinf(q):
        return float(1.0 / p.max())
    return float(torch.exp(torch.log((p ** q).sum()) / (1.0 - q)))


def _vendi_weights(weights, n: int, device) -> torch.Tensor:
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64, device=device)
    if isinstance(weights, torch.Tensor):
        w = weights.detach().to(device=device, dtype=torch.float64).flatten()
    else:
        try:
            w = torch.as_tensor(np.asarray(weights, dtype=np.float64), device=device).flatten()
        except (TypeError, ValueError):
            raise FastselError("vendi_score: weights must be a sequence of numbers") from None
    if w.numel() != n:
        raise FastselError(f"vendi_score: weights has {w.numel()} values for {n} rows")
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()) or not float(w.sum()) > 0:
        raise FastselError("vendi_score: weights must be finite, >= 0 and not all 0")
    return w / w.sum()


def vendi_score(x, q: float = 1.0, *, weights=None, kernel: str = "cosine") -> float:
    """Vendi score (Friedman & Dieng 2023) of order q: the Hill number of order q of the eigenvalues
    of the weighted kernel diag(sqrt p) K diag(sqrt p) (p = 1/n each unless ``weights``), scaled to sum
    to 1. q = 1 (default) is exp of their Shannon entropy (the von Neumann entropy of K / n), q = 0
    the count of nonzero eigenvalues (the numerical rank: eigenvalues <= n * eps * the largest count
    as 0, as ``numpy.linalg.matrix_rank``), q = inf 1 / the largest (Pasarkar & Dieng 2023).

    ``kernel="cosine"`` (default): x holds (n, d) embeddings and K = X^ X^T with X^ the
    L2-normalised rows (the ``vendi-score`` package's choice for embeddings). Exact in O(n d^2) time
    and O(d^2) memory: the nonzero eigenvalues of diag(sqrt p) K diag(sqrt p) equal those of
    sum_i p_i x^_i x^_i^T (d x d), accumulated in float64 in row blocks -- no n x n kernel. Between 1
    (all rows parallel) and min(n, d) (orthogonal rows, evenly weighted).

    ``kernel="precomputed"``: x is the (n, n) symmetric positive semi-definite similarity matrix
    itself (k(a, a) = 1 in the definition; a matrix with another diagonal is scaled to unit trace).
    O(n^3) time, one float64 eigendecomposition.

    Args:
        x: (n, d) rows (``kernel="cosine"``; a zero row is refused: it has no direction), or the
            (n, n) kernel (``kernel="precomputed"``).
        q: the order, a number >= 0 or ``math.inf`` / "inf".
        weights: (n,) nonnegative sample weights (scaled to sum to 1), None for uniform.
        kernel: "cosine" or "precomputed".

    Returns:
        float: the Vendi score, in [1, rank].

    Raises:
        FastselError: a bad order, weights, kernel name or matrix, a zero row, no rows.
    """
    q = vendi_order(q)
    x = as_tensor(x)
    if x.dim() != 2:
        raise FastselError(f"vendi_score needs a 2-D input, got shape {tuple(x.shape)}")
    n = x.shape[0]
    if n < 1:
        raise FastselError("vendi_score needs at least 1 row")
    w = _vendi_weights(weights, n, x.device)
    if kernel == "cosine":
        g = torch.zeros((x.shape[1], x.shape[1]), dtype=torch.float64, device=x.device)
        for a in range(0, n, 8192):
            b = x[a:a + 8192].double()
            b = b / b.abs().amax(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)  # no over/underflow
            norms = b.norm(dim=1, keepdim=True)
            if bool((norms == 0).any()):
                raise FastselError(f"vendi_score: row {a + int((norms[:, 0] == 0).nonzero()[0])} is all zeros "
                                   "(the cosine kernel needs nonzero rows)")
            b = b / norms
            g += b.T @ (b * w[a:a + 8192, None])
    elif kernel == "precomputed":
        K = x.double()
        if K.shape[0] != K.shape[1]:
            raise FastselError(f"vendi_score: a precomputed kernel must be square, got {tuple(K.shape)}")
        if not bool(torch.isfinite(K).all()):
            raise FastselError("vendi_score: the kernel holds NaN or infinite values")
        scale = float(K.abs().max())
        if float((K - K.T).abs().max()) > 1e-10 * scale:
            raise FastselError("vendi_score: a precomputed kernel must be symmetric")
        s = torch.sqrt(w)
        g = K * s[:, None] * s[None, :]
        if not float(torch.diagonal(g).sum()) > 0:
            raise FastselError("vendi_score: the kernel's weighted trace is not positive")
    else:
        raise FastselError(f"vendi_score: kernel must be 'cosine' or 'precomputed', got {kernel!r}")
    lam = torch.linalg.eigvalsh(g)
    tol = float(lam.max()) * lam.numel() * torch.finfo(torch.float64).eps
    lam = torch.where(lam > tol, lam, torch.zeros_like(lam))
    return hill_number(lam / lam.sum(), q)


def cov_trace(x) -> float:
    """Trace of the (unbiased, N − 1) covariance matrix: the summed per-dimension variance.

    Args:
        x: (N, d) rows, N >= 2.

    Returns:
        float: the trace, in float64.
    """
    x = as_tensor(x)
    if x.shape[0] < 2:
        raise FastselError("cov_trace needs at least 2 rows")
    total = 0.0
    n = x.shape[0]
    mean = x.double().mean(0)
    for a in range(0, n, 8192):
        c = x[a:a + 8192].double() - mean
        total += float((c * c).sum())
    return total / (n - 1)


def pearson(a, b) -> float:
    """Pearson correlation coefficient of two equal-length sequences (entropy vs log GS, Fig. 2b).

    Args:
        a: a sequence of numbers.
        b: a sequence of the same length.

    Returns:
        float: r in [-1, 1].

    Raises:
        FastselError: different lengths, fewer than 2 values, or a constant sequence.
    """
    a = torch.as_tensor(a, dtype=torch.float64).flatten()
    b = torch.as_tensor(b, dtype=torch.float64).flatten()
    if a.numel() != b.numel() or a.numel() < 2:
        raise FastselError("pearson needs two sequences of the same length >= 2")
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    if den == 0:
        raise FastselError("pearson is undefined for a constant sequence")
    return float((a * b).sum()) / den


def summary(x, ref=None, k: int = 1, *, holdout=None, backend: str = "auto") -> dict:
    """entropy, mnnd, cov_trace (and gs, copy_fraction against ``ref``; gs_norm with ``holdout``)
    of a feature set, as one dict.

    Args:
        x: (N, d) the feature set.
        ref: (T, d) training rows for gs and copy_fraction (None: left out).
        k: the KL estimate's neighbour.
        holdout: (H, d) held-out real rows for gs_norm (None: left out).
        backend: "auto", "cpp" or "torch".

    Returns:
        dict: float values keyed entropy, mnnd, cov_trace, vendi (and gs, copy_fraction, gs_norm); a
        metric the data does not allow is None, with the reason in ``notes`` (a list of lines, present
        only then): vendi with an all-zero row (its cosine kernel), copy_fraction with a 1-row ref.
    """
    notes = []
    out = {
        "entropy": kl_entropy(x, k=k, backend=backend),
        "mnnd": mnnd(x, backend=backend),
        "cov_trace": cov_trace(x),
        "vendi": None,
    }
    zero = _zero_row(x)
    if zero is None:
        out["vendi"] = vendi_score(x)
    else:
        notes.append(f"vendi left out: row {zero} is all zeros (the Vendi score's cosine kernel needs nonzero rows)")
    if ref is not None:
        out["gs"] = generalization_score(x, ref, backend=backend)
        t = as_tensor(ref).shape[0]
        if t >= 2:
            out["copy_fraction"] = copy_fraction(x, ref, backend=backend)
        else:
            out["copy_fraction"] = None
            notes.append(f"copy_fraction left out: the reference has {t} row; its ratio test compares the nearest "
                         "reference row with the second nearest (at least 2 rows)")
        if holdout is not None:
            out["gs_norm"] = gs_normalized(x, ref, holdout, backend=backend)
    if notes:
        out["notes"] = notes
    return out


def _zero_row(x):
    """The index of the first all-zero row of ``x`` (None when there is none)."""
    x = as_tensor(x)
    for a in range(0, x.shape[0], 8192):
        z = (x[a:a + 8192] == 0).all(dim=1)
        if bool(z.any()):
            return a + int(z.nonzero()[0])
    return None
