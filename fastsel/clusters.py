"""Cluster-based selectors: SemDeDup and k-means balanced sampling, on fastsel's own exact k-means.

- :func:`kmeans`: Lloyd's algorithm in float64, k-means++ seeding from a seeded CPU generator,
  ties to the lowest centre index, an empty cluster keeps its centre; stops when no assignment
  changes (or after ``iters`` rounds). Deterministic for a seed. Time O(iters N k d), memory
  O(N + block k) for the distances.
- :func:`semdedup` (Abbas et al. 2023, "SemDeDup"): k-means on L2-normalised rows; within each
  cluster the rows are ordered by cosine distance to their centre, farthest first (SemDeDup's
  "keep hard" order, ties by index), and row j is dropped when its cosine similarity to any row
  before it in that order exceeds 1 - eps -- the published rule, which compares with every earlier
  row whether or not that row was itself dropped. Each row's largest similarity to the rows
  before it (``m``) does not depend on eps, so it is computed once, in blocks (no cluster's full
  similarity matrix), and the kept set for any eps is {j : m_j <= 1 - eps}. An exact duplicate's m
  is 1 (values within DUP_TOL of 1, float64 rounding of a normalised row's dot with itself, are set
  to 1), so eps = 0 keeps every row and any eps > DUP_TOL drops exact duplicates. Given n, the kept set
  is the largest one of at most n rows, reported as eps = 1 - (the largest m kept); when a
  tie in m makes it smaller than n, rows of the next m value join in cluster order until there
  are n (reported as ``n_tie_fill``). eps lies in [0, 2]; above 1 (negative thresholds) the
  published code, whose triangle is filled with zeros, would drop every non-first row instead. The
  registered selector uses k = min(ceil(sqrt(N)), n) so that n is always reachable. Above 256 rows
  per centre the k-means is trained on a seeded sample of 256 k rows (as faiss does) and then
  assigns every row (1,000,000 rows: 256,000 training rows, k = 1,000). Time O(N k d + sum_c m_c^2 d), memory O(block^2).
- :func:`kmeans_balanced` (the one-level recipe of Vo et al. 2024, ssl-data-curation): k-means,
  then n / k rows drawn uniformly (seeded) from each cluster; a cluster smaller than its quota
  gives all its rows and the rest is shared among the others. It over-samples rare regions by
  design; with identically distributed sources it still keeps them in proportion (every cluster
  holds the sources in proportion).
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .errors import FastselError
from .ops._inputs import DEFAULT_SEED, _check_n, as_tensor, check_seed
from .selectors import register_selector

BLOCK = 1024
TRAIN_PER_CENTRE = 256  # semdedup trains its k-means on at most this many rows per centre (faiss's default)


def _rows(x) -> torch.Tensor:
    x = as_tensor(x)
    if x.dim() != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise FastselError(f"expected a non-empty (N, d) pool, got shape {tuple(x.shape)}")
    return x.detach().cpu().double()


def _check_k(k, N: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise FastselError(f"k (the number of clusters) must be a positive integer, got {k!r}")
    return min(k, N)


def _sq_to(x: torch.Tensor, row: torch.Tensor, xsq: Optional[torch.Tensor] = None) -> torch.Tensor:
    """(N,) squared distances of every row to one row (float64 GEMM form; ``xsq`` the rows' squared
    norms when the caller has them)."""
    xsq = (x * x).sum(1) if xsq is None else xsq
    return (xsq + float(row @ row) - 2.0 * (x @ row)).clamp_min_(0.0)


class _Nearest:
    """Each row's nearest centre -- the argmin of the explicit float64 differences (``_nearest``; first
    on ties), found by a float32 screen: the rows and centres are centred on the pool's mean and
    rounded to float32, the two nearest centres found with a float32 GEMM, and a row is recomputed
    from explicit float64 differences when its gap between them is within twice the screen's error
    bound 4 (d + 10) u (|x| + max|c|)^2 (centred norms; rounding to float32 plus the GEMM's
    accumulation, u = 2^-24). Otherwise the screen's argmin is the true one."""
    BLOCK = 8192

    def __init__(self, x: torch.Tensor):
        self.x = x  # the rows as given: the close calls are re-checked on them
        self.mu = x.mean(0)
        xc = x - self.mu  # the screen works on centred rows (small norms: a tight bound)
        self.x32 = xc.float()
        self.qn = xc.norm(dim=1)
        self.rechecked = 0

    def __call__(self, c: torch.Tensor) -> torch.Tensor:
        N, k = self.x.shape[0], c.shape[0]
        if k == 1:
            return torch.zeros(N, dtype=torch.int64)
        cc = c - self.mu
        c32 = cc.float()
        cs32 = (c32 * c32).sum(1)
        rmax = float(cc.norm(dim=1).max())
        u = 2.0 ** -24
        out = torch.empty(N, dtype=torch.int64)
        for a in range(0, N, self.BLOCK):
            xb = self.x32[a:a + self.BLOCK]
            d2 = (xb * xb).sum(1)[:, None] + cs32[None, :] - 2.0 * (xb @ c32.T)
            v, i = torch.topk(d2, 2, dim=1, largest=False, sorted=True)
            out[a:a + len(xb)] = i[:, 0]
            bound = 4.0 * (self.x.shape[1] + 10) * u * (self.qn[a:a + len(xb)] + rmax) ** 2
            amb = torch.nonzero((v[:, 1] - v[:, 0]).double() <= 2.0 * bound)[:, 0]
            if len(amb):
                r = amb + a
                self.rechecked += len(r)
                out[r] = _nearest(self.x[r], c)
        return out


def _nearest(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(N,) index of each row's nearest centre (the first on ties) from explicit float64 differences
    sum_k (x_k - c_k)^2 (as fastsel.reference.lloyd_step): the close calls of _Nearest's screen, and
    what the tests compare it with. O(rows k d) time without BLAS: only for few rows."""
    out = torch.empty(x.shape[0], dtype=torch.int64)
    step = max(1, 2 ** 23 // max(1, c.shape[0] * c.shape[1]))  # (step, k, d) differences: <= 64 MiB
    for a in range(0, x.shape[0], step):
        diff = x[a:a + step, None, :] - c[None, :, :]
        out[a:a + step] = torch.argmin((diff * diff).sum(-1), dim=1)
    return out


def kmeans(x, k: int, *, seed: int = DEFAULT_SEED, iters: int = 100, sample: Optional[int] = None):
    """Returns (assignment (N,) int64, centres (k', d) float64, rounds run); k' < k only when the
    pool has fewer than k distinct rows. ``sample=s`` with N > s: the centres are trained (seeding
    and Lloyd) on s rows drawn without replacement from ``seed`` -- faiss's rule of at most 256
    training rows per centre -- and then every row goes to its nearest trained centre (one more
    pass over the pool, ties to the lowest centre).

    Args:
        x: (N, d) rows (computed in float64).
        k: clusters, 1 <= k <= N.
        seed: the seed of the k-means++ seeding (and of the training sample).
        iters: the most Lloyd rounds.
        sample: train on at most this many rows (None: all).

    Returns:
        tuple: (assignment (N,) int64, centres (k', d) float64, rounds run).
    """
    x = _rows(x)
    N = x.shape[0]
    k = _check_k(k, N)
    if sample is not None and N > sample:
        g = torch.Generator().manual_seed(check_seed(seed) + 2)
        rows = torch.sort(torch.randperm(N, generator=g)[:max(sample, k)]).values
        _, c, rounds = kmeans(x[rows], k, seed=seed, iters=iters)
        return _Nearest(x)(c), c, rounds
    g = torch.Generator().manual_seed(check_seed(seed))
    first = int(torch.randint(N, (1,), generator=g))
    centres = [x[first]]
    xsq = (x * x).sum(1)
    d2 = _sq_to(x, x[first], xsq)
    while len(centres) < k:
        tot = float(d2.sum())
        if tot <= 0.0:  # every row sits on a centre: fewer distinct rows than k
            break
        # a draw proportional to d2 (inverse CDF in float64: no 2**24-row limit)
        cdf = torch.cumsum(d2, 0)
        j = min(int(torch.searchsorted(cdf, torch.rand(1, dtype=torch.float64, generator=g) * cdf[-1])), N - 1)
        while float(d2[j]) == 0.0:  # a zero-weight row can only be hit on a float64 boundary: step on
            j = (j + 1) % N
        centres.append(x[j])
        d2 = torch.minimum(d2, _sq_to(x, x[j], xsq))
    c = torch.stack(centres)
    assign = None
    rounds = 0
    nearest = _Nearest(x)
    for rounds in range(1, iters + 1):
        new = nearest(c)  # the first minimum: ties to the lowest centre
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        counts = torch.bincount(assign, minlength=c.shape[0]).double()
        sums = torch.zeros_like(c).index_add_(0, assign, x)
        filled = counts > 0
        c[filled] = sums[filled] / counts[filled, None]
    return assign, c, rounds


def _default_k(N: int) -> int:
    return max(1, int(math.ceil(math.sqrt(N))))


def _normalise(x: torch.Tensor) -> torch.Tensor:
    norms = x.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise FastselError("semdedup uses cosine similarity: the pool holds all-zero rows (no direction)")
    return x / norms


DUP_TOL = 1e-10  # cosine similarities within this of 1 count as 1 (exact duplicates, float64 rounding)


def semdedup_scores(x, k: Optional[int] = None, *, seed: int = DEFAULT_SEED):
    """For every row: its cluster, its position in the cluster's farthest-first order and m, its
    largest cosine similarity to the rows before it in that order (-inf for the first row of each
    cluster). Returns (m, cluster, order) with ``order`` the rows cluster by cluster."""
    xn = _normalise(_rows(x))
    N = xn.shape[0]
    k = _default_k(N) if k is None else _check_k(k, N)
    assign, c, _ = kmeans(xn, k, seed=seed, sample=TRAIN_PER_CENTRE * k)
    cn = c / c.norm(dim=1, keepdim=True).clamp_min(1e-300)
    m = torch.full((N,), -math.inf, dtype=torch.float64)
    order = []
    for ci in range(c.shape[0]):
        rows = torch.nonzero(assign == ci)[:, 0]
        if len(rows) == 0:
            continue
        dist_c = 1.0 - xn[rows] @ cn[ci]
        # farthest first, ties by index: a stable sort of the rows (ascending index) by -distance
        rows = rows[torch.sort(-dist_c, stable=True).indices]
        order.append(rows)
        xr = xn[rows]
        mc = torch.full((len(rows),), -math.inf, dtype=torch.float64)
        for a in range(0, len(rows), BLOCK):  # columns a..a+B against every earlier row, in blocks
            for b in range(0, a + BLOCK, BLOCK):
                s = xr[b:b + BLOCK] @ xr[a:a + BLOCK].T  # (rows b.., columns a..)
                i = torch.arange(b, b + s.shape[0])[:, None]
                j = torch.arange(a, a + s.shape[1])[None, :]
                s = s.masked_fill(i >= j, -math.inf)  # only rows before the column
                mc[a:a + s.shape[1]] = torch.maximum(mc[a:a + s.shape[1]], s.max(0).values)
        m[rows] = mc
    # exact duplicates give 1 +- a few ulps (the rounding of a normalised row's dot with itself), which
    # would put some on each side of an eps of 0: they are 1 exactly
    m[torch.isfinite(m) & (m > 1.0 - DUP_TOL)] = 1.0
    return m, assign, torch.cat(order)


def semdedup(x, n: Optional[int] = None, *, eps: Optional[float] = None, k: Optional[int] = None,
             seed: int = DEFAULT_SEED):
    """SemDeDup (see the module). Give ``eps`` (keep every row whose m <= 1 - eps) or ``n`` (the
    largest kept set of at most n rows, filled to n at a tie). Returns (kept rows in cluster order,
    info: eps, k, n_tie_fill).

    Args:
        x: (N, d) embeddings (L2-normalised here).
        n: keep the largest set of at most n rows (exclusive with ``eps``).
        eps: keep every row whose largest cosine similarity to an earlier row of its cluster is
            <= 1 - eps (exclusive with ``n``).
        k: clusters (None: ceil(sqrt(N))).
        seed: the k-means seed.

    Returns:
        tuple: (kept row indices (int64, cluster order), info dict with eps, k, n_tie_fill).

    Raises:
        FastselError: both or neither of eps and n; n smaller than the cluster count.
    """
    m, assign, order = semdedup_scores(x, k, seed=seed)
    N = len(m)
    kk = int(assign.max()) + 1
    if (eps is None) == (n is None):
        raise FastselError("semdedup: give exactly one of eps and n")
    mo = m[order]
    if eps is not None:
        if not (isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0.0 <= float(eps) <= 2.0):
            raise FastselError(f"eps must be a number in [0, 2], got {eps!r}")
        keep = order[mo <= 1.0 - float(eps)]
        return keep, {"eps": float(eps), "k": kk, "n_tie_fill": 0}
    n = _check_n(n, N)
    firsts = int(torch.isinf(mo).sum())
    if n < firsts:
        raise FastselError(f"semdedup keeps the first row of every cluster ({firsts} clusters): n = {n} is too "
                           "small; use fewer clusters (k) or a larger n")
    vals = torch.sort(mo).values  # ascending: the n-th smallest m is the largest threshold that fits
    t = float(vals[n - 1])
    within = mo < t if (n < N and float(vals[n]) == t) else mo <= t
    keep = order[within]
    fill = n - len(keep)
    if fill:  # a tie at the threshold: rows with m == t join in cluster order
        keep = torch.cat([keep, order[(mo == t)][:fill]])
        keep = order[torch.isin(order, keep)]  # back to cluster order
    eps_ = 1.0 - t if math.isfinite(t) else 2.0
    return keep, {"eps": eps_, "k": kk, "n_tie_fill": int(fill)}


def kmeans_balanced(x, n: int, *, k: Optional[int] = None, seed: int = DEFAULT_SEED):
    """k-means balanced sampling (see the module). Returns (rows, info: k, quota per cluster).

    Args:
        x: (N, d) rows.
        n: rows to draw, 1 <= n <= N.
        k: clusters (None: ceil(sqrt(N))).
        seed: the seed of the k-means and of the draws.

    Returns:
        tuple: (row indices (n,) int64, info dict with k and the quota per cluster).
    """
    xr = _rows(x)
    N = xr.shape[0]
    n = _check_n(n, N)
    k = _default_k(N) if k is None else _check_k(k, N)
    assign, _, _ = kmeans(xr, k, seed=seed)
    g = torch.Generator().manual_seed(check_seed(seed) + 1)
    members = [torch.nonzero(assign == c)[:, 0] for c in range(int(assign.max()) + 1)]
    members = [r[torch.randperm(len(r), generator=g)] for r in members if len(r)]
    take = [0] * len(members)
    left = n
    open_ = [i for i in range(len(members))]
    while left > 0 and open_:  # equal shares; a cluster that runs out passes its share on
        share, extra = divmod(left, len(open_))
        nxt = []
        for pos, i in enumerate(open_):
            want = share + (1 if pos < extra else 0)
            got = min(want, len(members[i]) - take[i])
            take[i] += got
            left -= got
            if take[i] < len(members[i]):
                nxt.append(i)
        if len(nxt) == len(open_) and left > 0 and share == 0 and extra == 0:
            break
        open_ = nxt
    rows = torch.cat([members[i][:take[i]] for i in range(len(members))])
    return rows, {"k": len(members), "per_cluster_max": max(take), "per_cluster_min": min(take)}


def _semdedup_sel(x, n, *, seed=DEFAULT_SEED, **_):
    # every cluster keeps its first row: at most n clusters, so that any n can be reached
    return semdedup(x, n, k=min(_default_k(len(x)), int(n)), seed=seed)


def _kmeans_balanced_sel(x, n, *, seed=DEFAULT_SEED, **_):
    return kmeans_balanced(x, n, seed=seed)


register_selector("semdedup", _semdedup_sel, help="SemDeDup: k-means, drop within-cluster near-duplicates (cosine)",
                  takes_start=False)
register_selector("kmeans-balanced", _kmeans_balanced_sel, help="k-means, equal draws per cluster",
                  takes_start=False)
