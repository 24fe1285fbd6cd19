"""Diversity selectors beside max-min (greedy) and the threshold filter -- the criteria a reviewer
compares against: facility location, greedy MAP of a determinantal point process (log-det) and
kernel herding. Registered as ``facility``, ``dpp`` and ``herding`` (``fastsel.select``,
``fastsel select --method``, ``fastsel loop --selector``).

All three use one kernel, the Gaussian (RBF) kernel of Euclidean distance

    k(a, b) = exp(-||a - b||^2 / h),   h = 2 tr(Cov(X))  (the mean squared distance over all pairs)

unless ``bandwidth`` gives h. The bandwidth comes from the pool, so scaling the features does not
change the picks. Everything is computed in float64 (facility location on pools of >= 16,384 rows
keeps its kernel in float32 with certified picks and float64 rechecks: see ``_facility_f32``; the
same picks). The N x N kernel is kept in memory only when
it fits in ``FASTSEL_KERNEL_BYTES`` (default a quarter of the memory, at most 4 GiB: N <= 23,170 in
float64, 32,768 in float32),
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
import os
from typing import Callable, Optional

import numpy as np
import torch

from . import _backend
from .errors import FastselError
from .ops._inputs import DEFAULT_SEED, _check_n, _check_start, as_tensor, check_int, check_real, check_seed
from .ops.nn import nn
from .selectors import Option, register_selector

BLOCK = 2048
BATCH_BYTES = 2 ** 28
CACHE_BYTES = 2 ** 23
PANEL = 64  # dpp: rows per panel (see dpp)


def kernel_bytes() -> int:
    """The most memory the N x N kernel may take: ``FASTSEL_KERNEL_BYTES``, by default a quarter of
    the machine's memory, at most 4 GiB (N <= 23,170)."""
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


def tie_tol(best: float, N: int, scale: float = 1.0) -> float:
    """Values >= best - tie_tol(best, N) tie with the best: 1e-10 relative, plus 1e-13 per summed term
    (the rounding of N kernel values in [0, scale]; 1 for the RBF kernel)."""
    return 1e-10 * abs(best) + 1e-13 * N * scale


def _first_tied(values: torch.Tensor, N: int) -> int:
    best = float(values.max())
    return int(torch.nonzero(values >= best - tie_tol(best, N))[0])


def _prepare(x, n, bandwidth):
    x = as_tensor(x).to(torch.float64)
    N = x.shape[0]
    n = _check_n(n, N)
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


def _rbf_fill(out, xa, sqa, xb, sqb, h: float) -> torch.Tensor:
    """out = exp(-((||a||^2 + ||b||^2) - 2 a.b)_+ / h) for the rows a of xa and b of xb, in place (any
    floating dtype: the float64 kernel, the float32 one and its float64 rechecks share this arithmetic)."""
    torch.add(sqa[:, None], sqb[None, :], out=out)
    out.addmm_(xa, xb.T, alpha=-2.0)
    return out.clamp_min_(0.0).div_(-h).exp_()


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
                if _fused(self.dense):
                    torch.ops.fastsel._facility_mirror(self.dense, a, b)
                else:
                    self.dense[b:, a:b] = upper[:, b - a:].T

    def _fill(self, out, xa, sqa, xb, sqb):
        return _rbf_fill(out, xa, sqa, xb, sqb, self.h)

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


def _fused(t: torch.Tensor) -> bool:
    """Whether the compiled one-pass gain evaluation (``fastsel::_facility_gains``) takes this dense kernel."""
    return t.device.type == "cpu" and t.dtype in (torch.float32, torch.float64) and _backend.has_kernel(
        "_facility_gains", "cpu")


def _gains(K, js: list, cover: torch.Tensor, buf: torch.Tensor) -> list:
    """sum_i max(0, k(j, i) - cover[i]) for each j in js, as floats: one pass over each dense kernel row
    where the compiled kernel is there, else rows gathered (or computed) into ``buf`` and reduced."""
    if K.dense is not None and _fused(K.dense):
        rows = torch.tensor(js, dtype=torch.int64)
        return torch.ops.fastsel._facility_gains(K.dense, rows, cover)[:, 0].tolist()
    return K.rows(js, buf).sub_(cover).clamp_min_(0.0).sum(1).tolist()


def _unpicked(picks: list, N: int, n: int) -> list:
    """The first n - len(picks) rows not yet picked, in index order (plain greedy's order once every
    remaining gain is 0)."""
    chosen = set(picks)
    return [i for i in range(N) if i not in chosen][: n - len(picks)]


def _take_lowest_tied(seen: list, best: float, N: int, heap: list, scale: float = 1.0) -> tuple:
    """Lazy greedy's pick: the lowest index among the evaluated (gain, j) that tie with the best, as
    (j, its gain); the other evaluated gains go back on the heap as fresh bounds."""
    g, j = min((t for t in seen if t[0] >= best - tie_tol(best, N, scale)), key=lambda t: t[1])
    for g2, j2 in seen:
        if j2 != j:
            heapq.heappush(heap, (-g2, j2))
    return j, g


class _Matrix:
    """The interface of :class:`_Kernel` over a given N x N similarity matrix S, row j holding how
    well row j covers every row (``rows``: S[js, :]; ``column(j)``: S[j, :]; ``column_sums``: the
    row sums, the first facility gains)."""

    def __init__(self, S: torch.Tensor):
        self.dense = self.x = S

    def rows(self, js: list, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        out = (torch.empty((len(js), self.dense.shape[1]), dtype=torch.float64, device=self.dense.device)
               if out is None else out[:len(js)])
        return torch.index_select(self.dense, 0, torch.tensor(js, device=self.dense.device), out=out)

    def column(self, j: int) -> torch.Tensor:
        return self.dense[j].clone()

    def column_sums(self) -> torch.Tensor:
        return self.dense.sum(1)


def _similarity(x, kernel) -> torch.Tensor:
    """The N x N float64 similarity matrix of ``kernel="precomputed"`` (x itself) or of a callable
    kernel (evaluated on row blocks of x against all of x). Nonnegative and finite, or an error."""
    if kernel == "precomputed":
        S = as_tensor(x, "kernel matrix").to(torch.float64)
        if S.shape[0] != S.shape[1]:
            raise FastselError(f"kernel='precomputed' needs a square N x N similarity matrix, got {tuple(S.shape)}")
    elif callable(kernel):
        x = as_tensor(x).to(torch.float64)
        N = x.shape[0]
        if N * N * 8 > kernel_bytes():
            raise FastselError(f"a callable kernel builds the {N} x {N} similarity matrix, which does not fit in "
                               f"FASTSEL_KERNEL_BYTES={kernel_bytes()}")
        S = torch.empty((N, N), dtype=torch.float64, device=x.device)
        for a in range(0, N, BLOCK):
            blk = torch.as_tensor(kernel(x[a:a + BLOCK], x))
            if tuple(blk.shape) != (min(BLOCK, N - a), N):
                raise FastselError(f"the kernel callable returned shape {tuple(blk.shape)} for "
                                   f"{min(BLOCK, N - a)} x {N} rows")
            S[a:a + BLOCK] = blk.to(device=x.device, dtype=torch.float64)
    else:
        raise FastselError(f"kernel must be None / 'rbf', 'precomputed' or a callable, got {kernel!r}")
    if not bool(torch.isfinite(S).all()):
        raise FastselError("the similarity matrix holds NaN or infinite values")
    if bool((S < 0).any()):
        raise FastselError("the similarity matrix holds negative values (facility location needs similarities >= 0)")
    return S.contiguous()


def _initial(initial_subset, N: int, n) -> tuple:
    """(the initial rows as a sorted list, n checked against the rows left)."""
    if initial_subset is None:
        return [], _check_n(n, N)
    a = np.asarray(initial_subset.cpu() if isinstance(initial_subset, torch.Tensor) else initial_subset)
    if a.dtype == bool:
        if a.shape != (N,):
            raise FastselError(f"initial_subset as a mask needs {N} values, got shape {a.shape}")
        a = np.nonzero(a)[0]
    if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
        raise FastselError("initial_subset must be a 1-D sequence of row indices (or a boolean mask)")
    init = sorted(set(int(i) for i in a))
    if init and not (0 <= init[0] and init[-1] < N):
        raise FastselError(f"initial_subset holds an index outside [0, {N})")
    n = check_int(n, "n")
    if not 1 <= n <= N - len(init):
        raise FastselError(f"n must be in [1, {N - len(init)}] (N={N} rows less the {len(init)} of "
                           f"initial_subset), got {n}")
    return init, n


# ---------------------------------------------------------------- the float32 kernel, certified

U32 = 2.0 ** -24  # float32's unit roundoff
# the float32 kernel keeps no value under float32's normal range (< 2^-126: set to 0, as arithmetic on
# subnormal numbers runs at a fraction of the speed: on 50 well-separated clusters the one-pass gain
# kernel ran about 18x slower per value); TINY bounds the error of a value so flushed or underflowed (true value < 2^-123)
TINY = 2.0 ** -123
NORMAL32 = 2.0 ** -126
# smaller pools: the float64 path is faster (its kernel is built in a moment; the certificate's per-pick
# bookkeeping is not free): N(0, 1), d = 384, n = 1,000, 2 threads, two runs each way, 2-core Xeon, commit
# 344b45a (bench/cpu_results/2026-12-07c_facility_parts.txt): 5,000 rows 0.59-0.73 s float32 / 0.33 s
# float64, 10,000 1.20-1.23 / 1.05-1.09, 20,000 3.01-3.06 / 3.69-3.74
F32_MIN_ROWS = 16384
F32_MAX_RHO = 1e-3  # wider relative error bounds (rows far beyond the bandwidth): every gain would need its recheck
F32_MAX_CANDIDATES = 256  # more gains undecided at one pick (near-zero gains: duplicates): the float64 path


def _f32_gemm_is_ieee() -> bool:
    """float32 matrix products computed in float32 on the CPU: no TF32 / bf16 passes, which the error
    bound below does not cover. The settings that can ask for them (torch's precision flags, old and
    new, and oneDNN's FPMATH_MODE environment variables), then a probe: a float32 GEMM of rows of
    1 + 2^-12 (which bf16 and TF32 round to 1) must be within the float32 bound of its exact value."""
    for var in ("ONEDNN_DEFAULT_FPMATH_MODE", "DNNL_DEFAULT_FPMATH_MODE"):
        if os.environ.get(var, "").strip().lower() not in ("", "strict"):
            return False
    try:
        for ns in (torch.backends, getattr(torch.backends, "mkldnn", None),
                   getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)):
            if getattr(ns, "fp32_precision", "none") not in ("none", "ieee"):
                return False
        if not hasattr(torch.backends, "fp32_precision") and torch.get_float32_matmul_precision() != "highest":
            return False
    except (RuntimeError, AttributeError):  # a mix of the old and new precision APIs: do not guess
        return False
    a = torch.full((64, 384), 1.0 + 2.0 ** -12, dtype=torch.float32)
    got = float((a @ a.T)[0, 0])
    exact = 384 * (1.0 + 2.0 ** -12) ** 2
    return abs(got - exact) <= 400 * U32 * exact


class _Kernel32:
    """The RBF kernel in float32 (half the memory of float64, float32 GEMMs), every entry within a
    proven bound of the true value: |K~ - K| <= rho K~ + TINY. The bound, nmax^2 the largest centred
    squared row norm: the GEMM adds the d products -2 a~_k b~_k into ||a||^2 + ||b||^2 (float32) in an
    order the library chooses, possibly with the two norms inside the running sum (k-blocking with
    beta = 1), so it errs by at most gamma_(d+2) times the terms' absolute sum <= 4 nmax^2 (1 + u)^2,
    gamma_m = m u / (1 - m u) (any order, fused multiply-adds or not); rounding the rows and the norms
    to float32 adds (4u + 2u^2) nmax^2 and 2u nmax^2; the scaling by 1/h (2u) and exp (<= 1 ulp; 4u taken)
    follow. So the exponent errs by at most Delta (below), K <= K~ e^Delta / (1 - 4u) and
    |K~ - K| <= K (e^Delta (1 + 4u) - 1). Values under float32's normal range (< 2^-126) are set to 0 and
    err by at most TINY. Symmetric: blocks on and above the diagonal by GEMM, mirrored below."""

    def __init__(self, x: torch.Tensor, h: float):
        self.x, self.h = x, h  # x: float64, centred
        N, d = x.shape
        self.sq = (x * x).sum(1)
        u = U32
        nmax2 = float(self.sq.max())
        m = d + 2
        gamma = m * u / (1.0 - m * u)
        # |D~ - D|: the GEMM's sum (norms inside it), the rows' and the norms' rounding, and 8u of spare
        E = 4.0 * gamma * (1.0 + u) ** 2 * nmax2 + (4.0 * u + 2.0 * u * u) * nmax2 + 2.0 * u * nmax2 + 8.0 * u * nmax2
        E += (4.0 * d * math.sqrt(nmax2) + 2.0 * d + 4.0) * 2.0 ** -149  # subnormal coordinates and products: absolute
        delta = (E + 4.0 * u * (4.0 * nmax2 + E)) / h  # ... and the exponent's scaling by 1/h (2u, taken as 4u)
        ed = math.exp(delta)
        # relative bound, plus 16 u for the rounding of the bound's own arithmetic in the gain evaluation
        self.rho = ed * (ed * (1.0 + 4.0 * u) - 1.0) / (1.0 - 4.0 * u) + 16.0 * u
        self.dense = None
        if self.rho > F32_MAX_RHO:
            return
        x32, sq32 = x.to(torch.float32), self.sq.to(torch.float32)
        self.dense = torch.empty((N, N), dtype=torch.float32)
        for a in range(0, N, BLOCK):
            b = min(a + BLOCK, N)
            up = _rbf_fill(self.dense[a:b, a:], x32[a:b], sq32[a:b], x32[a:], sq32[a:], h)
            torch.threshold_(up, NORMAL32, 0.0)  # no subnormal values
            torch.ops.fastsel._facility_mirror(self.dense, a, b)

    def exact_at(self, js: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        """k(j, i) in float64 for j in js and i in cols, (len(js), len(cols))."""
        out = torch.empty((len(js), len(cols)), dtype=torch.float64)
        return _rbf_fill(out, self.x[js], self.sq[js], self.x[cols], self.sq[cols], self.h)



class _Cover32:
    """The cover of the picks so far: c~[i] = max over picks of K~[p, i] (float32, what the gain intervals
    are evaluated against), the activity threshold thr (a row i with K~[j, i] < thr[i] cannot have
    k(j, i) > cover(i): thr <= (c~ (1 - rho) - 2 TINY) / (1 + rho), rounded down), and the float64 cover
    c64[i] = max over picks of k(p, i), kept exactly: a pick can raise it only on its active rows, where
    its float64 values are computed from the features (and its float64 gain with them)."""

    def __init__(self, K: _Kernel32):
        N = K.x.shape[0]
        self.K = K
        self.c = torch.zeros(N, dtype=torch.float32)
        self.c64 = torch.zeros(N, dtype=torch.float64)
        self.picks: list = []
        self._thr()

    def _thr(self) -> None:
        rho = self.K.rho
        t = (self.c.double() * ((1.0 - rho) / (1.0 + rho)) - 2.0 * TINY / (1.0 + rho)) * (1.0 - 4.0 * U32) - TINY
        self.thr = t.to(torch.float32)
        self.thr -= self.thr.abs() * (2.0 * U32)  # the cast rounds to nearest: step below it

    def add(self, j: int) -> float:
        """Take pick j; returns its float64 gain sum_i max(0, k(j, i) - c64[i]) (before the pick)."""
        r = self.K.dense[j]
        rows = torch.nonzero(r >= self.thr).flatten()
        k = self.K.exact_at(torch.tensor([j]), rows)[0]
        old = self.c64[rows]
        gain = float((k - old).clamp_min_(0.0).sum())
        self.c64[rows] = torch.maximum(old, k)
        torch.maximum(self.c, r, out=self.c)
        self.picks.append(j)
        self._thr()
        return gain


def _exact_gains(K: _Kernel32, cov: _Cover32, js: list) -> list:
    """The float64 gains sum_i max(0, k(j, i) - cover(i)) of js, summed over the rows where the float32
    value reaches the activity threshold (elsewhere the term is 0: proven)."""
    idx = torch.tensor(js, dtype=torch.int64)
    act = K.dense[idx] >= cov.thr
    U = torch.nonzero(act.any(0)).flatten()
    if len(U) == 0:
        return [0.0] * len(js)
    k = K.exact_at(idx, U)
    return ((k - cov.c64[U]).clamp_min_(0.0) * act[:, U]).sum(1).tolist()


def _intervals(K: _Kernel32, cov: _Cover32, js: list) -> list:
    """(lo, hi, j) for each j in js: the float32 gain g and an interval around it that holds the true one.
    On the active rows (K~ >= thr, a superset of the rows whose true term can be positive) each term's
    error is at most rho (K~ + c~) + 2 TINY <= 2 rho / (1 - rho) K~ + 3 TINY (there c~ <= K~ (1 + rho) /
    (1 - rho) + ...), so the kernel's and the cover's errors move g by at most 2 rho / (1 - rho) s + 3 N TINY,
    s the sum of K~ over the active rows; the float32 lanes' and float64 sums' rounding adds 32 u + N 2^-52
    of g + s."""
    N, rho, u = K.x.shape[0], K.rho, U32
    kw = 2.0 * rho / (1.0 - rho) * (1.0 + 64.0 * u) * (1.0 + 1e-6)
    slack = 32.0 * u + (N + 64) * 2.0 ** -52
    r = torch.ops.fastsel._facility_gains(K.dense, torch.tensor(js, dtype=torch.int64), cov.c, cov.thr)
    g, s = r[:, 0], r[:, 1]
    w = kw * s + slack * (g + s) + (3.0 * N * TINY + 1e-300)
    return list(zip((g - w).tolist(), (g + w).tolist(), js))


class _Undecided(Exception):
    """Too many gains within the bound of each other at one pick: the float64 path decides instead."""


def _facility_f32(x, h, init: list, n: int, progress) -> Optional[tuple]:
    """Facility location's lazy greedy on the float32 kernel with certified picks (see facility): the
    same picks as the float64 kernel, or None where this path does not apply (the caller runs that).
    Each evaluated gain is an interval [g - w, g + w] around the float32 one: w bounds what the kernel's
    and the cover's errors (rho K~ + TINY each, on the rows where the term can be positive) and the
    float32 and float64 summations can move it. A pick is certified when one interval lies above every
    other (and every stale bound) by more than the tie tolerance and the float64 rounding of a gain;
    otherwise the gains still in reach are recomputed in float64 (on their active rows) and the float64
    rule picks. The gains and the objective reported are float64, from the features (see _Cover32).
    "The same picks" holds up to float64 rounding at the tie tolerance's edge: a gap within about
    N 2^-52 of it can be decided either way by two float64 evaluation orders (the float64 path's and the
    literal reference's differ the same way)."""
    # an exact power-of-two scale puts h in [1, 4): no float32 overflow or subnormal rows whatever the
    # features' units, and the float64 values (rechecks, cover, gains) are the unscaled ones bit for bit
    e = math.frexp(h)[1]
    sc = 2.0 ** -(e // 2)
    x, h = x * sc, h * sc * sc
    K = _Kernel32(x, h)
    if K.dense is None:
        return None
    N = x.shape[0]
    cov = _Cover32(K)
    for j in init:
        cov.add(j)

    def evaluate(js):
        return _intervals(K, cov, js)

    def margin(hi):
        """The tie tolerance, plus the float64 rounding of a gain (the float64 path's own and the rechecks')."""
        return tie_tol(hi, N) + 2.0 * (N + 64) * 2.0 ** -52 * abs(hi)

    first = []
    for a in range(0, N, 4096):
        first += evaluate(list(range(a, min(a + 4096, N))))
    chosen = set(init)
    heap = [(-hi, j) for lo, hi, j in first if j not in chosen]
    heapq.heapify(heap)
    picks, gains, evals, rechecked = [], [], 0, 0
    batch, cap = 1, 512
    while len(picks) < n:
        seen, best_lo, top_hi, size = [], -math.inf, -math.inf, batch
        while heap and not (seen and -heap[0][0] < best_lo - margin(top_hi)):
            popped = [heapq.heappop(heap) for _ in range(min(size, cap, len(heap)))]
            got = evaluate([j for _, j in popped])
            seen += got
            evals += len(got)
            best_lo = max(best_lo, max(t[0] for t in got))
            top_hi = max(top_hi, max(t[1] for t in got))
            size = min(2 * size, cap)
        T = margin(top_hi)
        cands = [t for t in seen if t[1] >= best_lo - T]
        batch = max(1, min(cap, len(cands)))
        exact = {}
        if len(cands) == 1 and cands[0][0] > T:
            j = cands[0][2]  # certified: every other gain is below its interval by more than the tie tolerance
        else:
            if len(cands) > F32_MAX_CANDIDATES:
                raise _Undecided
            js = sorted(t[2] for t in cands)
            exact = dict(zip(js, _exact_gains(K, cov, js)))
            rechecked += len(js)
            best = max(exact.values())
            if best - tie_tol(best, N) <= 0.0:
                raise _Undecided  # every remaining gain is 0 within the tolerance: the float64 path's index order
            j = min(k for k, g in exact.items() if g >= best - tie_tol(best, N))
        for lo, hi, k in seen:
            if k != j:
                heapq.heappush(heap, (-min(hi, exact.get(k, hi)), k))
        picks.append(j)
        gains.append(cov.add(j))
        if progress is not None:
            progress(len(picks))
    return picks, {"objective": float(cov.c64.sum()), "gains": gains, "gain_evaluations": evals,
                   "rechecked": rechecked}


def facility(x, n: int, *, bandwidth: Optional[float] = None, knn: Optional[int] = None, kernel=None,
             initial_subset=None, progress: Optional[Callable] = None):
    """Facility location: the n rows S that maximise F(S) = sum_i max_{j in S} k(j, i) (how well S
    covers every row of the pool), by lazy greedy (Minoux) -- the same picks as plain greedy, ties
    to the lowest index. Time O(N^2 d) for the first gains plus O(N d) per re-evaluated gain (lazy:
    a few per pick, evaluated in batches of columns); memory: the kernel if it fits (see the module),
    else O(N * block) plus one batch of columns (<= 256 MiB). Returns (indices, info) with F(S) and
    the gain of every pick.

    ``kernel``: None (or "rbf") is the RBF kernel of the module on the rows of x. "precomputed": x
    is the N x N similarity matrix itself, S[j, i] >= 0 how well row j covers row i (a symmetric
    matrix needs no thought about the order; an asymmetric one is read by rows, as apricot does). A
    callable ``kernel(a, b)`` gets float64 row blocks a (m, d) and all rows b (N, d) and returns the
    (m, N) similarities; the N x N matrix it builds must fit in ``FASTSEL_KERNEL_BYTES``.

    ``initial_subset``: rows already chosen (indices, or a boolean mask of N values). They cover
    from the start and count in the objective, but are neither picked again nor returned: n *new*
    rows are picked (n <= N - len(initial_subset)), as apricot's ``initial_subset``.

    ``knn=k``: the similarity is kept on the exact k-nearest-neighbour graph only (k(i, j) when j is
    one of row i's k nearest rows, itself included, ties to the lower index; 0 otherwise) -- the
    sparse facility location of apricot and submodlib for pools whose kernel does not fit. The graph
    comes from ``fastsel.ops.nn`` (exact, O(N^2 d) time in blocks, O(N k) memory); the greedy then
    takes O(N k) memory and O(in-degree) per re-evaluated gain. A different objective from the dense
    one (rows farther than the k-th neighbour do not cover each other). RBF kernel only.

    Args:
        x: (N, d) pool, tensor or array (computed in float64); with ``kernel="precomputed"`` the
            (N, N) similarity matrix.
        n: rows to pick, 1 <= n <= N - len(initial_subset).
        bandwidth: the RBF kernel's h (None: 2 tr Cov of the pool).
        knn: keep the kernel on the exact k-NN graph with this k (None: dense).
        kernel: None / "rbf", "precomputed" or a callable (see above).
        initial_subset: rows already chosen (see above), or None.
        progress: called with the number of picks made.

    Returns:
        tuple: (indices (n,) int64 in pick order, info dict with objective (F of the picks and the
        initial subset), gains (each pick's gain F(S + j) - F(S) when picked, a list of n floats),
        gain_evaluations, and bandwidth (RBF) or knn where they apply; rechecked (how many gains
        were recomputed in float64) where the float32 kernel ran).

    Raises:
        FastselError: n out of range, a bad kernel, matrix, bandwidth or initial subset.
    """
    rbf = kernel is None or (isinstance(kernel, str) and kernel == "rbf")
    if not rbf and (bandwidth is not None or knn is not None):
        raise FastselError("bandwidth and knn apply to the RBF kernel, not to a precomputed or callable kernel")
    if knn is not None:
        return _facility_knn(x, n, check_int(knn, "knn", 1), bandwidth, progress, initial_subset)
    if rbf:
        x, _, h = _prepare(x, 1, bandwidth)
        N = x.shape[0]
        init, n = _initial(initial_subset, N, n)
        if (N >= F32_MIN_ROWS and N * N * 4 <= kernel_bytes() and _fused(x) and _f32_gemm_is_ieee()):
            shown = [0]  # a count already reported: the float64 path, if it takes over, does not go back

            def ahead(k):
                if k > shown[0]:
                    shown[0] = k
                    progress(k)
            try:
                done = _facility_f32(x, h, init, n, ahead if progress is not None else None)
            except _Undecided:
                done = None
            if progress is not None:
                progress = ahead
            if done is not None:
                picks, info = done
                info["bandwidth"] = h
                return torch.tensor(picks, dtype=torch.int64), info
        K, scale = _Kernel(x, h), 1.0
    else:
        x = _similarity(x, kernel)
        h, K = None, _Matrix(x)
        scale = max(float(x.max()), 1e-300)
        N = x.shape[0]
        init, n = _initial(initial_subset, N, n)
    cover = torch.zeros(N, dtype=torch.float64, device=x.device)
    for a in range(0, len(init), 256):
        torch.maximum(cover, K.rows(init[a:a + 256]).max(0).values, out=cover)
    if init:
        gains = torch.cat([K.rows(list(range(a, min(a + 256, N)))).sub_(cover).clamp_min_(0.0).sum(1)
                           for a in range(0, N, 256)])
    else:
        gains = K.column_sums()
    chosen = set(init)
    heap = [(-float(g), j) for j, g in enumerate(gains.tolist()) if j not in chosen]
    heapq.heapify(heap)
    picks, picked_gains, evals = [], [], 0
    tol = lambda b: b - tie_tol(b, N, scale)  # noqa: E731
    # a batch of rows takes <= BATCH_BYTES when computed from the features (a GEMM: the larger the
    # better), <= CACHE_BYTES when gathered from the dense kernel (evaluated while still in cache)
    batch, cap = 1, max(1, min(512, (CACHE_BYTES if K.dense is not None else BATCH_BYTES) // (8 * N)))
    buf = torch.empty((cap, N), dtype=torch.float64, device=x.device)
    while len(picks) < n:
        # evaluate stale bounds in heap order until no unevaluated bound can reach the best gain's ties;
        # in batches (one matrix product each) sized by the last pick's count: evaluating a bound that
        # the rule would have skipped only refreshes it, so the picks are those of one-at-a-time
        seen, bounds, best, size = [], [], -math.inf, batch
        while heap and not (seen and -heap[0][0] < tol(best)):
            popped = [heapq.heappop(heap) for _ in range(min(size, cap, len(heap)))]
            js = [j for _, j in popped]
            gains = _gains(K, js, cover, buf)
            seen += list(zip(gains, js))
            bounds += [-b for b, _ in popped]
            best = max(best, max(gains))
            evals += len(js)
            size = min(2 * size, cap)
        # next batch: how many bounds the one-at-a-time rule had to evaluate for this pick
        batch = max(1, min(cap, sum(b >= tol(best) for b in bounds)))
        if tol(best) <= 0.0:
            # every remaining gain is 0 within the tolerance (the pool's distinct rows are covered:
            # duplicates) and gains only fall: plain greedy takes the rest in index order
            rest = _unpicked(picks + init, N, n + len(init))
            for a in range(0, len(rest), cap):
                blk = K.rows(rest[a:a + cap], buf)
                for r in range(blk.shape[0]):  # each one's (rounding-level) gain, then its cover
                    picked_gains.append(float((blk[r] - cover).clamp_min_(0.0).sum()))
                    torch.maximum(cover, blk[r], out=cover)
            picks += rest
            if progress is not None:
                progress(len(picks))
            break
        j, g = _take_lowest_tied(seen, best, N, heap, scale)
        picks.append(j)
        picked_gains.append(float(g))
        torch.maximum(cover, K.column(j), out=cover)
        if progress is not None:
            progress(len(picks))
    info = {"objective": float(cover.sum()), "gains": picked_gains, "gain_evaluations": evals}
    if h is not None:
        info["bandwidth"] = h
    return torch.tensor(picks, dtype=torch.int64), info


def knn_graph(x: torch.Tensor, k: int, h: float, raw: Optional[torch.Tensor] = None, chunk: int = 2048):
    """The k-NN similarity graph by column: (ptr, rows, vals) with rows[ptr[j]:ptr[j+1]] the rows i
    that have j among their k nearest (self included) and vals their k(i, j) in float64. Neighbours
    from :func:`fastsel.nn` on ``raw`` (the rows as given, in their own dtype; default ``x``) -- exact, ties
    to the lower index; each pair's squared distance recomputed in float64 from the coordinate
    differences of ``x``."""
    N = x.shape[0]
    k = min(k, N)
    nbr = nn(x if raw is None else raw, k=k).indices
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


def _facility_knn(x, n: int, k: int, bandwidth, progress, initial_subset=None):
    raw = as_tensor(x)
    x, _, h = _prepare(raw, 1, bandwidth)
    N = x.shape[0]
    init, n = _initial(initial_subset, N, n)
    ptr, rows, vals = knn_graph(x, k, h, raw=raw if raw.is_floating_point() else None)
    ptr_l = ptr.tolist()
    rows_n, vals_n = rows.numpy(), vals.numpy()
    cover = np.zeros(N)

    def take(j):
        a, b = ptr_l[j], ptr_l[j + 1]
        cover[rows_n[a:b]] = np.maximum(cover[rows_n[a:b]], vals_n[a:b])

    def gain(j):
        a, b = ptr_l[j], ptr_l[j + 1]
        return float(np.maximum(vals_n[a:b] - cover[rows_n[a:b]], 0.0).sum())
    for j in init:
        take(j)
    chosen = set(init)
    if init:
        gains = [gain(j) for j in range(N)]
    else:
        gains = np.zeros(N)
        np.add.at(gains, np.repeat(np.arange(N), np.diff(np.asarray(ptr_l))), vals_n)
        gains = gains.tolist()
    heap = [(-float(g), j) for j, g in enumerate(gains) if j not in chosen]
    heapq.heapify(heap)
    picks, picked_gains, evals, tol = [], [], 0, lambda b: b - tie_tol(b, N)
    while len(picks) < n:
        seen, best = [], -math.inf
        while heap and not (seen and -heap[0][0] < tol(best)):
            _, j = heapq.heappop(heap)
            g = gain(j)
            evals += 1
            seen.append((g, j))
            best = max(best, g)
        if tol(best) <= 0.0:  # nothing left to cover: plain greedy takes the rest in index order
            rest = _unpicked(picks + init, N, n + len(init))
            for j in rest:  # their (tiny) gains still count in the objective, as in the dense version
                picked_gains.append(gain(j))
                take(j)
            picks += rest
            if progress is not None:
                progress(len(picks))
            break
        j, g = _take_lowest_tied(seen, best, N, heap)
        picks.append(j)
        picked_gains.append(float(g))
        take(j)
        if progress is not None:
            progress(len(picks))
    return torch.tensor(picks, dtype=torch.int64), {"objective": float(cover.sum()), "gains": picked_gains,
                                                     "bandwidth": h, "gain_evaluations": evals, "knn": min(k, N)}


def dpp(x, n: int, *, start: Optional[int] = None, seed: int = DEFAULT_SEED, bandwidth: Optional[float] = None,
        progress: Optional[Callable] = None, panel: Optional[int] = None, kernel=None, quality=None,
        epsilon: float = DPP_EPS):
    """Greedy MAP of a DPP: each pick maximises log det L_S, by the incremental Cholesky update of
    Chen, Zhang & Zhou (NeurIPS 2018). The kernel is L = diag(q) S diag(q), q the ``quality`` scores
    (1 when None) and S the similarity: the RBF kernel of the features (default), a precomputed
    matrix (``kernel="precomputed"``: ``x`` is S, (N, N)) or a function (``kernel=f``: f(a, b) returns
    the (len(a), len(b)) block S(a_i, b_j) for float64 rows of ``x``, called on row panels, so S is never
    formed). The first pick is ``start``; when None, the row with the largest L_jj (the greedy step,
    ties to the lowest index), except with the RBF kernel and no quality, where every L_jj is 1 and
    it is drawn from ``seed``, as greedy's. Once no row adds anything (gain factor d^2 <= ``epsilon``:
    duplicates, or the kernel's numerical rank spent) the rest are taken by the gain they had left,
    largest first (a distinct row before a duplicate), ties in index order; ``info["rank_spent_at"]``
    says after how many picks (0: the first pick's L_jj was already <= ``epsilon``), and the CLI says
    it too. Time O(n N (d + n)); memory O(r N) for the r Cholesky rows made before
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
        x: (N, d) pool, tensor or array (computed in float64); with ``kernel="precomputed"`` the
            (N, N) symmetric similarity matrix S.
        n: rows to pick, 1 <= n <= N.
        start: the first pick (None: see above).
        seed: the seed of that draw.
        bandwidth: the RBF kernel's h (None: 2 tr Cov of the pool); only with the RBF kernel.
        progress: called with the number of picks made.
        panel: rows per panel (default 64; 1 is the plain pick-by-pick update).
        kernel: None or "rbf" (the RBF kernel of ``x``), "precomputed", or a function f(a, b).
        quality: (N,) scores q >= 0 (None: all 1); L = diag(q) S diag(q).
        epsilon: the gain factor d^2 at or below which the rank counts as spent (default 1e-10).

    Returns:
        tuple: (indices (n,) int64 in pick order, info dict with log_det, bandwidth (None unless
        the RBF kernel) and rank_spent_at, the pick count at which the kernel's rank was spent, or None).

    Raises:
        FastselError: NaN or infinite values, n outside [1, N], a precomputed kernel that is not
            square, symmetric or has a negative diagonal, quality of the wrong shape or negative,
            a bandwidth with a kernel that is not the RBF, an epsilon that is negative or not finite.
    """
    epsilon = check_real(epsilon, "epsilon")
    if not (math.isfinite(epsilon) and epsilon >= 0):
        raise FastselError(f"epsilon must be finite and >= 0, got {epsilon!r}")
    rbf = kernel is None or (isinstance(kernel, str) and kernel == "rbf")
    if rbf:
        x, n, h = _prepare(x, n, bandwidth)
        N = x.shape[0]
    else:
        if bandwidth is not None:
            raise FastselError("bandwidth is the RBF kernel's: it cannot go with kernel="
                               f"{kernel if isinstance(kernel, str) else 'a function'!r}")
        if isinstance(kernel, str) and kernel == "precomputed":
            x = _check_gram(x)
        elif callable(kernel):
            x = as_tensor(x).to(torch.float64)
        else:
            raise FastselError(f"kernel must be None, 'rbf', 'precomputed' or a function f(a, b), got {kernel!r}")
        N, h = x.shape[0], None
        n = _check_n(n, N)
    q = None if quality is None else _check_quality(quality, N, x.device)
    m = min(N, PANEL if panel is None else check_int(panel, "panel", 1))
    if rbf:
        # the kernel is kept (when it fits) only if n is a large share of N: building it costs N^2 d, the
        # rows the panels use (a few n, N d each, in matrix products) cost less below n = N / 2 (measured)
        K = _Kernel(x, h, dense=2 * n >= N)
        d2 = torch.ones(N, dtype=torch.float64, device=x.device)
    else:
        K = _Gram(x) if isinstance(kernel, str) else _Called(kernel, x)
        d2 = K.diag()
        if bool((d2 < 0).any()):
            raise FastselError("the kernel function gave a negative k(a, a): not a positive semi-definite kernel")
    if q is not None:
        K = _Quality(K, q)
        d2 = d2 * q * q
    if start is None and (q is not None or not rbf):
        check_seed(seed)
        j = _first_tied(d2, 1)
    else:
        j = _check_start(start, N, seed)
    # the Cholesky rows, reserved whole but never zeroed: pages are only taken as rows are written (a
    # run whose rank is spent early uses no more), and no growing copy ever holds two of them at once
    c = torch.empty((max(n - 1, 1), N), dtype=torch.float64, device=x.device)
    taken = torch.zeros(N, dtype=torch.bool, device=x.device)
    rows = torch.empty((m, N), dtype=torch.float64, device=x.device)  # k(J, .) for the panel's rows J
    old = torch.empty((m, N), dtype=torch.float64, device=x.device)   # (C_t0^T C_t0[:, J])^T
    slot, t0 = {}, 0
    picks, logdet, spent_at = [], 0.0, None

    def rest():
        # the rows with the largest gain left (a distinct row before a duplicate whose gain is 0),
        # ties in index order
        left = d2.masked_fill(d2 <= DPP_NOISE, 0.0)  # rounding-level gains count as none
        return iter(sorted((~taken).nonzero()[:, 0].tolist(), key=lambda i: (-float(left[i]), i)))

    for t in range(n):
        picks.append(j)
        taken[j] = True
        if progress is not None:
            progress(t + 1)
        if spent_at is None:
            if t == 0 and float(d2[j]) <= epsilon:  # even the first pick adds nothing (a zero kernel)
                spent_at, fill = 0, rest()
            else:
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
            if float(d2[j]) <= epsilon:
                spent_at, fill = t + 1, rest()
        if spent_at is not None:
            j = next(fill)
    return torch.tensor(picks, dtype=torch.int64), {"log_det": logdet if spent_at is None else -math.inf,
                                                     "bandwidth": h, "rank_spent_at": spent_at}


class _Gram:
    """dpp's rows of a precomputed (N, N) kernel matrix (``kernel="precomputed"``)."""

    def __init__(self, L: torch.Tensor):
        self.L = L

    def diag(self) -> torch.Tensor:
        return self.L.diagonal().clone()

    def rows(self, js: list, out: torch.Tensor) -> torch.Tensor:
        return torch.index_select(self.L, 0, torch.tensor(js, device=self.L.device), out=out[:len(js)])


class _Called:
    """dpp's rows of a kernel given as a function ``f(a, b)`` -> the (len(a), len(b)) block k(a_i, b_j)."""

    def __init__(self, f: Callable, x: torch.Tensor):
        self.f, self.x = f, x

    def _block(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        try:
            v = torch.as_tensor(self.f(a, b), dtype=torch.float64, device=self.x.device)
        except (TypeError, ValueError, RuntimeError) as e:
            raise FastselError(f"the kernel function failed on a ({a.shape[0]}, {b.shape[0]}) block: {e}") from None
        if tuple(v.shape) != (a.shape[0], b.shape[0]):
            raise FastselError(f"the kernel function must return a ({a.shape[0]}, {b.shape[0]}) block for "
                               f"({a.shape[0]}, d) and ({b.shape[0]}, d) rows, got shape {tuple(v.shape)}")
        if not bool(torch.isfinite(v).all()):
            raise FastselError("the kernel function returned NaN or infinite values")
        return v

    def diag(self) -> torch.Tensor:
        N = self.x.shape[0]
        return torch.cat([self._block(self.x[a:a + BLOCK], self.x[a:a + BLOCK]).diagonal()
                          for a in range(0, N, BLOCK)])

    def rows(self, js: list, out: torch.Tensor) -> torch.Tensor:
        out = out[:len(js)]
        out.copy_(self._block(self.x[js], self.x))
        return out


class _Quality:
    """dpp's rows of L = diag(q) S diag(q) from the rows of S: quality scores q times similarity S."""

    def __init__(self, base, q: torch.Tensor):
        self.base, self.q = base, q

    def rows(self, js: list, out: torch.Tensor) -> torch.Tensor:
        r = self.base.rows(js, out)
        return r.mul_(self.q[js][:, None]).mul_(self.q[None, :])


def _check_gram(L) -> torch.Tensor:
    """dpp's precomputed kernel matrix as a float64 (N, N) tensor: square, finite, symmetric (to the
    rounding of its own dtype), a non-negative diagonal."""
    L = as_tensor(L, "kernel matrix")
    tol = 1e3 * torch.finfo(L.dtype).eps
    L = L.to(torch.float64)
    if L.shape[0] != L.shape[1]:
        raise FastselError(f"a precomputed kernel must be a square (N, N) matrix, got shape {tuple(L.shape)}")
    big = float(L.abs().max())
    asym = float((L - L.T).abs().max())
    if asym > tol * big:
        raise FastselError(f"the precomputed kernel is not symmetric (max |L - L^T| = {asym:.3g}, "
                           f"max |L| = {big:.3g})")
    dg = L.diagonal()
    if bool((dg < 0).any()):
        i = int(torch.nonzero(dg < 0)[0])
        raise FastselError(f"the precomputed kernel has a negative diagonal entry L[{i}, {i}] = {float(dg[i])!r}:"
                           " not a positive semi-definite kernel")
    return L


def _check_quality(quality, N: int, device) -> torch.Tensor:
    """dpp's quality scores as a float64 (N,) tensor, finite and >= 0."""
    q = quality.detach() if isinstance(quality, torch.Tensor) else torch.as_tensor(np.asarray(quality))
    if q.is_complex() or q.dtype == torch.bool or not (q.is_floating_point() or q.dtype in (
            torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)):
        raise FastselError(f"quality must hold real numbers, got {q.dtype}")
    q = q.to(device=device, dtype=torch.float64)
    if q.dim() != 1 or q.shape[0] != N:
        raise FastselError(f"quality must be one score per row, shape ({N},), got {tuple(q.shape)}")
    if not bool(torch.isfinite(q).all()) or bool((q < 0).any()):
        raise FastselError("quality scores must be finite and >= 0")
    return q


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


def _facility_sel(x, n, *, progress=None, knn=None, bandwidth=None, **_):
    return facility(x, n, knn=knn, bandwidth=bandwidth, progress=progress)


def _dpp_sel(x, n, *, start=None, seed=DEFAULT_SEED, progress=None, **_):
    return dpp(x, n, start=start, seed=seed, progress=progress)


def _herding_sel(x, n, *, progress=None, **_):
    return herding(x, n, progress=progress)


FACILITY_OPTIONS = (
    Option("knn", int, None, "keep the similarity on the exact K-nearest-neighbour graph only (O(N K) memory, "
           "never N x N: for pools whose kernel does not fit)", min=1),
    Option("bandwidth", float, None, "the RBF kernel's h (default: 2 tr Cov of the pool)", min=0, min_open=True),
)

register_selector("facility", _facility_sel, help="facility location, lazy greedy (RBF kernel)",
                  takes_start=False, options=FACILITY_OPTIONS)
register_selector("dpp", _dpp_sel, help="DPP greedy MAP, max log-det (RBF kernel)")
register_selector("herding", _herding_sel, help="kernel herding: match the pool's kernel mean",
                  takes_start=False)
