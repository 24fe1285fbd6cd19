"""Argument checks shared by every op: the pool as a contiguous float tensor, integers, seeds (the
one seed range, SEED_MAX, and its check), the first pick, index lists, the choice lists of the
ops' options, and the exact power-of-two scaling of extreme magnitudes."""
from __future__ import annotations

import math
import warnings
from typing import Optional

import numpy as np
import torch

from ..errors import ArgumentTypeError, FastselError

BACKENDS = ("auto", "cpp", "torch")


ORDERS = ("random", "index")


GREEDY_MODES = ("auto", "single", "multi")  # the greedy kernels' modes (greedy, greedy_sets, fps): same picks


DEFAULT_ALPHA = 0.9


DEFAULT_SEED = 0


_EXACT_INT = 2 ** 53  # integers up to this magnitude are exact in float64


def as_tensor(x, name: str = "x") -> torch.Tensor:
    """A 2-D float tensor from a tensor or array; integers become float64, exactly (|value| <= 2^53,
    else an error: float64 would round them). A tensor is detached from autograd: selection is not
    differentiable, so every distance an op returns is detached (``requires_grad`` False) rather than
    a tensor that looks differentiable but carries no gradient."""
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
    else:
        x = x.detach()
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
        v = v.detach().item()
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
        rng = f"in [{lo}, {hi}]" if hi is not None and lo is not None else f"<= {hi}" if lo is None else f">= {lo}"
        raise FastselError(f"{name} must be {rng}, got {v}")
    return v


def check_real(v, name: str) -> float:
    """``v`` as a float: a Python/numpy/torch real number; a bool or a string is refused."""
    if isinstance(v, torch.Tensor) and v.numel() == 1 and v.dim() == 0 and v.device.type != "meta":
        v = v.detach().item()
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


def _check_call(x, n, start, seed, mode: str, modes: tuple):
    """An op's common checks: (x as a tensor, N, n, start)."""
    if mode not in modes:
        raise FastselError(f"mode must be one of {modes}, got {mode!r}")
    x = as_tensor(x)
    N = x.shape[0]
    return x, N, _check_n(n, N), _check_start(start, N, seed)


def _whole(values, name: str) -> torch.Tensor:
    """``values`` as a flat int64 CPU tensor, refusing what would be truncated silently: fractional,
    non-finite or boolean entries (set ids and offsets are integers)."""
    flat = values if isinstance(values, (list, tuple)) else ([values] if not hasattr(values, "__len__") else [])
    if not isinstance(values, torch.Tensor) and any(isinstance(v, (bool, np.bool_)) for v in flat):
        raise FastselError(f"{name} must be integers, got a bool among them")
    try:
        t = values.detach() if isinstance(values, torch.Tensor) else torch.as_tensor(values)
    except (TypeError, ValueError, RuntimeError) as e:
        raise FastselError(f"{name} must be integers, got {type(values).__name__} ({e})") from None
    if t.dim() > 1:
        raise FastselError(f"{name} must be one-dimensional, got shape {tuple(t.shape)}")
    t = t.reshape(-1).cpu()
    if t.dtype == torch.bool or t.is_complex():
        raise FastselError(f"{name} must be integers, got {t.dtype}")
    if t.is_floating_point():
        bad = ~torch.isfinite(t) | (t != torch.round(t))
        if bool(bad.any()):
            raise FastselError(f"{name} must be integers: entry {int(bad.nonzero()[0, 0])} is "
                               f"{float(t[bad][0])!r} (a fraction would be truncated)")
    return t.long()
