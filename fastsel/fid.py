"""Fréchet Inception Distance: statistics in float64, matrix square root via scipy.

FID(A, B) = |mu_A - mu_B|^2 + tr(S_A + S_B - 2 (S_A S_B)^{1/2}), with pytorch-fid's
preprocessing (InceptionV3 pool3, inputs at 299x299 in [-1, 1]; see fastsel.features).
"""
from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from .io import DataError, atomic_path, read_arrays


class Stats(NamedTuple):
    mu: np.ndarray     # (d,) float64
    sigma: np.ndarray  # (d, d) float64, unbiased
    n: int


def stats(features: np.ndarray, chunk: int = 8192) -> Stats:
    """Mean and unbiased covariance of features, accumulated in float64 chunk by chunk.

    Args:
        features: (N, d), N >= 2, any float dtype (a memmap is read chunk by chunk).
        chunk: rows per chunk.

    Returns:
        A ``Stats``: mu (d,) float64, sigma (d, d) float64 (unbiased), n = N.

    Raises:
        fastsel.io.DataError: fewer than 2 rows.
    """
    N, d = features.shape
    if N < 2:
        raise DataError("FID statistics need at least 2 feature rows")
    mu = np.zeros(d)
    for a in range(0, N, chunk):
        mu += np.asarray(features[a:a + chunk], dtype=np.float64).sum(0)
    mu /= N
    sigma = np.zeros((d, d))
    for a in range(0, N, chunk):
        c = np.asarray(features[a:a + chunk], dtype=np.float64) - mu
        sigma += c.T @ c
    return Stats(mu, sigma / (N - 1), N)


_SYM_RTOL = 1e-6   # |S - S^T| allowed, relative to the largest |S| (rounding of a computed covariance)
_PSD_RTOL = 1e-6   # negative eigenvalues allowed, relative to the largest one


def check_stats(s: Stats, name: str = "statistics", psd: bool = True) -> None:
    """One DataError line unless ``s`` can be Gaussian statistics: mu (d,) with d >= 1, sigma (d, d),
    finite, symmetric and positive semi-definite within rounding (``psd``: the eigenvalue check,
    O(d^3))."""
    mu, sigma = np.asarray(s.mu), np.asarray(s.sigma)
    if mu.ndim != 1 or mu.shape[0] < 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise DataError(f"{name}: 'mu' must be (d,) with d >= 1 and 'sigma' (d, d), got {mu.shape} and {sigma.shape}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DataError(f"{name}: the statistics hold NaN or Inf values")
    scale = float(np.abs(sigma).max())
    asym = float(np.abs(sigma - sigma.T).max())
    if asym > _SYM_RTOL * scale:
        raise DataError(f"{name}: 'sigma' is not symmetric (largest |S - S^T| = {asym:.3g}, largest |S| = "
                        f"{scale:.3g}): not a covariance matrix")
    if psd and scale > 0:
        w = np.linalg.eigvalsh((sigma + sigma.T) / 2)
        if w[0] < -_PSD_RTOL * max(w[-1], 0.0):
            raise DataError(f"{name}: 'sigma' is not positive semi-definite (smallest eigenvalue {w[0]:.3g}, "
                            f"largest {w[-1]:.3g}): not a covariance matrix")


def frechet(a: Stats, b: Stats, eps: float = 1e-6, *, names: tuple = ("A", "B")) -> float:
    """The Fréchet distance between Gaussians (mu, sigma): scipy's sqrtm, as pytorch-fid.

    The statistics are checked first (:func:`check_stats`). A singular covariance (n <= d images)
    makes the square root approximate: one warning says so, and a value below 0 from rounding is
    reported as 0 (with that warning).

    Args:
        a: statistics of one set (:func:`stats`).
        b: statistics of the other, of the same dimension.
        eps: added to both covariances' diagonals when the square root of their product is not
            finite (pytorch-fid's rule).
        names: how the two sets are named in errors and warnings.

    Returns:
        The squared Fréchet distance (the FID when the features are Inception's), >= 0.

    Raises:
        fastsel.io.DataError: invalid statistics, different dimensions, or a non-finite result.
    """
    from scipy import linalg  # optional: scipy (the data extra), and start-up time
    for s_, nm in zip((a, b), names):
        check_stats(s_, nm)
    if a.mu.shape != b.mu.shape:
        raise DataError(f"FID statistics of different dimensions: {a.mu.shape[0]} and {b.mu.shape[0]}")
    d = a.mu.shape[0]
    diff = a.mu - b.mu
    with warnings.catch_warnings(record=True) as caught, np.errstate(all="ignore"):
        warnings.simplefilter("always")
        covmean = linalg.sqrtm(a.sigma @ b.sigma)
        if not np.isfinite(covmean).all():  # singular product: nudge the diagonals (pytorch-fid's rule)
            off = np.eye(d) * eps
            covmean = linalg.sqrtm((a.sigma + off) @ (b.sigma + off))
    covmean = covmean.real
    value = float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * np.trace(covmean))
    if not np.isfinite(value):
        raise DataError("the FID is not finite: the statistics hold NaN/Inf or overflow float64")
    value, raw = max(value, 0.0), value  # a distance: below 0 only by rounding
    few = [f"{nm} has {s_.n} images for d = {d}" for s_, nm in zip((a, b), names) if 0 < s_.n <= d]
    why = ("the covariance is singular (n <= d: " + "; ".join(few) + ")") if few else \
        "the covariance product is singular or ill-conditioned"
    if raw < 0 and (caught or few):
        warnings.warn(f"the FID computed as {raw:.3g} (< 0 from rounding) is reported as 0: {why}; "
                      "use more images than dimensions", RuntimeWarning, stacklevel=2)
    elif caught or few:
        warnings.warn(f"{why}: the matrix square root is approximate and the FID unreliable; use more "
                      "images than dimensions", RuntimeWarning, stacklevel=2)
    return value


def frechet_eigh(a: Stats, b: Stats) -> float:
    """An independent float64 computation: tr((S_A S_B)^{1/2}) = sum sqrt(eig(R S_B R)), R = S_A^{1/2}."""
    w, v = np.linalg.eigh(a.sigma)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = np.linalg.eigvalsh(r @ b.sigma @ r)
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * np.sqrt(np.clip(m, 0, None)).sum())


def save_stats(path: str, s: Stats) -> None:
    """Write statistics to an ``.npz`` (mu, sigma, n; pytorch-fid's keys), atomically.

    Args:
        path: the file to write.
        s: from :func:`stats`.

    Returns:
        None.
    """
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, mu=s.mu, sigma=s.sigma, n=np.int64(s.n))


def load_stats(path: str) -> Stats:
    """Statistics written by :func:`save_stats` (or pytorch-fid), checked. Unlike pytorch-fid, which
    reads any ``sigma`` as it is, a sigma that is not symmetric (within 1e-6 of its largest entry) is
    refused: it is not a covariance matrix, and a FID computed from it means nothing.

    Args:
        path: an ``.npz`` with ``mu`` and ``sigma`` (and ``n``); read with ``allow_pickle=False``.

    Returns:
        A ``Stats`` (mu (d,) float64, sigma (d, d) float64, n).

    Raises:
        fastsel.io.DataError: an unreadable file or inconsistent statistics, one line per problem.
    """
    z = read_arrays(path, ("mu", "sigma", "n"))
    if "mu" not in z or "sigma" not in z:
        raise DataError(f"{path}: FID statistics need arrays 'mu' and 'sigma'")
    mu, sigma = z["mu"], z["sigma"]
    n = z["n"] if "n" in z else np.int64(-1)
    if mu.dtype.kind not in "fiu" or sigma.dtype.kind not in "fiu":
        raise DataError(f"{path}: 'mu' and 'sigma' must hold numbers")
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    if np.ndim(n) != 0 or np.asarray(n).dtype.kind not in "iu":
        raise DataError(f"{path}: 'n' must be one integer (the image count), got shape {np.shape(n)}")
    s = Stats(mu, sigma, int(n))
    check_stats(s, path, psd=False)  # the eigenvalue check runs in frechet
    return s
