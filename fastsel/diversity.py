"""Diversity selectors beside max-min (greedy) and the threshold filter -- the criteria a reviewer
compares against: facility location, greedy MAP of a determinantal point process (log-det) and
kernel herding. Registered as ``facility``, ``dpp`` and ``herding`` (``fastsel.select``,
``fastsel select --method``, ``fastsel loop --selector``).

All three use one kernel, the Gaussian (RBF) kernel of Euclidean distance

    k(a, b) = exp(-||a - b||^2 / h),   h = 2 tr(Cov(X))  (the mean squared distance over all pairs)

unless ``bandwidth`` gives h. The bandwidth comes from the pool, so scaling the features does not
change the picks. Everything is computed in float64. The N x N kernel is kept in memory only when
it fits in ``FASTSEL_KERNEL_BYTES`` (default a quarter of the memory, at most 4 GiB: N <= 23,170),
computed once in row blocks; above
that it is never formed: a kernel column is recomputed from the features when it is needed
(O(N d)), and the one pass over all pairs the criteria need (facility location's first gains,
herding's mean embedding) runs in row blocks (O(N * block) memory). Ties go to the lowest index, a tie being a value within ``tie_tol`` of the
best (equal gains are common -- two mutually nearest rows far from the rest have the same facility
gain -- and two float64 evaluation orders differ in the last bits). Literal float64 definitions of
each criterion (``fastsel.reference.facility`` / ``dpp`` / ``herding``) are what the tests compare
against.
"""
from __future__ import annotations

import heapq
import math
from typing import Callable, Optional

import numpy as np
import torch

from . import ops
from .errors import FastselError
from .selectors import register_selector

BLOCK = 2048
BATCH_BYTES = 2 ** 28
CACHE_BYTES = 2 ** 23
PANEL = 64  # dpp: rows per panel (see dpp)


def kernel_bytes() -> int:
    """The most memory the N x N kernel may take: ``FASTSEL_KERNEL_BYTES``, by default a quarter of
    the machine's memory, at most 4 GiB (N <= 23,170)."""
    import os
    v = os.environ.get("FASTSEL_KERNEL_BYTES", "")
    try:
        if v.strip():
            return int(v)
    except ValueError:
        raise FastselError(f"FASTSEL_KERNEL_BYTES must be a whole number of bytes, got {v!r}") from None
    try:
        phys = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: the small default
        phys = 4 * 2 ** 30
    return min(4 * 2 ** 30, phys // 4)
DPP_EPS = 1e-10  # a log-det gain factor d^2 <= this is "nothing left": the kernel's rank is spent
DPP_NOISE = 1e-13  # gains under this are rounding (a duplicate's): after the rank is spent, ties in index order


def tie_tol(best: float, N: int) -> float:
    """Values >= best - tie_tol(best, N) tie with the best: 1e-10 relative, plus 1e-13 per summed term
    (the rounding of N kernel values in [0, 1])."""
    return 1e-10 * abs(best) + 1e-13 * N


def _first_tied(values: torch.Tensor, N: int) -> int:
    best = float(values.max())
    return int(torch.nonzero(values >= best - tie_tol(best, N))[0])


def _prepare(x, n, bandwidth):
    x = ops.as_tensor(x).to(torch.float64)
    N = x.shape[0]
    n = ops._check_n(n, N)
    if not torch.isfinite(x).all():
        raise FastselError("x holds NaN or infinite values")
    if bandwidth is None:
        h = 2.0 * float(x.var(dim=0, unbiased=False).sum())
        if not h > 0:  # every row identical: any bandwidth gives the same (constant) kernel
            h = 1.0
    else:
        h = float(bandwidth)
        if not (math.isfinite(h) and h > 0):
            raise FastselError(f"bandwidth must be a positive finite number, got {bandwidth!r}")
    # the kernel depends on differences only: centring keeps ||a||^2 + ||b||^2 - 2 a.b from losing the
    # digits of an offset (features around 1e7 would otherwise cancel catastrophically)
    return x - x.mean(0), n, h


class _Kernel:
    """Rows and block sums of k(a, b) = exp(-||a - b||^2 / h) from the features. Every block is built
    in place in one buffer: (||a||^2 + ||b||^2) - 2 a.b by one GEMM accumulating into it (addmm), then
    clamp, scale and exp where it lies -- the large temporaries of the out-of-place form each cost a
    page-faulting allocation (a 20,000-row kernel took 18 s that way, 3 s in place). The kernel is
    symmetric: the dense build runs the GEMM for the blocks on and above the diagonal only and mirrors
    them (half the flops; k(i, j) and k(j, i) are then equal to the bit)."""

    def __init__(self, x: torch.Tensor, h: float, dense: bool = True):
        self.x, self.h = x, h
        self.sq = (x * x).sum(1)
        N = x.shape[0]
        self.dense = None
        if N * N * 8 <= kernel_bytes() and dense:  # small pools: the whole kernel once, in row blocks
            self.dense = torch.empty((N, N), dtype=torch.float64, device=x.device)
            for a in range(0, N, BLOCK):
                b = min(a + BLOCK, N)
                upper = self._fill(self.dense[a:b, a:], self.x[a:b], self.sq[a:b], self.x[a:], self.sq[a:])
                self.dense[b:, a:b] = upper[:, b - a:].T

    def _fill(self, out, xa, sqa, xb, sqb):
        """out = exp(-((||a||^2 + ||b||^2) - 2 a.b)_+ / h) for the rows a of xa and b of xb, in place."""
        torch.add(sqa[:, None], sqb[None, :], out=out)
        out.addmm_(xa, xb.T, alpha=-2.0)
        return out.clamp_min_(0.0).div_(-self.h).exp_()

    def rows(self, js: list, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """k(j, .) for each j in js, (len(js), N), written into ``out[:len(js)]`` when given (reusing one
        buffer spares a page-faulting allocation per batch) else a fresh tensor; the caller may work in
        it in place. A gather from the dense kernel, else one matrix product (BLAS 3) from the features."""
        N = self.x.shape[0]
        out = (torch.empty((len(js), N), dtype=torch.float64, device=self.x.device) if out is None
               else out[:len(js)])
        if self.dense is not None:
            return torch.index_select(self.dense, 0, torch.tensor(js, device=self.x.device), out=out)
        return self._fill(out, self.x[js], self.sq[js], self.x, self.sq)

    def column(self, j: int) -> torch.Tensor:
        """k(., j) = k(j, .) (the kernel is symmetric), a fresh tensor."""
        return self.rows([j])[0]

    def column_sums(self) -> torch.Tensor:
        """sum_i k(i, j) for every j, in row blocks."""
        if self.dense is not None:
            return self.dense.sum(0)
        N = self.x.shape[0]
        out = torch.zeros(N, dtype=torch.float64, device=self.x.device)
        buf = torch.empty((min(BLOCK, N), N), dtype=torch.float64, device=self.x.device)
        for a in range(0, N, BLOCK):
            b = min(a + BLOCK, N)
            out += self._fill(buf[:b - a], self.x[a:b], self.sq[a:b], self.x, self.sq).sum(0)
        return out


def _unpicked(picks: list, N: int, n: int) -> list:
    """The first n - len(picks) rows not yet picked, in index order (plain greedy's order once every
    remaining gain is 0)."""
    chosen = set(picks)
    return [i for i in range(N) if i not in chosen][: n - len(picks)]


def _take_lowest_tied(seen: list, best: float, N: int, heap: list) -> int:
    """Lazy greedy's pick: the lowest index among the evaluated (gain, j) that tie with the best; the
    other evaluated gains go back on the heap as fresh bounds."""
    j = min((t for t in seen if t[0] >= best - tie_tol(best, N)), key=lambda t: t[1])[1]
    for g2, j2 in seen:
        if j2 != j:
            heapq.heappush(heap, (-g2, j2))
    return j


def facility(x, n: int, *, bandwidth: Optional[float] = None, knn: Optional[int] = None,
             progress: Optional[Callable] = None):
    """Facility location: the n rows S that maximise F(S) = sum_i max_{j in S} k(i, j) (how well S
    covers every row of the pool), by lazy greedy (Minoux) -- the same picks as plain greedy, ties
    to the lowest index. Time O(N^2 d) for the first gains plus O(N d) per re-evaluated gain (lazy:
    a few per pick, evaluated in batches of columns); memory: the kernel if it fits (see the module),
    else O(N * block) plus one batch of columns (<= 256 MiB). Returns (indices, info) with F(S).

    ``knn=k``: the similarity is kept on the exact k-nearest-neighbour graph only (k(i, j) when j is
    one of row i's k nearest rows, itself included, ties to the lower index; 0 otherwise) -- the
    sparse facility location of apricot and submodlib for pools whose kernel does not fit. The graph
    comes from ``fastsel.ops.nn`` (exact, O(N^2 d) time in blocks, O(N k) memory); the greedy then
    takes O(N k) memory and O(in-degree) per re-evaluated gain. A different objective from the dense
    one (rows farther than the k-th neighbour do not cover each other).

    Args:
        x: (N, d) pool, tensor or array (computed in float64).
        n: rows to pick, 1 <= n <= N.
        bandwidth: the kernel's h (None: 2 tr Cov of the pool).
        knn: keep the kernel on the exact k-NN graph with this k (None: dense).
        progress: called with the number of picks made.

    Returns:
        tuple: (indices (n,) int64 in pick order, info dict with objective, bandwidth,
        gain_evaluations and, with knn, knn).
    """
    if knn is not None:
        return _facility_knn(x, n, ops.check_int(knn, "knn", 1), bandwidth, progress)
    x, n, h = _prepare(x, n, bandwidth)
    K = _Kernel(x, h)
    gains = K.column_sums()
    heap = [(-float(g), j) for j, g in enumerate(gains.tolist())]
    heapq.heapify(heap)
    cover = torch.zeros(x.shape[0], dtype=torch.float64, device=x.device)
    picks, evals = [], 0
    N = x.shape[0]
    # a batch of rows takes <= BATCH_BYTES when computed from the features (a GEMM: the larger the
    # better), <= CACHE_BYTES when gathered from the dense kernel (evaluated while still in cache)
    batch, cap = 1, max(1, min(512, (CACHE_BYTES if K.dense is not None else BATCH_BYTES) // (8 * N)))
    buf = torch.empty((cap, N), dtype=torch.float64, device=x.device)
    while len(picks) < n:
        # evaluate stale bounds in heap order until no unevaluated bound can reach the best gain's ties;
        # in batches (one matrix product each) sized by the last pick's count: evaluating a bound that
        # the rule would have skipped only refreshes it, so the picks are those of one-at-a-time
        seen, bounds, best, size = [], [], -math.inf, batch
        while heap and not (seen and -heap[0][0] < best - tie_tol(best, N)):
            popped = [heapq.heappop(heap) for _ in range(min(size, cap, len(heap)))]
            js = [j for _, j in popped]
            gains = K.rows(js, buf).sub_(cover).clamp_min_(0.0).sum(1).tolist()
            seen += list(zip(gains, js))
            bounds += [-b for b, _ in popped]
            best = max(best, max(gains))
            evals += len(js)
            size = min(2 * size, cap)
        # next batch: how many bounds the one-at-a-time rule had to evaluate for this pick
        batch = max(1, min(cap, sum(b >= best - tie_tol(best, N) for b in bounds)))
        if best - tie_tol(best, N) <= 0.0:
            # every remaining gain is 0 within the tolerance (the pool's distinct rows are covered:
            # duplicates) and gains only fall: plain greedy takes the rest in index order
            rest = _unpicked(picks, N, n)
            for a in range(0, len(rest), cap):
                torch.maximum(cover, K.rows(rest[a:a + cap], buf).max(0).values, out=cover)
            picks += rest
            if progress is not None:
                progress(len(picks))
            break
        j = _take_lowest_tied(seen, best, N, heap)
        picks.append(j)
        torch.maximum(cover, K.column(j), out=cover)
        if progress is not None:
            progress(len(picks))
    return torch.tensor(picks, dtype=torch.int64), {"objective": float(cover.sum()), "bandwidth": h,
                                                     "gain_evaluations": evals}


def knn_graph(x: torch.Tensor, k: int, h: float, raw: Optional[torch.Tensor] = None, chunk: int = 2048):
    """The k-NN similarity graph by column: (ptr, rows, vals) with rows[ptr[j]:ptr[j+1]] the rows i
    that have j among their k nearest (self included) and vals their k(i, j) in float64. Neighbours
    from ``ops.nn`` on ``raw`` (the rows as given, in their own dtype; default ``x``) -- exact, ties
    to the lower index; each pair's squared distance recomputed in float64 from the coordinate
    differences of ``x``."""
    N = x.shape[0]
    k = min(k, N)
    nbr = ops.nn(x if raw is None else raw, k=k).indices
    vals = torch.empty((N, k), dtype=torch.float64)
    chunk = max(1, min(chunk, 2 ** 28 // (8 * k * max(1, x.shape[1]))))  # the differences take <= 256 MiB
    for a in range(0, N, chunk):
        diff = x[a:a + chunk, None, :] - x[nbr[a:a + chunk]]
        vals[a:a + chunk] = torch.exp(-(diff * diff).sum(-1) / h)
    cols = nbr.reshape(-1)
    order = torch.argsort(cols, stable=True)  # by column, rows ascending within a column
    rows = torch.arange(N).repeat_interleave(k)[order]
    ptr = torch.zeros(N + 1, dtype=torch.int64)
    ptr[1:] = torch.cumsum(torch.bincount(cols, minlength=N), 0)
    return ptr, rows, vals.reshape(-1)[order]


def _facility_knn(x, n: int, k: int, bandwidth, progress):
    raw = ops.as_tensor(x)
    x, n, h = _prepare(raw, n, bandwidth)
    N = x.shape[0]
    ptr, rows, vals = knn_graph(x, k, h, raw=raw if raw.is_floating_point() else None)
    ptr_l = ptr.tolist()
    rows_n, vals_n = rows.numpy(), vals.numpy()
    cover = np.zeros(N)
    gains = np.zeros(N)
    np.add.at(gains, np.repeat(np.arange(N), np.diff(np.asarray(ptr_l))), vals_n)
    heap = [(-float(g), j) for j, g in enumerate(gains.tolist())]
    heapq.heapify(heap)
    picks, evals, tol = [], 0, lambda b: b - tie_tol(b, N)

    def gain(j):
        a, b = ptr_l[j], ptr_l[j + 1]
        return float(np.maximum(vals_n[a:b] - cover[rows_n[a:b]], 0.0).sum())
    while len(picks) < n:
        seen, best = [], -math.inf
        while heap and not (seen and -heap[0][0] < tol(best)):
            _, j = heapq.heappop(heap)
            g = gain(j)
            evals += 1
            seen.append((g, j))
            best = max(best, g)
        if tol(best) <= 0.0:  # nothing left to cover: plain greedy takes the rest in index order
            rest = _unpicked(picks, N, n)
            for j in rest:  # their (tiny) gains still count in the objective, as in the dense version
                a, b = ptr_l[j], ptr_l[j + 1]
                cover[rows_n[a:b]] = np.maximum(cover[rows_n[a:b]], vals_n[a:b])
            picks += rest
            if progress is not None:
                progress(len(picks))
            break
        j = _take_lowest_tied(seen, best, N, heap)
        picks.append(j)
        a, b = ptr_l[j], ptr_l[j + 1]
        r = rows_n[a:b]
        cover[r] = np.maximum(cover[r], vals_n[a:b])
        if progress is not None:
            progress(len(picks))
    return torch.tensor(picks, dtype=torch.int64), {"objective": float(cover.sum()), "bandwidth": h,
                                                     "gain_evaluations": evals, "knn": min(k, N)}


def dpp(x, n: int, *, start: Optional[int] = None, seed: int = ops.DEFAULT_SEED, bandwidth: Optional[float] = None,
        progress: Optional[Callable] = None, panel: Optional[int] = None):
    """Greedy MAP of a DPP with the kernel L = k (quality 1): each pick maximises log det L_S, by the
    incremental Cholesky update of Chen, Zhang & Zhou (NeurIPS 2018). Every diagonal is 1, so the
    first pick is ``start`` (drawn from ``seed`` when None, as greedy's). Once no row adds
    anything (gain factor d^2 <= 1e-10: duplicates, or the kernel's numerical rank spent) the rest
    are taken by the gain they had left, largest first (a distinct row before a duplicate), ties in
    index order; ``info["rank_spent_at"]`` says after how many picks, and the CLI says it too. Time O(n N (d + n)); memory O(r N) for the r Cholesky rows made before
    the rank is spent (r < n; reserved, taken as written) plus two N x ``panel`` blocks; the kernel is
    kept as facility's only when n >= N / 2.

    Blocked ("panels", as a blocked pivoted Cholesky): pick t needs e_t = (k(j, .) - C_t^T C_t[:, j]) /
    d_j over every row, one pass over the t Cholesky rows C_t if done pick by pick (the memory traffic
    that bounds the plain algorithm). Here a panel opened at step t0 takes the ``panel`` rows most
    likely to be picked next -- the current pick and the largest remaining gains -- and computes
    their kernel rows and C_t0^T C_t0[:, J] in two matrix products (one pass over C_t0 for all of
    them); while the picks stay in J, e_t needs only the rows made since t0. A pick outside J opens
    a new panel. The gains d^2 are still updated over all rows at every pick, so the picks are
    those of the one-at-a-time algorithm (up to rounding in the last bits).

    Args:
        x: (N, d) pool, tensor or array (computed in float64).
        n: rows to pick, 1 <= n <= N.
        start: the first pick (None: drawn from ``seed``).
        seed: the seed of that draw.
        bandwidth: the kernel's h (None: 2 tr Cov of the pool).
        progress: called with the number of picks made.
        panel: rows per panel (default 64; 1 is the plain pick-by-pick update).

    Returns:
        tuple: (indices (n,) int64 in pick order, info dict with log_det, bandwidth and
        rank_spent_at, the pick count at which the kernel's rank was spent, or None).
    """
    x, n, h = _prepare(x, n, bandwidth)
    N = x.shape[0]
    j = ops._check_start(start, N, seed)
    m = min(N, PANEL if panel is None else ops.check_int(panel, "panel", 1))
    # the kernel is kept (when it fits) only if n is a large share of N: building it costs N^2 d, the
    # rows the panels use (a few n, N d each, in matrix products) cost less below n = N / 2 (measured)
    K = _Kernel(x, h, dense=2 * n >= N)
    # the Cholesky rows, reserved whole but never zeroed: pages are only taken as rows are written (a
    # run whose rank is spent early uses no more), and no growing copy ever holds two of them at once
    c = torch.empty((max(n - 1, 1), N), dtype=torch.float64, device=x.device)
    d2 = torch.ones(N, dtype=torch.float64, device=x.device)
    taken = torch.zeros(N, dtype=torch.bool, device=x.device)
    rows = torch.empty((m, N), dtype=torch.float64, device=x.device)  # k(J, .) for the panel's rows J
    old = torch.empty((m, N), dtype=torch.float64, device=x.device)   # (C_t0^T C_t0[:, J])^T
    slot, t0 = {}, 0
    picks, logdet, spent_at = [], 0.0, None
    for t in range(n):
        picks.append(j)
        taken[j] = True
        if progress is not None:
            progress(t + 1)
        if spent_at is None:
            logdet += math.log(float(d2[j]))
        if t == n - 1:
            break
        if spent_at is None:
            if j not in slot:  # open a panel: j and the largest remaining gains
                cand = d2.masked_fill(taken, -math.inf)
                J = [j] + [i for i in torch.topk(cand, min(m, N - t)).indices.tolist() if i != j][: m - 1]
                slot, t0 = {i: s for s, i in enumerate(J)}, t
                K.rows(J, rows)
                if t:
                    torch.mm(c[:t, J].T, c[:t], out=old[:len(J)])
                else:
                    old.zero_()
            s = slot[j]
            e = rows[s] - old[s]
            if t > t0:
                e.addmv_(c[t0:t].T, c[t0:t, j], alpha=-1.0)
            e.div_(math.sqrt(float(d2[j])))
            c[t] = e
            d2.addcmul_(e, e, value=-1.0)
            d2[taken] = -math.inf
            j = _first_tied(d2, 1)
            if float(d2[j]) <= DPP_EPS:
                spent_at = t + 1
                # the rest: the rows with the largest gain left (a distinct row before a duplicate
                # whose gain is 0), ties in index order
                left = d2.masked_fill(d2 <= DPP_NOISE, 0.0)  # rounding-level gains count as none
                order = sorted((~taken).nonzero()[:, 0].tolist(), key=lambda i: (-float(left[i]), i))
                fill = iter(order)
        if spent_at is not None:
            j = next(fill)
    return torch.tensor(picks, dtype=torch.int64), {"log_det": logdet if spent_at is None else -math.inf,
                                                     "bandwidth": h, "rank_spent_at": spent_at}


def herding(x, n: int, *, bandwidth: Optional[float] = None, progress: Optional[Callable] = None):
    """Kernel herding (Chen, Welling & Smola 2010) without replacement: pick t+1 maximises
    mu(j) - (1 / (t + 1)) sum_{s in S} k(j, s), with mu(j) = mean_i k(i, j) the pool's mean
    embedding -- S's kernel mean tracks the pool's (mean matching: dense regions get more rows, in
    proportion). Time O(N^2 d) for mu plus O(N d) per pick; memory O(N * block).

    Args:
        x: (N, d) pool, tensor or array (computed in float64).
        n: rows to pick, 1 <= n <= N.
        bandwidth: the kernel's h (None: 2 tr Cov of the pool).
        progress: called with the number of picks made.

    Returns:
        tuple: (indices (n,) int64 in pick order, info dict with bandwidth).
    """
    x, n, h = _prepare(x, n, bandwidth)
    N = x.shape[0]
    K = _Kernel(x, h)
    mu = K.column_sums() / N
    acc = torch.zeros(N, dtype=torch.float64, device=x.device)
    taken = torch.zeros(N, dtype=torch.bool, device=x.device)
    picks = []
    for t in range(n):
        score = mu - acc / (t + 1)
        score[taken] = -math.inf
        j = _first_tied(score, 1)
        picks.append(j)
        taken[j] = True
        acc += K.column(j)
        if progress is not None:
            progress(t + 1)
    return torch.tensor(picks, dtype=torch.int64), {"bandwidth": h}


def _facility_sel(x, n, *, progress=None, knn=None, **_):
    return facility(x, n, knn=knn, progress=progress)


def _dpp_sel(x, n, *, start=None, seed=ops.DEFAULT_SEED, progress=None, **_):
    return dpp(x, n, start=start, seed=seed, progress=progress)


def _herding_sel(x, n, *, progress=None, **_):
    return herding(x, n, progress=progress)


register_selector("facility", _facility_sel, help="facility location, lazy greedy (RBF kernel)",
                  takes_start=False)
register_selector("dpp", _dpp_sel, help="DPP greedy MAP, max log-det (RBF kernel)")
register_selector("herding", _herding_sel, help="kernel herding: match the pool's kernel mean",
                  takes_start=False)
