"""One entry point over the selectors: greedy, threshold and random."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from . import ops
from .errors import FastselError

METHODS = ("greedy", "threshold", "random")


def select(x, n: int, method: str = "greedy", *, start: Optional[int] = None, seed: int = ops.DEFAULT_SEED,
           tau: Optional[float] = None, alpha: float = ops.DEFAULT_ALPHA, decay: str = "empty-pass",
           order: str = "random", backend: str = "auto", progress: Optional[Callable[[int], None]] = None,
           return_info: bool = False):
    """Indices (int64, in pick order) of an ``n``-row subset chosen by ``method``.

    ``random`` is the vanilla paradigm's uniform subsample (seeded permutation).
    ``return_info=True`` returns ``(indices, info)``; for the threshold filter ``info`` holds
    ``tau0``, ``tau_end``, ``passes``, ``decays``, ``n_filled`` and ``order`` (else it is empty).
    """
    info: dict = {}
    if method == "greedy":
        idx = ops.greedy(x, n, start, seed=seed, backend=backend, progress=progress).indices
    elif method == "threshold":
        r = ops.threshold_decay(x, n, start, tau, alpha, decay=decay, order=order, seed=seed, backend=backend,
                                progress=progress)
        idx, info = r.indices, r.info()
    elif method == "random":
        x = ops.as_tensor(x)
        n = ops._check_n(n, x.shape[0])
        g = torch.Generator().manual_seed(int(seed))
        idx = torch.randperm(x.shape[0], generator=g)[:n]
        if progress is not None:
            progress(n)
    else:
        raise FastselError(f"method must be one of {METHODS}, got {method!r}")
    return (idx, info) if return_info else idx
