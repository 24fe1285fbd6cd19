"""Typed Python API of the fastsel ops, the backend choice and the fake kernels.

``backend``: ``"cpp"`` (the compiled kernels; an error when they are missing),
``"torch"`` (the pure-PyTorch versions in :mod:`fastsel.reference`) or
``"auto"`` (compiled when available for the tensor's device, else the fallback,
saying once why).
"""
from __future__ import annotations

import math
import threading
import warnings
from typing import Callable, NamedTuple, Optional

import numpy as np
import torch

from . import _backend, reference
from .errors import ArgumentTypeError, BackendUnavailable, FastselError

BACKENDS = ("auto", "cpp", "torch")
ORDERS = ("random", "index")
DEFAULT_ALPHA = 0.9
DEFAULT_SEED = 0
_TAU_SAMPLE = 4096


class GreedyResult(NamedTuple):
    indices: torch.Tensor    # (n,) int64, pick order
    distances: torch.Tensor  # (n,) min distance of each pick when picked (inf for the first)


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


class NNResult(NamedTuple):
    distances: torch.Tensor  # (Q, k) ascending Euclidean distances
    indices: torch.Tensor    # (Q, k) int64 rows of ref


# --------------------------------------------------------------------------- inputs

_EXACT_INT = 2 ** 53  # integers up to this magnitude are exact in float64


def as_tensor(x, name: str = "x") -> torch.Tensor:
    """A 2-D float tensor from a tensor or array; integers become float64, exactly (|value| <= 2^53,
    else an error: float64 would round them)."""
    if isinstance(x, np.ndarray):
        if not x.dtype.isnative:
            x = x.astype(x.dtype.newbyteorder("="))
        if x.dtype.kind in "iub":
            _check_int_range(x, name)
            x = x.astype(np.float64)
        elif x.dtype.kind != "f" or x.dtype.itemsize > 8:
            raise FastselError(f"{name} must hold float16/32/64 or integer numbers, got dtype {x.dtype}")
        with warnings.catch_warnings():  # read-only memmaps: fastsel never writes to its input
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            x = torch.from_numpy(np.ascontiguousarray(x))
    elif not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got {type(x).__name__}")
    elif x.device.type == "meta":
        raise FastselError(f"{name} is a meta tensor (a shape without data): pass a tensor with values")
    elif x.layout != torch.strided:
        raise FastselError(f"{name} is a {x.layout} tensor: pass a dense one ({name}.to_dense())")
    if x.is_complex():
        raise ArgumentTypeError(f"{name} must hold real numbers, got {x.dtype}")
    if not x.is_floating_point():
        if x.dtype != torch.bool and x.numel():
            _check_int_range(x, name)
        x = x.to(torch.float64)
    if x.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        raise FastselError(f"{name} must be float32, float64, float16 or bfloat16, got {x.dtype}")
    if x.dim() != 2:
        raise FastselError(f"{name} must be a 2-D array (N, d), got {x.dim()}-D with shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise FastselError(f"{name} is empty (shape {tuple(x.shape)})")
    # One streaming read: a NaN or Inf anywhere makes the sum non-finite. Only a
    # non-finite sum (or an overflow of finite values) needs the element-wise check.
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    if not bool(torch.isfinite(x.sum(dtype=acc))):
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            row = int(torch.nonzero(bad.any(1))[0])
            raise FastselError(f"{name} holds NaN or Inf values (first in row {row + _row_offset(name)})")
    return x.contiguous()


def _row_offset(name: str) -> int:
    """Rows of a shard are named "rows LO:HI of ...": report global row numbers."""
    if name.startswith("rows ") and ":" in name:
        try:
            return int(name[5:name.index(":")])
        except ValueError:
            return 0
    return 0


def _check_int_range(x, name: str) -> None:
    if isinstance(x, np.ndarray):
        if x.dtype.kind == "b" or not x.size:
            return
        lo, hi = int(x.min()), int(x.max())
    else:
        lo, hi = int(x.min()), int(x.max())
    if hi > _EXACT_INT or lo < -_EXACT_INT:
        v = hi if hi > _EXACT_INT else lo
        raise FastselError(f"{name} holds the integer {v}, beyond 2^53: float64 cannot hold it exactly "
                           "(rescale or convert the features to float first)")


# squared distances must stay inside the accumulation dtype's normal range: data whose largest
# magnitude falls outside these bounds is scaled by a power of two (exact) before the kernels run
_SAFE_RANGE = {torch.float64: (2.0 ** -400, 2.0 ** 400)}
_SAFE_RANGE_F32 = (2.0 ** -30, 2.0 ** 40)


def pow2_scale(*xs: torch.Tensor) -> int:
    """The exponent k such that the data times 2**k has its largest magnitude in [0.5, 1), when the
    data's squared distances would overflow or underflow the accumulation dtype; 0 otherwise.
    float16 data never needs it (accumulated in float32)."""
    xs = [x for x in xs if x.numel() and x.dtype != torch.float16]
    if not xs:
        return 0
    return scale_exponent(max(magnitude(x) for x in xs), xs[0].dtype)


def magnitude(x: torch.Tensor) -> float:
    """The largest |value| of x (0 for an empty tensor)."""
    if not x.numel():
        return 0.0
    lo, hi = torch.aminmax(x)
    return max(abs(float(lo)), abs(float(hi)))


def scale_exponent(m: float, dtype: torch.dtype) -> int:
    """:func:`pow2_scale` of data whose largest magnitude is m."""
    if dtype == torch.float16:
        return 0
    a, b = _SAFE_RANGE.get(dtype, _SAFE_RANGE_F32)
    if m == 0.0 or a <= m <= b:
        return 0
    return -math.frexp(m)[1]


def ldexp(x: torch.Tensor, k: int) -> torch.Tensor:
    """x * 2**k in x's dtype, exactly (computed in float64, in steps that stay in range)."""
    if k == 0:
        return x
    y = x.double()
    while k:
        step = max(-1000, min(1000, k))
        y = y * math.ldexp(1.0, step)
        k -= step
    return y.to(x.dtype)


def unscale(v: torch.Tensor, k: int) -> torch.Tensor:
    """Distances computed on data scaled by 2**k, back in the data's units (float64 when k != 0:
    the accumulation dtype may not hold them)."""
    return v if k == 0 else ldexp(v.double(), -k)


SEED_MAX = 2 ** 32 - 1  # torch's CPU generator keeps 32 bits of a seed: larger ones would collide


def check_int(v, name: str, lo: Optional[int] = None, hi: Optional[int] = None) -> int:
    """``v`` as a Python int: an int, a numpy/torch integer or a whole float; a bool, a string, a
    fractional or non-finite number is refused (ArgumentTypeError / FastselError naming ``name``)."""
    if isinstance(v, torch.Tensor) and v.numel() == 1 and v.dim() == 0 and v.device.type != "meta":
        v = v.item()
    if isinstance(v, (bool, np.bool_)):
        raise ArgumentTypeError(f"{name} must be an integer, got the bool {v!r}")
    if isinstance(v, (int, np.integer)):
        v = int(v)
    elif isinstance(v, (float, np.floating)):
        if not math.isfinite(v) or v != math.floor(v):
            raise FastselError(f"{name} must be a whole number, got {v!r}")
        v = int(v)
    else:
        raise ArgumentTypeError(f"{name} must be an integer, got {type(v).__name__} {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise FastselError(f"{name} must be in {rng}, got {v}")
    return v


def check_real(v, name: str) -> float:
    """``v`` as a float: a Python/numpy/torch real number; a bool or a string is refused."""
    if isinstance(v, torch.Tensor) and v.numel() == 1 and v.dim() == 0 and v.device.type != "meta":
        v = v.item()
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise ArgumentTypeError(f"{name} must be a number, got {type(v).__name__} {v!r}")
    return float(v)


def check_seed(seed, name: str = "seed") -> int:
    """A seed in [0, 2^32 - 1] (torch's CPU generator keeps 32 bits: 1 and 2^32 + 1 would collide)."""
    if seed is None:
        raise ArgumentTypeError(f"{name} must be an integer in [0, 2^32 - 1], got None")
    try:
        return check_int(seed, name, 0, SEED_MAX)
    except FastselError as e:
        if isinstance(e, ArgumentTypeError):
            raise
        raise FastselError(f"{name} must be an integer in [0, 2^32 - 1], got {seed!r}") from None


def _check_n(n: int, N: int) -> int:
    n = check_int(n, "n")
    if not 1 <= n <= N:
        raise FastselError(f"n must be in [1, N={N}], got {n}")
    return n


def draw_start(N: int, seed: int = DEFAULT_SEED) -> int:
    """The start index used when the caller gives none: drawn in Python from a seeded generator."""
    return _draw_start(N, check_seed(seed))


def _draw_start(N: int, seed: int) -> int:
    g = torch.Generator().manual_seed(int(seed))
    return int(torch.randint(N, (1,), generator=g))


def _check_start(start: Optional[int], N: int, seed: int) -> int:
    seed = check_seed(seed)
    if start is None:
        return _draw_start(N, seed)
    start = check_int(start, "start")
    if not 0 <= start < N:
        raise FastselError(f"start must be in [0, N={N}), got {start}")
    return start


def _impl(op: str, x: torch.Tensor, backend: str):
    if backend not in BACKENDS:
        raise FastselError(f"backend must be one of {BACKENDS}, got {backend!r}")
    dev = x.device.type
    if backend == "torch":
        return getattr(reference, op), "torch"
    if _backend.has_kernel(op, dev):
        return getattr(torch.ops.fastsel, op), "cpp"
    reason = (f"extension not loaded: {_backend.why_unavailable()}" if not _backend.loaded()
              else f"no compiled {dev} kernel for fastsel::{op}")
    if backend == "cpp":
        raise BackendUnavailable(f"backend 'cpp' is unavailable for {op} on {dev} ({reason}): "
                                 "use backend auto or torch")
    _backend.warn_once(op, reason)
    return getattr(reference, op), "torch"


def resolve_backend(op: str, device: str = "cpu", backend: str = "auto") -> str:
    """Which backend ``backend`` resolves to for ``op`` on ``device`` ('cpp' or 'torch')."""
    return _impl(op, torch.empty(0, device=device), backend)[1]


def _chunks(n: int, progress, parts: int = 100) -> list:
    """Pick counts per kernel call: one call, or about ``parts`` when progress is reported."""
    if progress is None or n < 2 * parts:
        return [n]
    step = max(1, n // parts)
    return [min(step, n - a) for a in range(0, n, step)]


def _resumable(call, n: int, progress, parts: int) -> list:
    """Run a resumable op: one call, or about ``parts`` calls that each continue from the
    previous call's outputs (state) when progress is reported. Returns every call's outputs.
    Multi-pick / chunked modes restart some set-up per call, hence fewer parts for them."""
    outs = []
    for k in _chunks(n, progress, parts):
        outs.append(call(k, outs[-1] if outs else None))
        if progress is not None:
            progress(k)
    return outs


def _resolved(op: str, mode: str, N: int, n: int) -> str:
    """The CPU kernel's mode for this call: "auto" as the kernel resolves it (fastsel::_auto_mode)."""
    return torch.ops.fastsel._auto_mode(op, N, n) if mode == "auto" else mode


def _watched(call, n: int, progress, poll: float = 0.25):
    """One call of the CPU greedy kernel in a worker thread (the op releases the GIL), with
    ``progress`` fed from the kernel's own pick counter: a multi-pick call keeps its set-up
    (centred copy, pruning blocks) for the whole selection instead of restarting per part."""
    box = {}

    def work():
        try:
            box["out"] = call()
        except BaseException as e:  # re-raised in the caller's thread
            box["err"] = e
    th = threading.Thread(target=work, name="fastsel-greedy", daemon=True)
    th.start()
    done = 0
    th.join(poll)  # the kernel resets its counter first thing; read it only after
    while th.is_alive():
        k = min(n - 1, int(torch.ops.fastsel._greedy_stats()[1]))
        if k > done:
            progress(k - done)
            done = k
        th.join(poll)
    if "err" in box:
        raise box["err"]
    progress(n - done)
    return box["out"]


# --------------------------------------------------------------------------- mixed scales

# A pick's squared distance below this (in the accumulation dtype, after pow2_scale) may have lost
# digits to underflow: the pool mixes scales (a row of size 1 beside rows 1e-25 apart) and float32
# squares of their differences are subnormal or 0, so distinct rows look like duplicates.
_TINY_D2 = {torch.float32: 2.0 ** -100, torch.float64: 2.0 ** -1000}


def _underflowed(x, idx: torch.Tensor, d2: torch.Tensor, tau_at: Optional[torch.Tensor] = None) -> bool:
    """True when the picks may be wrong because squared distances underflowed: a pick's squared
    distance (or a threshold in force) positive but below _TINY_D2, or a pick at distance 0 while
    some unpicked row is no exact duplicate of the rows picked before it (its true distance is > 0:
    float32 squared it to 0). ``x``: the (N, d) pool, a tensor or a numpy array; ``d2`` in the
    accumulation dtype (float32 or float64). Costs one look at
    the picks, and one pass over the pool only when a pick at distance 0 is there."""
    verdict = _underflow_triage(d2, tau_at)
    if isinstance(verdict, bool):
        return verdict
    return not _only_duplicates_left(x, idx[:verdict].cpu().numpy())


def _underflow_triage(d2: torch.Tensor, tau_at: Optional[torch.Tensor] = None):
    """What the picks' distances alone say (shared by the sharded check): True (underflowed), False
    (fine), or an int k -- pick k is at distance 0, and whether the pool holds only duplicates of
    picks 0..k-1 decides."""
    f64 = d2.dtype == torch.float64  # d2 comes in the accumulation dtype
    tiny = _TINY_D2[torch.float64 if f64 else torch.float32]
    d2 = d2[1:].double().cpu()
    if tau_at is not None and not f64 and bool((tau_at[1:].double().cpu() ** 2 < tiny).any()):
        return True
    small = d2 < tiny
    if not bool(small.any()):
        return False
    if bool((small & (d2 > 0)).any()):
        return True
    return int(torch.nonzero(d2 == 0)[0]) + 1


def _row_keys(rows) -> np.ndarray:
    """One bytes key per row: equal keys for equal rows (-0.0 == 0.0), in float64."""
    if isinstance(rows, torch.Tensor):
        rows = rows.double().cpu().numpy()
    rows = np.ascontiguousarray(np.asarray(rows, dtype=np.float64) + 0.0)
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()


def _only_duplicates_left(x, chosen: np.ndarray, chunk: int = 65536) -> bool:
    """Every row of ``x`` equals (exactly) one of the rows ``chosen``."""
    keys = _row_keys(x[torch.from_numpy(chosen)] if isinstance(x, torch.Tensor) else x[np.sort(chosen)])
    return all(bool(np.isin(_row_keys(x[a:a + chunk]), keys).all()) for a in range(0, x.shape[0], chunk))


def _mixed_scales(name: str) -> FastselError:
    return FastselError(f"{name}: distances between distinct rows underflow float64 (the pool mixes rows of very "
                        "different sizes, e.g. a row of size 1 beside rows about 1e-160 apart): centre or "
                        "rescale the features so that neighbouring rows differ by more than ~1e-150 of the "
                        "largest value")


# --------------------------------------------------------------------------- ops

GREEDY_MODES = ("auto", "single", "multi")
THRESHOLD_MODES = ("auto", "single", "chunked", "lazy")


def greedy(x, n: int, start: Optional[int] = None, *, seed: int = DEFAULT_SEED, backend: str = "auto",
           mode: str = "auto", progress: Optional[Callable[[int], None]] = None) -> GreedyResult:
    """Greedy selection (Algorithm 1): farthest-point sampling, exact.

    Repeatedly adds the row whose min distance to the selected set is largest;
    ties go to the lowest index. ``start`` is the first pick (drawn from
    ``seed`` when None). ``progress(k)`` is called with the number of picks made.
    ``mode``: "single" reads the pool once per pick; "multi" makes exact multi-pick
    passes (a GEMM per pass, same picks bit for bit; exact block pruning on clustered
    pools); "auto" uses multi for large pools. ``fastsel.greedy`` (this op behind the set
    dispatch of :mod:`fastsel.sets`) also takes ``x`` of shape (B, N, d): it selects in each of B
    sets (``fastsel.sets.greedy_sets``: ``n``/``start`` may be per set; masks there).

    Args:
        x: the pool, (N, d) (or (B, N, d) sets): a tensor or array of float32 / float64 / float16 /
            bfloat16 (integers become float64 exactly); a CUDA tensor runs the CUDA kernels.
        n: how many rows to pick, 1 <= n <= N.
        start: the first pick, a row index; None draws it from ``seed``.
        seed: the seed of that draw, an integer in [0, 2**32 - 1].
        backend: "auto", "cpp" (the compiled kernels) or "torch" (the PyTorch fallback).
        mode: "auto", "single" or "multi" (see above; same picks).
        progress: called with the number of picks made so far.

    Returns:
        GreedyResult: ``indices`` (n,) int64 in pick order; ``distances`` (n,) each pick's min
        distance to the earlier picks when picked (inf for the first), in x's float dtype.

    Raises:
        FastselError: NaN or infinite values, n outside [1, N], an unknown mode or backend.
        TypeError: a fractional, bool or string ``n``, ``start`` or ``seed``.
    """
    if mode not in GREEDY_MODES:
        raise FastselError(f"mode must be one of {GREEDY_MODES}, got {mode!r}")
    x = x0 = as_tensor(x)
    N = x.shape[0]
    n = _check_n(n, N)
    start = _check_start(start, N, seed)
    fn, be = _impl("greedy", x, backend)
    e = pow2_scale(x)
    x = ldexp(x, e)
    watched = progress is not None and be == "cpp" and x.device.type == "cpu"
    if watched and _resolved("greedy", mode, N, n) == "multi":
        outs = [_watched(lambda: fn(x, n, start, None, mode), n, progress)]
    else:
        outs = _resumable(lambda k, prev: fn(x, k, start if prev is None else -1, None if prev is None else prev[2],
                                             mode), n, progress, 100 if mode == "single" else 10)
    idx, d2 = torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    if x.dtype != torch.float16 and _underflowed(x, idx, d2):  # mixed scales: float32 cannot tell these rows apart
        if x.dtype == torch.float64:
            raise _mixed_scales("x")
        return greedy(x0.double(), n, start, seed=seed, backend=backend, mode=mode)  # exact on the same values
    return GreedyResult(idx, unscale(d2.sqrt(), e))


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
        facts (``tau``, ``tau0``, ``passes``, ``decays``, ``n_filled``, ``order``).

    Raises:
        FastselError: NaN or infinite values, n outside [1, N], tau <= 0, alpha outside (0, 1).
        TypeError: a string ``tau`` or ``alpha``; a fractional, bool or string ``n``/``start``/``seed``.
    """
    if mode not in THRESHOLD_MODES:
        raise FastselError(f"mode must be one of {THRESHOLD_MODES}, got {mode!r}")
    x = x0 = as_tensor(x)
    N = x.shape[0]
    n = _check_n(n, N)
    start = _check_start(start, N, seed)
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
        if be == "cpp":
            scan = perm  # the C++ op reads row perm[p] at position p (CPU lazy: no permuted copy of the pool)
        else:
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


def nn(query, ref=None, k: int = 1, exclude_self: bool = False, *, backend: str = "auto") -> NNResult:
    """Exact k nearest neighbours of each query row among ``ref`` rows (``ref=None``: the
    query set itself, with ``exclude_self=True`` to skip each row's own entry).

    Distances ascend; ties go to the lowest ref index. Memory stays bounded
    (blocked GEMM with a fused top-k); candidates are re-checked in float64.

    Args:
        query: (Q, d) rows whose neighbours are wanted.
        ref: (R, d) rows to search; None searches ``query`` itself.
        k: neighbours per query row, 1 <= k <= R (R - 1 with ``exclude_self``).
        exclude_self: with ``ref=None``, skip each row's own entry.
        backend: "auto", "cpp" or "torch".

    Returns:
        NNResult: ``distances`` (Q, k) ascending Euclidean distances and ``indices`` (Q, k) int64
        rows of ``ref``.

    Raises:
        FastselError: NaN or infinite values, a dimension mismatch, k out of range.
    """
    query = as_tensor(query, "query")
    ref = query if ref is None else as_tensor(ref, "ref")
    if query.shape[1] != ref.shape[1]:
        raise FastselError(f"dimension mismatch: query has d={query.shape[1]}, ref has d={ref.shape[1]}")
    if ref.dtype != query.dtype:
        ref = ref.to(torch.promote_types(ref.dtype, query.dtype))
        query = query.to(ref.dtype)
    k = check_int(k, "k")
    fn, _ = _impl("nn", query, backend)
    e = pow2_scale(query, ref)
    q = ldexp(query, e)
    d, i = fn(q, q if ref is query else ldexp(ref, e), k, bool(exclude_self))
    return NNResult(unscale(d, e), i)


# --------------------------------------------------------------------------- torch.compile support

if _backend.loaded():
    def _acc(x):
        return reference.acc_dtype(x.dtype)

    @torch.library.register_fake("fastsel::greedy")
    def _greedy_fake(x, n, start, min_d2=None, mode="auto"):
        return x.new_empty(n, dtype=torch.int64), x.new_empty(n, dtype=_acc(x)), x.new_empty(x.shape[0], dtype=_acc(x))

    @torch.library.register_fake("fastsel::threshold_decay")
    def _threshold_fake(x, n, start, tau, alpha, every_pass, min_d2=None, state=None, mode="auto", order=None):
        return (x.new_empty(n, dtype=torch.int64), x.new_empty(n, dtype=_acc(x)), x.new_empty(n, dtype=torch.float64),
                x.new_empty(x.shape[0], dtype=_acc(x)), x.new_empty(4, dtype=torch.float64))

    @torch.library.register_fake("fastsel::nn")
    def _nn_fake(query, ref, k, exclude_self=False):
        return query.new_empty(query.shape[0], k, dtype=_acc(query)), query.new_empty(query.shape[0], k, dtype=torch.int64)

    @torch.library.register_fake("fastsel::update_min_d2")
    def _update_fake(x, min_d2, centres, thr, start_from):
        return x.new_empty(x.shape[0], dtype=_acc(x)), x.new_empty(3, dtype=torch.float64)

    @torch.library.register_fake("fastsel::greedy_sets")
    def _greedy_sets_fake(x, ptr, n, start, total, mode="auto"):
        return x.new_empty(total, dtype=torch.int64), x.new_empty(total, dtype=_acc(x))

    @torch.library.register_fake("fastsel::_greedy_stats")
    def _stats_fake():
        return torch.empty(4, dtype=torch.int64)

    @torch.library.register_fake("fastsel::_stream_read")
    def _stream_fake(x):
        return x.new_empty((), dtype=torch.float64)
