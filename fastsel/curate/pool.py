"""The pool of features selection ran on, as one process holds it (in memory or memory-mapped): the
rows, their distances to the subset and the picks' distances to the picks before them."""
from __future__ import annotations

import os
import warnings
from typing import Callable, Optional

import numpy as np
import torch
from ..ops._inputs import as_tensor, ldexp, pow2_scale, unscale
from ..ops.nn import nn


def pick_distances(x: torch.Tensor, idx: torch.Tensor) -> np.ndarray:
    """Distance of each pick to the picks before it (inf for the first), float64, O(n^2 d)."""
    return _pick_distances(x[idx])


def _pick_distances(sub: torch.Tensor) -> np.ndarray:
    """Distance of each row of ``sub`` (the picks, in pick order) to the rows before it (inf for the
    first), float64, O(n^2 d). Rows of extreme magnitude (1e300) are scaled by a power of two first,
    exactly, as the selectors do, and centred, so that rows far from the origin (1e8 + 3k) keep their
    distances' digits."""
    s = sub.to(torch.float64)
    e = pow2_scale(s)
    s = ldexp(s, e)
    s = s - s.mean(0)
    n = s.shape[0]
    out = np.full(n, np.inf)
    sq = (s * s).sum(1)
    best = torch.full((n,), float("inf"), dtype=torch.float64)
    B = 1024
    for a in range(0, n, B):
        d2 = (sq[a:a + B, None] + sq[None, :] - 2.0 * (s[a:a + B] @ s.T)).clamp_min_(0.0)
        i = torch.arange(a, min(a + B, n))[:, None]
        d2 = d2.masked_fill(torch.arange(n)[None, :] >= i, float("inf"))
        best[a:a + B] = d2.min(1).values
    out[:] = unscale(best.sqrt(), e).numpy()
    return out


def coverage(x: torch.Tensor, idx: torch.Tensor) -> tuple:
    """Distance from every row to its nearest subset row: ({max, mean}, the distances) (exact k-NN)."""
    return coverage_of(x, x[idx])


def memory_limit() -> int:
    """Bytes of features curate holds in memory: FASTSEL_CURATE_MEMORY (bytes) when set, else half of
    the memory available now (MemAvailable; 8 GiB where /proc/meminfo is missing). A larger pool is
    streamed from a memory-mapped embeddings.npy."""
    env = os.environ.get("FASTSEL_CURATE_MEMORY")
    if env:
        return int(float(env))
    per_node = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))  # ranks sharing this machine's memory
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2 // per_node
    except OSError:
        pass
    return (8 << 30) // per_node


def ops_nn_first(q: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Each query row's nearest reference row (exact k-NN, k = 1)."""
    return nn(q, ref, k=1).indices[:, 0]


class _LocalPool:
    """The whole pool in this process (what the sharded pool's collectives reduce to)."""
    main = True

    def __init__(self, x: torch.Tensor, rows: np.ndarray):
        self.x, self.rows, self.M = x, rows, len(x)

    def take(self, gi) -> torch.Tensor:
        return self.x[torch.as_tensor(gi, dtype=torch.int64)]

    def source_index(self, gi) -> np.ndarray:
        return self.rows[np.asarray(gi, dtype=np.int64)]

    def coverage(self, sub: torch.Tensor) -> tuple:
        return coverage_of(self.x, sub)

    def nearest_rejected(self, idx, d: torch.Tensor, k: int) -> tuple:
        chosen = torch.zeros(self.M, dtype=torch.bool)
        chosen[idx] = True
        rest = torch.nonzero(~chosen)[:, 0]
        order = rest[torch.argsort(d[rest], stable=True)][:k]
        return order, d[order]


class _MappedPool(_LocalPool):
    """The pool as a memory-mapped (M, d) float32 array: rows are read when asked for, distances to
    the subset a chunk at a time."""
    CHUNK = 65536

    def __init__(self, mm: np.ndarray, rows: np.ndarray):
        self.mm, self.rows, self.M = mm, rows, len(mm)

    def take(self, gi) -> torch.Tensor:
        gi = np.asarray(gi, dtype=np.int64).reshape(-1)
        return torch.from_numpy(np.array(self.mm[gi]))

    def coverage(self, sub: torch.Tensor) -> tuple:
        d = torch.cat([nn(torch.from_numpy(np.array(self.mm[a:a + self.CHUNK])), sub, k=1).distances[:, 0]
                       .to(torch.float64) for a in range(0, self.M, self.CHUNK)])
        return {"max": float(d.max()), "mean": float(d.mean())}, d


def _rank_rows(out_dir: str, lo: int, m: int, d: int, log: Callable) -> torch.Tensor:
    """This rank's rows [lo, lo + m) of embeddings.npy: read into memory when they fit the memory share
    (:func:`memory_limit`), else left memory-mapped (the kernels read them through the page cache)."""
    if m == 0:
        return torch.zeros((0, d), dtype=torch.float32)
    mm = np.load(os.path.join(out_dir, "embeddings.npy"), mmap_mode="r")[lo:lo + m]
    if m * d * 4 <= memory_limit():
        return as_tensor(np.array(mm), "features")
    log(f"note: this rank's {_size(m * d * 4)} of features exceed the memory share: read memory-mapped")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a read-only mapping: no op writes to its input
        return as_tensor(torch.from_numpy(mm), "features")


def _size(b: float) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / 2**20:.1f} MiB" if b >= 2**20 else f"{b / 1024:.0f} KiB"


def _start_position(rows: np.ndarray, start: int, lo: int) -> Optional[int]:
    """The readable-row position of source index ``start`` when this rank holds it, else None."""
    e = int(np.searchsorted(rows, start))
    return lo + e if e < len(rows) and int(rows[e]) == start else None


def coverage_of(x: torch.Tensor, sub: torch.Tensor) -> tuple:
    """({max, mean} distance from every row of ``x`` to its nearest row of ``sub``, the distances float64)."""
    d = nn(x, sub, k=1).distances[:, 0].to(torch.float64)
    return {"max": float(d.max()), "mean": float(d.mean())}, d
