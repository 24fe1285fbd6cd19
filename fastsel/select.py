"""One entry point over the selectors: greedy, threshold and random."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from . import ops

METHODS = ("greedy", "threshold", "random")


def select(x, n: int, method: str = "greedy", *, start: Optional[int] = None, seed: int = ops.DEFAULT_SEED,
           tau: Optional[float] = None, alpha: float = ops.DEFAULT_ALPHA, decay: str = "empty-pass",
           backend: str = "auto", progress: Optional[Callable[[int], None]] = None) -> torch.Tensor:
    """Indices (int64, in pick order) of an ``n``-row subset chosen by ``method``.

    ``random`` is the vanilla paradigm's uniform subsample (seeded permutation).
    """
    if method == "greedy":
        return ops.greedy(x, n, start, seed=seed, backend=backend, progress=progress).indices
    if method == "threshold":
        return ops.threshold_decay(x, n, start, tau, alpha, decay=decay, seed=seed, backend=backend,
                                   progress=progress).indices
    if method == "random":
        x = ops.as_tensor(x)
        n = ops._check_n(n, x.shape[0])
        g = torch.Generator().manual_seed(int(seed))
        idx = torch.randperm(x.shape[0], generator=g)[:n]
        if progress is not None:
            progress(n)
        return idx
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
