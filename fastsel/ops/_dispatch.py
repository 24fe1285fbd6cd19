"""The backend choice (compiled kernel or PyTorch fallback), progress reporting around the
kernels, and the mixed-scales triage (a float32 run whose squared distances underflowed)."""
from __future__ import annotations

import threading
from typing import Optional

import numpy as np
import torch

from .. import _backend, reference
from ..errors import BackendUnavailable, FastselError
from ._inputs import BACKENDS


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
