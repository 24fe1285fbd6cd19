"""The Threshold Decay Filter (Algorithm 2) and its data-derived initial threshold."""
from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional

import torch

from .. import _backend
from ..errors import FastselError
from ._dispatch import _impl, _mixed_scales, _resolved, _resumable, _underflowed, _watched
from ._inputs import (
    DEFAULT_ALPHA,
    DEFAULT_SEED,
    ORDERS,
    _check_call,
    _check_start,
    as_tensor,
    check_real,
    check_seed,
    ldexp,
    pow2_scale,
    unscale,
)


class ThresholdResult(NamedTuple):
    indices: torch.Tensor    # (n,) int64, acceptance order
    distances: torch.Tensor  # (n,) min distance at acceptance (inf first, 0 for filled rows)
    tau_at: torch.Tensor     # (n,) float64 threshold in force at acceptance
    tau: float               # threshold when the selection ended
    n_filled: int            # rows filled in scan order (only duplicates were left)
    tau0: float = math.nan   # initial threshold
    passes: int = 0          # scans of the candidates Algorithm 2 makes (provably empty ones counted, not run)
    decays: int = 0          # times tau was multiplied by alpha
    order: str = "index"     # scan order: "random" (seeded permutation) or "index"

    def info(self) -> dict:
        """The run's threshold facts (the keys ``fastsel select --json`` and the loop record)."""
        return {"tau0": self.tau0, "tau_end": self.tau, "passes": self.passes, "decays": self.decays,
                "n_filled": self.n_filled, "order": self.order}


THRESHOLD_MODES = ("auto", "single", "chunked", "lazy")


def scan_order(N: int, seed: int = DEFAULT_SEED) -> torch.Tensor:
    """The threshold filter's default scan order: a permutation of the N rows drawn from ``seed``
    (a CPU generator seeded with ``seed``; the start index is its first draw, the permutation
    the next). The same on every backend, device and rank."""
    g = torch.Generator().manual_seed(check_seed(seed))
    torch.randint(N, (1,), generator=g)  # the start draw (draw_start)
    return torch.randperm(N, generator=g)


def default_tau(x, start: Optional[int] = None, *, seed: int = DEFAULT_SEED, backend: str = "auto") -> float:
    """Data-derived initial threshold of :func:`threshold_decay`: the largest distance from the
    first pick (``start``, drawn from ``seed`` when None) to any row, raised by the kernels'
    rounding bound on a squared distance (relative 4 (d + 8) u: about 1e-4 for float32 data at
    d = 384) so that no backend's computed distance of the farthest row exceeds it.

    Why: no row is farther from the selected set than that, so the filter begins where greedy
    selection does and tau decays (by alpha) before each wider-spaced layer is accepted -- the
    filter is a soft greedy whose closeness to greedy alpha controls (Appendix C.1, G.2), on any
    scale of features. A tau below the pool's spacing would fill the set in one pass and make
    alpha irrelevant ("first come, first kept"). 1.0 when every row equals the first pick.
    Computed in float64 (the same value on every backend, device and shard); one read of the pool.

    Args:
        x: (N, d) pool.
        start: the first pick (None: drawn from ``seed``, as :func:`threshold_decay` draws it).
        seed: the seed of that draw.
        backend: "auto", "cpp" or "torch".

    Returns:
        float: the initial threshold (> 0).
    """
    x = as_tensor(x)
    N = x.shape[0]
    start = _check_start(start, N, seed)
    e = pow2_scale(x)
    return math.ldexp(_default_tau_scaled(ldexp(x, e), start), -e)


def _default_tau_scaled(x: torch.Tensor, start: int) -> float:
    return _tau_from_d2(max_d2_from(x, x[start]), *x.shape[1:], x.dtype)


def max_d2_from(x: torch.Tensor, c: torch.Tensor, chunk: int = 16384) -> float:
    """max_i sum_j (x_ij - c_j)^2 in float64: the same value on every backend, device and shard
    (a row's sum does not depend on which rows are beside it); -1 for no rows."""
    c = c.double()
    best = -1.0
    for a in range(0, x.shape[0], chunk):
        blk = x[a:a + chunk].double() - c
        best = max(best, float((blk * blk).sum(1).max()))
    return best


def _tau_from_d2(best_d2: float, d: int = 1, dtype: torch.dtype = torch.float64) -> float:
    """tau0 from the largest squared distance, raised by the kernels' rounding bound on a squared
    distance (4 (d + 8) u, u of the accumulation dtype): every backend computes the farthest row's
    distance in its own summation order, and one of them rounding it a unit above a bare tau0 would
    accept it ("strictly greater") where another does not. Raised, no computed distance exceeds
    tau0 on any backend, and the first pass begins, for all, with a decay."""
    u = 2.0 ** -53 if dtype == torch.float64 else 2.0 ** -24
    tau = math.sqrt(best_d2 * (1 + 4 * (d + 8) * u)) if best_d2 > 0 else 0.0
    return tau if tau > 0 and math.isfinite(tau) else 1.0


def threshold_counts(pos: torch.Tensor, tau_at: torch.Tensor, tau0: float, tau_end: float, alpha: float,
                     every_pass: bool, n_filled: int) -> tuple:
    """(passes, decays) of a finished filter run, from its accepts' scan positions and thresholds.

    decays: tau_end = tau0 * alpha**decays. A pass that accepts something begins at the first
    accept after the start and wherever the scan position does not rise or tau changed; every
    decay of "empty-pass" ends an empty pass; under "every-pass" every finished pass decays."""
    decays = int(round(math.log(tau_end / tau0) / math.log(alpha))) if tau_end != tau0 else 0
    m = len(pos) - int(n_filled)
    if m <= 1:
        return 0, decays
    if every_pass:
        return decays + 1, decays
    p, ta = pos[1:m].tolist(), tau_at[1:m].tolist()
    nonempty = 1 + sum(1 for a in range(1, len(p)) if p[a] <= p[a - 1] or ta[a] != ta[a - 1])
    return nonempty + decays, decays


def threshold_decay(x, n: int, start: Optional[int] = None, tau: Optional[float] = None,
                    alpha: float = DEFAULT_ALPHA, *, decay: str = "empty-pass", order: str = "random",
                    seed: int = DEFAULT_SEED, backend: str = "auto", mode: str = "auto",
                    progress: Optional[Callable[[int], None]] = None) -> ThresholdResult:
    """Threshold Decay Filter (Algorithm 2, Appendix C) as printed, exact.

    Scans the unselected rows and accepts a row whose min distance to everything accepted is
    strictly greater than ``tau``; a full pass accepting nothing multiplies ``tau`` by ``alpha``
    (``decay="every-pass"``: after every pass, as the authors' released code -- the same selection,
    since a pass at a fixed tau leaves no row for a second pass at that tau; only ``passes`` differs).
    ``order="random"`` (default) scans a permutation of the rows drawn from ``seed``
    (:func:`scan_order`), so no part of the pool is favoured by where it is stored;
    ``order="index"`` scans in row order. ``tau=None`` uses :func:`default_tau`.
    When only exact duplicates of selected rows remain, the remaining slots are filled in
    scan order (``n_filled`` says how many). ``mode``: "single" updates the pool after every
    accept, "chunked" once per 256 accepts, "lazy" brings a row up to date only when the scan
    reaches it (a pass that stops early reads only what it scanned); all give the same result bit
    for bit; "auto" is lazy for large pools on the CPU.

    Args:
        x: the pool, (N, d), as for :func:`greedy`.
        n: how many rows to accept, 1 <= n <= N.
        start: the first accepted row; None draws it from ``seed``.
        tau: the initial threshold (> 0); None uses :func:`default_tau`.
        alpha: the decay factor, 0 < alpha < 1.
        decay: "empty-pass" (the paper) or "every-pass" (the authors' code).
        order: "random" or "index" scan order.
        seed: seeds the start and the random scan order.
        backend: "auto", "cpp" or "torch".
        mode: "auto", "single", "chunked" or "lazy" (same result).
        progress: called with the number of rows accepted so far.

    Returns:
        ThresholdResult: ``indices`` (n,) int64 in acceptance order, ``distances`` (n,) min
        distance at acceptance, ``tau_at`` (n,) float64 the threshold in force, and the run's
        facts (``tau``, ``tau0``, ``passes``, ``decays``, ``n_filled``, ``order``). Distances are
        returned detached; selection is not differentiable.

    Raises:
        FastselError: NaN or infinite values, n outside [1, N], tau <= 0, alpha outside (0, 1).
        TypeError: a string ``tau`` or ``alpha``; a fractional, bool or string ``n``/``start``/``seed``.
    """
    x, N, n, start = _check_call(x, n, start, seed, mode, THRESHOLD_MODES)
    x0 = x
    alpha, every_pass = check_threshold_args(decay, order, alpha)
    start0, tau0 = start, tau
    if tau is not None:
        tau = check_real(tau, "tau")
    if tau is not None and not (math.isfinite(float(tau)) and float(tau) > 0):
        raise FastselError(f"tau must be finite and > 0, got {tau}")
    e = pow2_scale(x)  # the filter runs on x * 2**e, with tau * 2**e; results come back in x's units
    x = ldexp(x, e)
    tau = _default_tau_scaled(x, start) if tau is None else math.ldexp(float(tau), e)
    fn, be = _impl("threshold_decay", x, backend)
    perm = scan_order(N, seed) if order == "random" else None
    xs, scan = x, None  # the pool as scanned, and the scan order the kernel reads through (no copy)
    if perm is not None:  # scan in a permuted order; the kernel works in scan positions, mapped back below
        perm = perm.to(x.device)
        start = int(torch.argsort(perm)[start])
        if be == "cpp" and (x.device.type != "cuda" or _backend.cuda_kernel_enabled("threshold_scan_order")):
            scan = perm  # the C++ op reads row perm[p] at position p (no permuted copy of the pool)
        else:  # the pool gathered into scan order once (the CUDA reading-through kernel is off until verified)
            xs = x[perm]

    def call(k, prev):
        md, st = (None, None) if prev is None else (prev[3], prev[4])
        if scan is not None:
            return fn(xs, k, start if prev is None else -1, tau, alpha, every_pass, md, st, mode, scan)
        return fn(xs, k, start if prev is None else -1, tau, alpha, every_pass, md, st, mode)
    watched = progress is not None and be == "cpp" and x.device.type == "cpu"
    if watched and _resolved("threshold_decay", mode, N, n) == "lazy":
        outs = [_watched(lambda: call(n, None), n, progress)]  # a lazy call's state is not resumable
    else:
        outs = _resumable(call, n, progress, 100 if mode == "single" else 10)
    st = outs[-1][4]
    pos = torch.cat([o[0] for o in outs])
    tau_at = torch.cat([o[2] for o in outs])
    d2 = torch.cat([o[1] for o in outs])
    rows = pos if perm is None else perm[pos.to(perm.device)]
    if x.dtype != torch.float16 and _underflowed(x, rows, d2, tau_at):  # mixed scales (see greedy)
        if x.dtype == torch.float64:
            raise _mixed_scales("x")
        return threshold_decay(x0.double(), n, start0, tau0, alpha, decay=decay, order=order, seed=seed,
                               backend=backend, mode=mode)
    tau_end, filled = float(st[0]), int(st[3])
    passes, decays = threshold_counts(pos.cpu(), tau_at.cpu(), tau, tau_end, alpha, every_pass, filled)
    idx = rows.to(pos.device)
    return ThresholdResult(idx, unscale(d2.sqrt(), e), unscale(tau_at, e),
                           math.ldexp(tau_end, -e), filled, math.ldexp(tau, -e), passes, decays, order)


def check_threshold_args(decay: str, order: str, alpha: float) -> tuple:
    """(alpha, every_pass) after checking the filter's options."""
    if decay not in ("empty-pass", "every-pass"):
        raise FastselError(f"decay must be 'empty-pass' or 'every-pass', got {decay!r}")
    if order not in ORDERS:
        raise FastselError(f"order must be one of {ORDERS}, got {order!r}")
    alpha = check_real(alpha, "alpha")
    if not 0.0 < alpha < 1.0:
        raise FastselError(f"alpha must be in (0, 1), got {alpha}")
    return alpha, decay == "every-pass"
