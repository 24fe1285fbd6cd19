"""Selection over a pool sharded by rows across the ranks of a ``torch.distributed`` group.

Each rank holds a contiguous block of rows of the global pool (``shard_rows`` gives the
usual split; shards may be of any size, empty included) and keeps its rows' min-distances.
Per step only the winner crosses the group: an all-reduce of the best value, an all-reduce
of the lowest global index holding it, and a broadcast of one feature row -- traffic per pick
is O(d), independent of N. The local arithmetic is the single-process kernel's
(``fastsel::update_min_d2`` for backend "cpp", :mod:`fastsel.reference` for "torch"), so the
results equal the single-process op's bit for bit (ties: lowest global index).

Works with any backend torch.distributed offers (gloo on CPUs, NCCL on GPUs: put the shard
on the rank's device).
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from typing import NamedTuple, Optional

import numpy as np
import torch
import torch.distributed as dist

from . import _dist, reference
from .errors import DataError, FastselError
from .ops._dispatch import _impl, _mixed_scales, _row_keys, _underflow_triage
from .ops._inputs import (
    DEFAULT_ALPHA,
    DEFAULT_SEED,
    _check_n,
    _check_start,
    as_tensor,
    ldexp,
    magnitude,
    scale_exponent,
    unscale,
)
from .ops.greedy import GreedyResult
from .ops.nn import NNResult, nn as local_nn
from .ops.threshold import (
    ThresholdResult,
    _tau_from_d2,
    check_threshold_args,
    max_d2_from,
    scan_order,
    threshold_counts,
)

_BIG = 2**62


def shard_rows(N: int, rank: int, world: int) -> tuple[int, int]:
    """Rows [lo, hi) of an N-row pool that rank ``rank`` of ``world`` holds (sizes differ by at most 1).

    Args:
        N: rows in the pool.
        rank: this process's rank.
        world: the number of ranks.

    Returns:
        tuple: (lo, hi), this rank's rows.
    """
    base, extra = divmod(N, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


class _Group:
    """Shard layout and the few collectives the ops need, with a byte counter."""

    def __init__(self, x_local: torch.Tensor, group=None):
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        self.dev = x_local.device
        n = torch.tensor([x_local.shape[0], x_local.shape[1] if x_local.dim() == 2 else -1], device=self.dev)
        sizes = [torch.zeros_like(n) for _ in range(self.world)]
        dist.all_gather(sizes, n, group=group)
        self.sizes = [int(s[0]) for s in sizes]
        dims = {int(s[1]) for s in sizes}
        if len(dims) != 1 or -1 in dims:
            raise FastselError(f"every rank's shard must be 2-D with the same d, got d's {sorted(dims)}")
        self.d = dims.pop()
        self.offsets = [sum(self.sizes[:r]) for r in range(self.world)]
        self.N = sum(self.sizes)
        self.off = self.offsets[self.rank]
        self.n_local = self.sizes[self.rank]
        self.bytes = 0  # bytes this rank contributes to collectives in the selection loop

    def owner(self, i: int) -> int:
        for r in range(self.world - 1, -1, -1):
            if self.sizes[r] and i >= self.offsets[r]:
                return r
        raise IndexError(i)

    def max_then_lowest(self, value: float, index: int) -> tuple[float, int]:
        """Global (largest value, lowest global index holding it); index -1 when no rank has one."""
        v = torch.tensor([value], dtype=torch.float64, device=self.dev)
        dist.all_reduce(v, op=dist.ReduceOp.MAX, group=self.group)
        i = torch.tensor([index if (index >= 0 and value == float(v)) else _BIG], dtype=torch.int64, device=self.dev)
        dist.all_reduce(i, op=dist.ReduceOp.MIN, group=self.group)
        self.bytes += 16
        gi = int(i)
        return float(v), (gi if gi < _BIG else -1)

    def min_index(self, index: int) -> int:
        i = torch.tensor([index if index >= 0 else _BIG], dtype=torch.int64, device=self.dev)
        dist.all_reduce(i, op=dist.ReduceOp.MIN, group=self.group)
        self.bytes += 8
        return int(i) if int(i) < _BIG else -1

    def max_value(self, value: float) -> float:
        v = torch.tensor([value], dtype=torch.float64, device=self.dev)
        dist.all_reduce(v, op=dist.ReduceOp.MAX, group=self.group)
        self.bytes += 8
        return float(v)

    def row(self, x_local: torch.Tensor, i: int, extra: float = 0.0) -> tuple[torch.Tensor, float]:
        """Broadcast global row ``i`` (and one float64 from its owner) to every rank."""
        src = self.owner(i)
        buf = torch.empty(self.d, dtype=x_local.dtype, device=self.dev)
        val = torch.tensor([extra], dtype=torch.float64, device=self.dev)
        if src == self.rank:
            buf.copy_(x_local[i - self.off])
        dist.broadcast(buf, src=dist.get_global_rank(self.group, src) if self.group is not None else src,
                       group=self.group)
        dist.broadcast(val, src=dist.get_global_rank(self.group, src) if self.group is not None else src,
                       group=self.group)
        if src == self.rank:
            self.bytes += buf.numel() * buf.element_size() + 8
        return buf, float(val)

    def all_indices(self, local: torch.Tensor) -> torch.Tensor:
        """Concatenate each rank's int64 global indices, in rank (= index) order."""
        n = torch.tensor([local.numel()], device=self.dev)
        counts = [torch.zeros_like(n) for _ in range(self.world)]
        dist.all_gather(counts, n, group=self.group)
        m = max(int(c) for c in counts)
        pad = torch.full((m,), -1, dtype=torch.int64, device=self.dev)
        pad[: local.numel()] = local
        bufs = [torch.empty_like(pad) for _ in range(self.world)]
        dist.all_gather(bufs, pad, group=self.group)
        self.bytes += m * 8
        return torch.cat([b[: int(c)] for b, c in zip(bufs, counts)])


def _local(x_local: torch.Tensor, backend: str):
    """The local update step: the compiled op or the reference, and an empty-shard stand-in."""
    if x_local.shape[0] == 0:
        def empty_update(x, md, centres, thr, frm):
            return md, torch.tensor([-1.0, -1.0, -1.0], dtype=torch.float64)
        return empty_update
    fn, _ = _impl("update_min_d2", x_local, backend)
    return fn


def _prepare(x_local, backend, G: _Group):
    """Validate this rank's shard and agree on the outcome: a rank with bad rows raises its own
    error, every other rank raises too (rather than waiting forever in the next collective).
    Returns the shard (scaled by 2**e when the pool's magnitudes need it, the same e on every
    rank: see :func:`fastsel.ops._inputs.pow2_scale`), its min-distance state, the update step and e."""
    problem = None
    if x_local.shape[0]:
        try:
            x_local = as_tensor(x_local, f"rows {G.off}:{G.off + G.n_local} of the sharded pool")
        except FastselError as e:
            problem = str(e)
    ok = torch.tensor([0 if problem else 1], device=G.dev)
    dist.all_reduce(ok, op=dist.ReduceOp.MIN, group=G.group)
    if problem:
        raise FastselError(problem)
    if not int(ok):
        raise FastselError("another rank's shard holds invalid rows (NaN/Inf or a non-float dtype)")
    m = G.max_value(magnitude(x_local) if x_local.dtype != torch.float16 else 0.0)
    e = scale_exponent(m, x_local.dtype)
    x_local = ldexp(x_local, e)
    acc = reference.acc_dtype(x_local.dtype)
    md = torch.full((x_local.shape[0],), math.inf, dtype=acc, device=x_local.device)
    return x_local, md, _local(x_local, backend), e


def _underflowed(G: "_Group", x_local: torch.Tensor, idx: torch.Tensor, d2: torch.Tensor,
                 tau_at: Optional[torch.Tensor] = None) -> bool:
    """The sharded form of :func:`fastsel.ops._dispatch._underflowed` (mixed scales): True on every
    rank when a pick's squared distance (or a threshold in force) is positive but below float32's safe
    range, or a pick lands at distance 0 while some unpicked row, on any rank, is no exact duplicate
    of the rows picked before it. ``idx``, ``d2``, ``tau_at`` are the same on every rank, so every rank
    takes the same branches; the rare zero case broadcasts the picked rows and reduces one flag."""
    if x_local.dtype == torch.float16:
        return False
    first_zero = _underflow_triage(d2, tau_at)
    if isinstance(first_zero, bool):
        return first_zero
    keys = _row_keys(torch.stack([G.row(x_local, int(i))[0] for i in idx[:first_zero]]))
    try:  # in chunks; a failure on one rank still reaches the reduce below (no rank left waiting)
        ok = all(bool(np.isin(_row_keys(x_local[a:a + 65536]), keys).all())
                 for a in range(0, G.n_local, 65536))
        code = 1 if ok else 0
    except MemoryError:
        code = -1
    flag = torch.tensor([code], device=G.dev)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN, group=G.group)
    if int(flag) < 0:
        raise FastselError("out of memory while checking the sharded pool for mixed scales")
    return int(flag) == 0


def greedy(x_local: torch.Tensor, n: int, start: Optional[int] = None, *, seed: int = DEFAULT_SEED,
           backend: str = "auto", group=None, stats: Optional[dict] = None) -> GreedyResult:
    """Greedy selection (Algorithm 1) over a row-sharded pool; every rank gets the same result.

    ``x_local``: this rank's rows (a contiguous block, rank order = global row order).
    ``start``: a global row index (drawn from ``seed`` when None). ``stats``, when given, is
    filled with ``bytes_per_pick`` (what all ranks together sent into collectives per pick) and ``N``.

    Args:
        x_local: (N_rank, d) this rank's rows.
        n: rows to pick, 1 <= n <= N (all ranks' rows).
        start: the first pick, a global row index (None: drawn from ``seed``).
        seed: the seed of that draw.
        backend: "auto", "cpp" or "torch" (each rank's local work).
        group: the torch.distributed process group (None: the default group).
        stats: a dict to fill with communication figures, or None.

    Returns:
        GreedyResult: as :func:`fastsel.greedy`, global row indices, the same on every rank.
    """
    G = _Group(x_local, group)
    x0 = x_local
    x_local, md, update, e = _prepare(x_local, backend, G)
    n = _check_n(n, G.N)
    start = _check_start(start, G.N, seed)
    idx = torch.empty(n, dtype=torch.int64)
    d2 = torch.empty(n, dtype=md.dtype)
    pick, val = start, math.inf
    no_thr = math.inf
    for t in range(n):
        idx[t], d2[t] = pick, val
        row, _ = G.row(x_local, pick)
        if G.owner(pick) == G.rank:
            md[pick - G.off] = -1
        md, s = update(x_local, md, row[None], no_thr, G.n_local)
        if t + 1 < n:
            lb, li = float(s[0]), int(s[1])
            val, pick = G.max_then_lowest(lb, G.off + li if li >= 0 else -1)
    if stats is not None:
        total = torch.tensor([float(G.bytes)], dtype=torch.float64, device=G.dev)
        dist.all_reduce(total, group=group)
        stats.update(bytes_per_pick=float(total) / n, N=G.N, world=G.world)
    if _underflowed(G, x_local, idx, d2):  # mixed scales: rerun in float64 on the same values (exact)
        if x_local.dtype == torch.float64:
            raise _mixed_scales("x_local")
        return greedy(torch.as_tensor(x0).double(), n, start, seed=seed, backend=backend, group=group,
                      stats=stats)
    return GreedyResult(idx, unscale(d2.sqrt(), e))


def threshold_decay(x_local: torch.Tensor, n: int, start: Optional[int] = None, tau: Optional[float] = None,
                    alpha: float = DEFAULT_ALPHA, *, decay: str = "empty-pass", order: str = "random",
                    seed: int = DEFAULT_SEED, backend: str = "auto", group=None) -> ThresholdResult:
    """Threshold Decay Filter (Algorithm 2) over a row-sharded pool; same result as the
    single-process op, in the same scan order (``order``, ``seed``) and with the same default tau
    (the largest distance from the first pick, :func:`fastsel.default_tau`).

    Args:
        x_local: (N_rank, d) this rank's rows.
        n: rows to accept, 1 <= n <= N.
        start: the first accepted row, a global index (None: drawn from ``seed``).
        tau: the initial threshold (None: data-derived).
        alpha: the decay factor, in (0, 1).
        decay: "empty-pass" or "every-pass".
        order: "random" or "index".
        seed: the seed of the start and the scan order.
        backend: "auto", "cpp" or "torch".
        group: the torch.distributed process group (None: the default group).

    Returns:
        ThresholdResult: as :func:`fastsel.threshold_decay`, the same on every rank.
    """
    G = _Group(x_local, group)
    x0, tau_in = x_local, tau
    x_local, md, update, e = _prepare(x_local, backend, G)
    n = _check_n(n, G.N)
    start = _check_start(start, G.N, seed)
    alpha, every_pass = check_threshold_args(decay, order, alpha)
    if tau is not None and not (math.isfinite(float(tau)) and float(tau) > 0):
        raise FastselError(f"tau must be finite and > 0, got {tau}")
    # scan position of each local row: its place in the global scan order
    if order == "random":
        perm = scan_order(G.N, seed)
        spos = torch.argsort(perm)[G.off:G.off + G.n_local].to(G.dev)
    else:
        perm = None
        spos = torch.arange(G.off, G.off + G.n_local, device=G.dev)
    idx = torch.empty(n, dtype=torch.int64)
    d2 = torch.empty(n, dtype=md.dtype)
    tau_at = torch.empty(n, dtype=torch.float64)
    pos_at = torch.empty(n, dtype=torch.int64)
    t, pos, added, filled = 0, 0, False, 0

    def row_at(q):  # global row at scan position q
        return q if perm is None else int(perm[q])

    def accept(i, q):
        nonlocal md, t
        mine = G.owner(i) == G.rank
        row, v = G.row(x_local, i, float(md[i - G.off]) if mine else 0.0)
        idx[t], d2[t], tau_at[t], pos_at[t] = i, v, tau, q
        t += 1
        if mine:
            md[i - G.off] = -1
        md, _ = update(x_local, md, row[None], math.inf, G.n_local)

    q0 = start if perm is None else int(torch.argsort(perm)[start])
    if tau is None:  # the largest distance from the first pick, in float64 (the single-process value)
        row, _ = G.row(x_local, start)
        tau = _tau_from_d2(G.max_value(max_d2_from(x_local, row) if G.n_local else -1.0),
                           row.shape[-1], x_local.dtype)
    else:
        tau = math.ldexp(float(tau), e)  # the shard is scaled by 2**e
    tau, tau0 = float(tau), float(tau)
    accept(start, q0)
    while t < n:
        if pos == 0:
            best = G.max_value(float(md.max()) if G.n_local else -1.0)
            if best <= 0.0:  # only duplicates of selected rows remain: fill in scan order
                left = md >= 0
                rest = G.all_indices(spos[left].cpu())
                for q in rest.sort().values.tolist()[: n - t]:
                    idx[t], d2[t], tau_at[t], pos_at[t] = row_at(q), 0.0, tau, q
                    t += 1
                    filled += 1
                break
            while best <= tau * tau:
                tau *= alpha
        hit = (md >= 0) & (md.double() > tau * tau) & (spos >= pos) if G.n_local else None
        mine = int(spos[hit].min()) if G.n_local and bool(hit.any()) else -1
        q = G.min_index(mine)
        if q >= 0:
            added, pos = True, q + 1
            accept(row_at(q), q)
            continue
        if every_pass or not added:
            tau *= alpha
        pos, added = 0, False
    if _underflowed(G, x_local, idx, d2, tau_at):  # mixed scales (see greedy)
        if x_local.dtype == torch.float64:
            raise _mixed_scales("x_local")
        return threshold_decay(torch.as_tensor(x0).double(), n, start, tau_in, alpha, decay=decay,
                               order=order, seed=seed, backend=backend, group=group)
    passes, decays = threshold_counts(pos_at, tau_at, tau0, tau, alpha, every_pass, filled)
    return ThresholdResult(idx, unscale(d2.sqrt(), e), unscale(tau_at, e), math.ldexp(tau, -e), filled,
                           math.ldexp(tau0, -e), passes, decays, order)


def nn(query: torch.Tensor, ref_local: torch.Tensor, k: int = 1, *, exclude_self: bool = False,
       backend: str = "auto", group=None) -> NNResult:
    """Exact k-NN of ``query`` (the same on every rank) among a row-sharded ref; every rank
    gets the global answer (global ref indices, ties lowest). ``exclude_self``: the query is
    the whole pool in global order, and row i never matches itself.

    Args:
        query: (Q, d) query rows, the same on every rank.
        ref_local: (R_rank, d) this rank's reference rows.
        k: neighbours per query row.
        exclude_self: the query is the whole pool; skip each row's own entry.
        backend: "auto", "cpp" or "torch".
        group: the torch.distributed process group (None: the default group).

    Returns:
        NNResult: (Q, k) distances and global indices, the same on every rank.
    """
    G = _Group(ref_local, group)
    query = as_tensor(query, "query")
    avail = G.N - int(exclude_self)
    if not 1 <= k <= avail:
        raise FastselError(f"k must be in [1, {avail}], got {k}")
    if exclude_self and query.shape[0] != G.N:
        raise FastselError(f"exclude_self needs the whole pool as query ({G.N} rows), got {query.shape[0]}")
    Q = query.shape[0]
    kk = min(k + int(exclude_self), G.n_local)
    acc = reference.acc_dtype(query.dtype)
    cand_d = torch.full((Q, k + 1), math.inf, dtype=acc)
    cand_e = torch.full((Q, k + 1), math.inf, dtype=torch.float64)
    cand_i = torch.full((Q, k + 1), _BIG, dtype=torch.int64)
    if kk > 0:
        r = local_nn(query, ref_local, k=kk, backend=backend)
        gi = r.indices + G.off
        e = ((query.double()[:, None, :] - ref_local.double()[r.indices]) ** 2).sum(-1)  # float64 order key
        if exclude_self:
            self_hit = gi == torch.arange(Q)[:, None]
            e = e.masked_fill(self_hit, math.inf)
            gi = gi.masked_fill(self_hit, _BIG)
        cand_d[:, :kk], cand_e[:, :kk], cand_i[:, :kk] = r.distances, e, gi
    bufs = [[torch.empty_like(t) for _ in range(G.world)] for t in (cand_d, cand_e, cand_i)]
    for b, t in zip(bufs, (cand_d, cand_e, cand_i)):
        dist.all_gather(b, t, group=group)
    D, E, I = (torch.cat(b, 1) for b in bufs)
    # order by (float64 distance, global index)
    I_sorted, o1 = torch.sort(I, dim=1)
    E, D = torch.gather(E, 1, o1), torch.gather(D, 1, o1)
    o2 = torch.sort(E, dim=1, stable=True).indices[:, :k]
    return NNResult(torch.gather(D, 1, o2), torch.gather(I_sorted, 1, o2))


# ------------------------------------------------------------------ a pool file selected under torchrun

class ShardedSelection(NamedTuple):
    """What :func:`select_sharded` gives every rank: the picks (rank 0 writes them), the selector's
    facts, the selection's seconds, this rank and the world size."""
    indices: torch.Tensor
    info: dict
    seconds: float
    rank: int
    world: int


def pool_fingerprint(path: str, arr) -> list:
    """What every rank must agree on before a sharded selection of a pool file.

    Args:
        path: the pool file.
        arr: the (N, d) array read from it (a memory map: only its shape and dtype are read).

    Returns:
        [N, d, dtype, file size, hash of the first and last 64 KiB], as integers.
    """
    size = os.path.getsize(path)
    h = hashlib.blake2b(digest_size=7)
    with open(path, "rb") as f:
        h.update(f.read(65536))
        if size > 65536:
            f.seek(max(65536, size - 65536))
            h.update(f.read(65536))
    dt = int.from_bytes(hashlib.blake2b(str(arr.dtype).encode(), digest_size=6).digest(), "little")
    return [int(arr.shape[0]), int(arr.shape[1]), dt, int(size), int.from_bytes(h.digest(), "little")]


def agree_on_pool(path: str, arr) -> None:
    """Every rank must read the same pool (N, d, dtype, size and a hash of the file's ends), else
    all ranks stop with one line (no rank waits in a collective, no output is written). A collective:
    every rank of the default group calls it.

    Args:
        path: the pool file this rank read.
        arr: the (N, d) array read from it.

    Returns:
        None, on every rank, when they agree.

    Raises:
        fastsel.errors.DataError: the ranks read different pools (on every rank).
    """
    mine = torch.tensor(pool_fingerprint(path, arr), dtype=torch.int64)
    if torch.cuda.is_available() and dist.get_backend() == "nccl":
        mine = mine.cuda()
    every = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    rows = [e.cpu().tolist() for e in every]
    if any(r != rows[0] for r in rows):
        desc = "; ".join(f"rank {k}: N={r[0]} d={r[1]} {r[3]} bytes" for k, r in enumerate(rows))
        raise DataError(f"ranks disagree on the pool {path} ({desc}): every rank must read the same file")


def select_sharded(selector, arr, path: str, n: int, *, start: Optional[int] = None, seed: int = DEFAULT_SEED,
                   backend: str = "auto", options: Optional[dict] = None) -> ShardedSelection:
    """Under torchrun (``fastsel select``): the ranks agree they read the same pool file, each takes
    only its row slice of the (memory-mapped) ``arr`` read from ``path``, and ``selector.sharded``
    (a registered :class:`fastsel.selectors.Selector` that has one) picks ``n`` rows over the group.

    Args:
        selector: the registered selector (``fastsel.selectors.get_selector(method)``).
        arr: the (N, d) pool as read from ``path`` (a memory map: only this rank's rows are read).
        path: the pool file (its fingerprint is what the ranks compare).
        n: rows to pick.
        start: the first pick (None: drawn from ``seed``), as for the single-process selector.
        seed: the selector's seed.
        backend: "auto", "cpp" or "torch".
        options: the selector's own options (a dict, None: none), passed to it as keywords.

    Returns:
        ShardedSelection, on every rank (the same picks; rank 0 is the one that writes them).

    Raises:
        fastsel.errors.DataError: the ranks read different pools.
    """
    with _dist.group("auto"):
        rank, world = dist.get_rank(), dist.get_world_size()
        agree_on_pool(path, arr)
        lo, hi = shard_rows(arr.shape[0], rank, world)
        x_local = torch.from_numpy(np.array(arr[lo:hi]))  # the ops check it; all ranks fail together
        t0 = time.perf_counter()
        out = selector.sharded(x_local, n, start=start, seed=seed, backend=backend, **(options or {}))
        idx, info = out if isinstance(out, tuple) else (out, {})
        return ShardedSelection(idx, info, time.perf_counter() - t0, rank, world)
