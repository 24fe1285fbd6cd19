"""Fréchet Inception Distance: statistics in float64, matrix square root via scipy.

FID(A, B) = |mu_A - mu_B|^2 + tr(S_A + S_B - 2 (S_A S_B)^{1/2}), with pytorch-fid's
preprocessing (InceptionV3 pool3, inputs at 299x299 in [-1, 1]; see fastsel.features).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .io import DataError


class Stats(NamedTuple):
    mu: np.ndarray     # (d,) float64
    sigma: np.ndarray  # (d, d) float64, unbiased
    n: int


def stats(features: np.ndarray, chunk: int = 8192) -> Stats:
    """Mean and unbiased covariance of (N, d) features, accumulated in float64 chunk by chunk."""
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


def frechet(a: Stats, b: Stats, eps: float = 1e-6) -> float:
    """The Fréchet distance between Gaussians (mu, sigma): scipy's sqrtm, as pytorch-fid."""
    from scipy import linalg
    for s_ in (a, b):
        if not (np.isfinite(s_.mu).all() and np.isfinite(s_.sigma).all()):
            raise DataError("FID statistics hold NaN or Inf values")
    if a.mu.shape != b.mu.shape:
        raise DataError(f"FID statistics of different dimensions: {a.mu.shape[0]} and {b.mu.shape[0]}")
    diff = a.mu - b.mu
    with np.errstate(all="ignore"):
        covmean = linalg.sqrtm(a.sigma @ b.sigma)
    if not np.isfinite(covmean).all():  # singular product: nudge the diagonals (pytorch-fid's rule)
        off = np.eye(a.sigma.shape[0]) * eps
        covmean = linalg.sqrtm((a.sigma + off) @ (b.sigma + off))
    covmean = covmean.real
    value = float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * np.trace(covmean))
    if not np.isfinite(value):
        raise DataError("the FID is not finite: the statistics hold NaN/Inf or overflow float64")
    return value


def frechet_eigh(a: Stats, b: Stats) -> float:
    """An independent float64 computation: tr((S_A S_B)^{1/2}) = sum sqrt(eig(R S_B R)), R = S_A^{1/2}."""
    w, v = np.linalg.eigh(a.sigma)
    r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = np.linalg.eigvalsh(r @ b.sigma @ r)
    diff = a.mu - b.mu
    return float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * np.sqrt(np.clip(m, 0, None)).sum())


def save_stats(path: str, s: Stats) -> None:
    from .io import atomic_path
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, mu=s.mu, sigma=s.sigma, n=np.int64(s.n))


def load_stats(path: str) -> Stats:
    """Statistics written by :func:`save_stats` (or pytorch-fid): checked, one line per problem."""
    from .io import read_arrays
    z = read_arrays(path, ("mu", "sigma", "n"))
    if "mu" not in z or "sigma" not in z:
        raise DataError(f"{path}: FID statistics need arrays 'mu' and 'sigma'")
    mu, sigma = z["mu"], z["sigma"]
    n = z["n"] if "n" in z else np.int64(-1)
    if mu.dtype.kind not in "fiu" or sigma.dtype.kind not in "fiu":
        raise DataError(f"{path}: 'mu' and 'sigma' must hold numbers")
    mu, sigma = mu.astype(np.float64), sigma.astype(np.float64)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise DataError(f"{path}: 'mu' must be (d,) and 'sigma' (d, d), got {mu.shape} and {sigma.shape}")
    if np.ndim(n) != 0 or np.asarray(n).dtype.kind not in "iu":
        raise DataError(f"{path}: 'n' must be one integer (the image count), got shape {np.shape(n)}")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise DataError(f"{path}: the statistics hold NaN or Inf values")
    return Stats(mu, sigma, int(n))
