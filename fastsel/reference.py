"""Pure-PyTorch versions of the fastsel ops: the fallback backend and the test oracle.

Each function has the same signature and state contract as the compiled op of
the same name (schemas in ``csrc/ops.cpp``): squared distances in the
difference form, accumulated in float32 (float64 for float64 input); selected
rows hold -1 in the ``min_d2`` state; ties go to the lowest index.
Called with float64 data, these are the float64 reference of the tests.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from .errors import FastselError

_ROW_CHUNK = 4096
NN_EXTRA = 4  # extra GEMM candidates re-checked in float64 (as csrc/cpu/nn_cpu.cpp)


def acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def sq_dist_to(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared distances of every row of ``x`` to ``c`` (difference form, accumulation dtype)."""
    acc = acc_dtype(x.dtype)
    c = c.to(acc)
    out = torch.empty(x.shape[0], dtype=acc, device=x.device)
    for a in range(0, x.shape[0], _ROW_CHUNK):
        blk = x[a:a + _ROW_CHUNK].to(acc) - c
        out[a:a + _ROW_CHUNK] = (blk * blk).sum(1)
    return out


def _init_state(x, start, min_d2):
    acc = acc_dtype(x.dtype)
    if min_d2 is not None:
        if min_d2.shape != (x.shape[0],) or min_d2.dtype != acc:
            raise FastselError(f"min_d2 must be {acc} of shape ({x.shape[0]},)")
        return min_d2.clone()
    if not 0 <= start < x.shape[0]:
        raise FastselError(f"start must be in [0, N={x.shape[0]}), got {start}")
    return torch.full((x.shape[0],), math.inf, dtype=acc, device=x.device)


def _check_n(n, md):
    remaining = int((md >= 0).sum())
    if not 1 <= n <= remaining:
        raise FastselError(f"n must be in [1, {remaining}] (rows not yet selected), got {n}")


def greedy(x: torch.Tensor, n: int, start: int, min_d2: torch.Tensor | None = None, mode: str = "single"):
    """Algorithm 1 (farthest-point sampling), one pool read per pick. See ``fastsel::greedy``.

    ``mode`` is accepted for signature parity; the reference always reads the pool once per pick.
    """
    md = _init_state(x, start, min_d2)
    _check_n(n, md)
    pick = start if (min_d2 is None or start >= 0) else int(torch.argmax(md))
    idx = torch.empty(n, dtype=torch.int64, device=x.device)
    d2 = torch.empty(n, dtype=md.dtype, device=x.device)
    for t in range(n):
        idx[t] = pick
        d2[t] = md[pick]
        md[pick] = -1
        md = torch.minimum(md, sq_dist_to(x, x[pick]))
        pick = int(torch.argmax(md))  # first maximal index: ties go low
    return idx, d2, md


def threshold_decay(x: torch.Tensor, n: int, start: int, tau: float, alpha: float, every_pass: bool,
                    min_d2: torch.Tensor | None = None, state: torch.Tensor | None = None, mode: str = "single"):
    """Algorithm 2 (threshold-decay filter) as printed. See ``fastsel::threshold_decay``.

    ``mode`` is accepted for signature parity; the reference updates the pool after every accept.
    """
    if not 0.0 < alpha < 1.0:
        raise FastselError(f"alpha must be in (0, 1), got {alpha}")
    if (min_d2 is None) != (state is None):
        raise FastselError("min_d2 and state must be given together")
    md = _init_state(x, start, min_d2)
    if state is not None:
        tau, pos, added, filled = float(state[0]), int(state[1]), bool(state[2]), int(state[3])
        start = -1
    else:
        pos, added, filled = 0, False, 0
    if not (math.isfinite(tau) and tau > 0):
        raise FastselError(f"tau must be finite and > 0, got {tau}")
    _check_n(n, md)
    idx = torch.empty(n, dtype=torch.int64, device=x.device)
    d2 = torch.empty(n, dtype=md.dtype, device=x.device)
    tau_at = torch.empty(n, dtype=torch.float64, device=x.device)
    t = 0

    def record(i):
        nonlocal t, md
        idx[t], d2[t], tau_at[t] = i, md[i], tau
        t += 1
        md[i] = -1

    def first_above(frm):
        hit = torch.nonzero(md[frm:].double() > tau * tau)
        return frm + int(hit[0]) if hit.numel() else -1

    if start >= 0:
        record(start)
        md = torch.minimum(md, sq_dist_to(x, x[start]))
    while t < n:
        if pos == 0:
            best = float(md.max())
            if best <= 0.0:  # everything left is at distance 0: fill in index order
                for i in torch.nonzero(md >= 0).flatten().tolist()[: n - t]:
                    record(i)
                    filled += 1
                break
            while best <= tau * tau:  # passes that accept nothing
                tau *= alpha
        i = first_above(pos)
        if i >= 0:
            added = True
            pos = i + 1
            record(i)
            md = torch.minimum(md, sq_dist_to(x, x[i]))
            continue
        if every_pass or not added:
            tau *= alpha
        pos, added = 0, False
    st = torch.tensor([tau, float(pos), 1.0 if added else 0.0, float(filled)], dtype=torch.float64,
                      device=x.device)
    return idx, d2, tau_at, md, st


def gemm_error_bound(qnorm: torch.Tensor, rmax: float, d: int, u: float) -> torch.Tensor:
    """Bound on |GEMM-form d^2 - true d^2| for centred rows (as csrc/cpu/nn_cpu.cpp)."""
    return 2.0 * (d + 8.0) * u * (qnorm + rmax) ** 2


def nn(query: torch.Tensor, ref: torch.Tensor, k: int, exclude_self: bool = False,
       query_block: int = 1024, ref_block: int = 4096):
    """Exact k-NN: centred blocked GEMM candidates, re-ranked in float64 and certified
    against the GEMM error bound (uncertified queries get a full float64 scan).
    See ``fastsel::nn``."""
    Q, R, d = query.shape[0], ref.shape[0], query.shape[1]
    if exclude_self and Q != R:
        raise FastselError(f"exclude_self needs query and ref of the same length, got {Q} and {R}")
    avail = R - int(exclude_self)
    if not 1 <= k <= avail:
        raise FastselError(f"k must be in [1, {avail}], got {k}")
    kc = min(avail, k + NN_EXTRA)
    acc = acc_dtype(query.dtype)
    u = 2.0 ** -53 if acc == torch.float64 else 2.0 ** -24
    dev = query.device
    mu = sum(ref[a:a + ref_block].double().sum(0) for a in range(0, R, ref_block)) / R
    mu = mu.to(acc)
    rmax = max(float(((ref[a:a + ref_block].to(acc) - mu) ** 2).sum(1).max()) for a in range(0, R, ref_block)) ** 0.5
    out_d = torch.empty(Q, k, dtype=acc, device=dev)
    out_i = torch.empty(Q, k, dtype=torch.int64, device=dev)
    for q0 in range(0, Q, query_block):
        qf = query[q0:q0 + query_block].to(acc) - mu
        qb = qf.shape[0]
        qn = (qf * qf).sum(1, keepdim=True)
        cv = torch.full((qb, 0), math.inf, dtype=acc, device=dev)
        ci = torch.empty((qb, 0), dtype=torch.int64, device=dev)
        gi = torch.arange(q0, q0 + qb, device=dev)[:, None]
        for r0 in range(0, R, ref_block):
            rf = ref[r0:r0 + ref_block].to(acc) - mu
            v = qn + (rf * rf).sum(1)[None, :] - 2.0 * (qf @ rf.T)
            j = torch.arange(r0, r0 + rf.shape[0], device=dev).expand(qb, -1)
            if exclude_self:
                v = v.masked_fill(j == gi, math.inf)
            # earlier blocks hold lower indices: a stable sort keeps ties low
            v, j = torch.cat([cv, v], 1), torch.cat([ci, j], 1)
            order = torch.sort(v, dim=1, stable=True).indices[:, :kc]
            cv, ci = torch.gather(v, 1, order), torch.gather(j, 1, order)
        # re-rank by the float64 difference form; ties: lowest index
        q64 = query[q0:q0 + query_block].double()
        e = ((q64[:, None, :] - ref[ci].double()) ** 2).sum(2)
        ci, o1 = torch.sort(ci, dim=1)
        e = torch.gather(e, 1, o1)
        o2 = torch.sort(e, dim=1, stable=True).indices[:, :k]
        bd, bi = torch.gather(e, 1, o2), torch.gather(ci, 1, o2)
        if kc < avail:
            bound = gemm_error_bound(qn[:, 0].double().sqrt(), rmax, d, u)
            for t in torch.nonzero(~(cv[:, -1].double() - bound > bd[:, -1])).flatten().tolist():
                full = sq_dist_to(ref.double(), q64[t])
                if exclude_self:
                    full[q0 + t] = math.inf
                o = torch.sort(full, stable=True).indices[:k]
                bd[t], bi[t] = full[o], o
        out_d[q0:q0 + query_block] = bd.sqrt().to(acc)
        out_i[q0:q0 + query_block] = bi
    return out_d, out_i


def update_min_d2(x: torch.Tensor, min_d2: torch.Tensor, centres: torch.Tensor, thr: float, frm: int):
    """Lower ``min_d2`` against each centre row; summary [best, best index, first index >= frm above thr].
    See ``fastsel::update_min_d2``."""
    md = min_d2.clone()
    for c in centres:
        md = torch.minimum(md, sq_dist_to(x, c))
    return md, state_summary(md, thr, frm)


def state_summary(md: torch.Tensor, thr: float, frm: int) -> torch.Tensor:
    """[largest value (-1 if no unselected row), its lowest index (-1), first index >= frm with value > thr (-1)]."""
    best = float(md.max()) if md.numel() else -1.0
    bi = int(torch.argmax(md)) if md.numel() and best >= 0 else -1
    hit = torch.nonzero((md[frm:] >= 0) & (md[frm:].double() > thr)) if frm < md.numel() else torch.empty(0)
    fi = frm + int(hit[0]) if hit.numel() else -1
    return torch.tensor([max(best, -1.0), float(bi), float(fi)], dtype=torch.float64)


# --- literal float64 definitions of the diversity criteria (fastsel.diversity), for the tests: the full
# N x N kernel from explicit differences and plain (non-lazy, non-incremental) greedy; O(N^2) memory.

def rbf_kernel(x, bandwidth=None):
    """K[i, j] = exp(-sum_k (x_ik - x_jk)^2 / h), h = mean squared distance over all ordered pairs."""
    x = np.asarray(x, dtype=np.float64)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    h = float(d2.mean()) if bandwidth is None else float(bandwidth)
    return np.exp(-d2 / (h if h > 0 else 1.0))


def _first_tied(values, N):
    """The lowest index whose value is within fastsel.diversity.tie_tol of the largest."""
    best = float(np.max(values))
    return int(np.flatnonzero(values >= best - (1e-10 * abs(best) + 1e-13 * N))[0])


def facility(x, n, bandwidth=None):
    """Plain greedy on F(S) = sum_i max_{j in S} K[i, j]; every gain recomputed, ties to the lowest index."""
    K = rbf_kernel(x, bandwidth)
    cover = np.zeros(len(K))
    picks = []
    for _ in range(n):
        gains = np.maximum(K - cover[:, None], 0.0).sum(0)
        gains[picks] = -np.inf
        j = _first_tied(gains, len(K))
        picks.append(j)
        cover = np.maximum(cover, K[:, j])
    return picks, float(cover.sum())


def facility_knn(x, n, k, bandwidth=None):
    """Plain greedy facility location on the k-NN graph: K[i, j] kept when j is among row i's k
    nearest rows (itself included; distances from explicit differences, a stable sort: ties to the
    lower index), 0 elsewhere; the bandwidth is the dense kernel's (over all pairs)."""
    x = np.asarray(x, dtype=np.float64)
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    h = float(d2.mean()) if bandwidth is None else float(bandwidth)
    K = np.zeros_like(d2)
    for i in range(len(x)):
        nb = np.argsort(d2[i], kind="stable")[:k]
        K[i, nb] = np.exp(-d2[i, nb] / (h if h > 0 else 1.0))
    cover = np.zeros(len(K))
    picks = []
    for _ in range(n):
        gains = np.maximum(K - cover[:, None], 0.0).sum(0)
        gains[picks] = -np.inf
        j = _first_tied(gains, len(K))
        picks.append(j)
        cover = np.maximum(cover, K[:, j])
    return picks, float(cover.sum())


def dpp(x, n, start, bandwidth=None, eps=1e-10):
    """Greedy log det K_S from ``start``, each candidate's determinant computed afresh (slogdet); once the
    best determinant ratio is <= eps the rest are taken by the ratio they had left, largest first
    (ratios under 1e-13, rounding, count as 0), ties in index order."""
    K = rbf_kernel(x, bandwidth)
    picks, cur, spent = [start], 0.0, False
    while len(picks) < n:
        if not spent:
            ratio = np.full(len(K), -np.inf)  # det K_{S+j} / det K_S, afresh for every candidate
            for j in range(len(K)):
                if j in picks:
                    continue
                s = picks + [j]
                sign, ld = np.linalg.slogdet(K[np.ix_(s, s)])
                ratio[j] = math.exp(ld - cur) if sign > 0 else 0.0
            bj = _first_tied(ratio, 1)
            if ratio[bj] > eps:
                picks.append(bj)
                cur += math.log(ratio[bj])
                continue
            spent = True
            left = [(-(r if r > 1e-13 else 0.0), j) for j, r in enumerate(ratio) if j not in picks]
            fill = iter([j for _, j in sorted(left)])  # the largest gain left first, ties in index order
        picks.append(next(fill))
    return picks


def herding(x, n, bandwidth=None):
    """Kernel herding without replacement: argmax_j mean_i K[i, j] - sum_{s in S} K[j, s] / (|S| + 1)."""
    K = rbf_kernel(x, bandwidth)
    mu = K.mean(0)
    picks = []
    for t in range(n):
        score = mu - (K[:, picks].sum(1) if picks else 0.0) / (t + 1)
        score[picks] = -np.inf
        picks.append(_first_tied(score, 1))
    return picks


def lloyd_step(x, centres):
    """One literal Lloyd round in float64: each row to its nearest centre (first on ties), each
    non-empty centre to its rows' mean. Returns (assignment, centres)."""
    x = torch.as_tensor(x, dtype=torch.float64)
    c = torch.as_tensor(centres, dtype=torch.float64).clone()
    a = torch.tensor([min(range(len(c)), key=lambda j: (float(((xi - c[j]) ** 2).sum()), j)) for xi in x])
    for j in range(len(c)):
        if bool((a == j).any()):
            c[j] = x[a == j].mean(0)
    return a, c


def semdedup_m(x, assign, centres):
    """SemDeDup's per-row score, literally: per cluster, rows sorted by cosine distance to the
    centre (farthest first, ties by index), the full similarity matrix, its strict upper triangle,
    the maximum of each column (-inf for the first row)."""
    xn = torch.as_tensor(x, dtype=torch.float64)
    xn = xn / xn.norm(dim=1, keepdim=True)
    c = torch.as_tensor(centres, dtype=torch.float64)
    m = torch.full((len(xn),), float("-inf"), dtype=torch.float64)
    for j in range(len(c)):
        rows = [i for i in range(len(xn)) if int(assign[i]) == j]
        if not rows:
            continue
        cj = c[j] / c[j].norm()
        rows.sort(key=lambda i: (-(1.0 - float(xn[i] @ cj)), i))
        S = xn[rows] @ xn[rows].T
        T = torch.triu(S, diagonal=1).masked_fill(torch.tril(torch.ones_like(S, dtype=torch.bool)), float("-inf"))
        m[rows] = T.max(0).values
    return m
