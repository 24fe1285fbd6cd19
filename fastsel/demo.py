"""A demo feature pool made by the code, so a newcomer gets a result with no file of their own.

It mimics what the paper measures in DINOv2 space after a few self-consuming
iterations: most rows sit in tight clusters (memorised, near-duplicate
generations) and a minority spreads widely (the real images).
"""
from __future__ import annotations

import numpy as np
import torch


def make_pool(n: int = 8192, d: int = 384, clusters: int = 64, spread: float = 0.05,
              real_share: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (features float32 (n, d), source int8 (n,): 0 = 'real' spread rows, 1 = clustered rows)."""
    g = torch.Generator().manual_seed(int(seed))
    n_real = int(round(n * real_share))
    real = torch.randn(n_real, d, generator=g, dtype=torch.float64)
    centres = torch.randn(clusters, d, generator=g, dtype=torch.float64)
    which = torch.randint(clusters, (n - n_real,), generator=g)
    gen = centres[which] + spread * torch.randn(n - n_real, d, generator=g, dtype=torch.float64)
    x = torch.cat([real, gen])
    src = torch.cat([torch.zeros(n_real, dtype=torch.int8), torch.ones(n - n_real, dtype=torch.int8)])
    perm = torch.randperm(n, generator=g)
    return x[perm].to(torch.float32).numpy(), src[perm].numpy()
