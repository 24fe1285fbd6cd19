"""The selectors at the sizes where an N x N kernel cannot exist: one selector per fresh process, so
that each row's peak memory (``ru_maxrss`` of that process, the pool included) is its own.

    python -m fastsel.benchmarks.selectors_scale OP N n d [knn]   # prints one JSON object

OP: ``facility-knn`` (facility location on the exact k-NN graph, k = ``knn``), ``dpp`` (greedy
MAP, incremental Cholesky, no N x N kernel), ``semdedup`` (k = ceil(sqrt N) k-means trained on
256 rows per centre, then the blockwise scores) or ``vendi``. Pools: N(0, 1) rows in float32,
seeded by N. The time covers the selector from the float32 pool to its picks.
"""
from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
import torch

from fastsel import clusters as C
from fastsel import diversity as D
from fastsel import metrics as M

# the scale rows `fastsel bench selectors --scale` runs: (op, N, n, knn)
SCALE_ROWS = (("facility-knn", 200_000, 5_000, 32), ("dpp", 1_000_000, 1_000, None),
              ("semdedup", 1_000_000, 100_000, None), ("vendi", 1_000_000, None, None))


def pool(N: int, d: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(N)
    return torch.randn((N, d), generator=g, dtype=torch.float32)


def one(op: str, N: int, n, d: int, knn=None) -> dict:
    x = pool(N, d)
    t0 = time.perf_counter()
    if op == "facility-knn":
        idx, info = D.facility(x, n, knn=knn)
        info = {"objective": info["objective"], "gain_evaluations": info["gain_evaluations"], "knn": info["knn"]}
    elif op == "dpp":
        idx, info = D.dpp(x, n, start=0)
        info = {"log_det": info["log_det"], "rank_spent_at": info["rank_spent_at"]}
    elif op == "semdedup":
        idx, info = C.semdedup(x, n, k=min(C._default_k(N), n), seed=0)
    elif op == "vendi":
        idx, info = None, {"vendi": M.vendi_score(x)}
    else:
        raise SystemExit(f"unknown op {op!r}")
    seconds = time.perf_counter() - t0
    return {"op": op, "N": N, "n": n, "d": d, "seconds": seconds, "picked": None if idx is None else len(idx),
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20,
            "threads": torch.get_num_threads(), "info": info}


if __name__ == "__main__":
    a = sys.argv[1:]
    print(json.dumps(one(a[0], int(a[1]), None if a[2] == "-" else int(a[2]), int(a[3]),
                         int(a[4]) if len(a) > 4 else None)))
