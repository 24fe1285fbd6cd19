"""Typed Python API of the fastsel ops, the backend choice and the fake kernels.

``backend``: ``"cpp"`` (the compiled kernels; an error when they are missing),
``"torch"`` (the pure-PyTorch versions in :mod:`fastsel.reference`) or
``"auto"`` (compiled when available for the tensor's device, else the fallback,
saying once why).

One file per op (greedy.py, threshold.py, nn.py), as the op libraries of this field keep them;
_inputs.py: argument checks; _dispatch.py: backend choice, progress, the mixed-scales triage;
_fake.py: fake kernels for torch.compile. Every name is also reachable as ``fastsel.ops.NAME``.
"""
from __future__ import annotations

from . import _fake  # noqa: F401,E402 -- registers the fake kernels
from ._dispatch import (  # noqa: F401
    _TINY_D2,
    _chunks,
    _impl,
    _mixed_scales,
    _only_duplicates_left,
    _resolved,
    _resumable,
    _row_keys,
    _underflow_triage,
    _underflowed,
    _watched,
    resolve_backend,
)
from ._inputs import (  # noqa: F401
    _EXACT_INT,
    _SAFE_RANGE,
    _SAFE_RANGE_F32,
    BACKENDS,
    DEFAULT_ALPHA,
    DEFAULT_SEED,
    ORDERS,
    SEED_MAX,
    _check_call,
    _check_int_range,
    _check_n,
    _check_start,
    _draw_start,
    _row_offset,
    as_tensor,
    check_int,
    check_real,
    check_seed,
    draw_start,
    ldexp,
    magnitude,
    pow2_scale,
    scale_exponent,
    unscale,
)
from .greedy import GREEDY_MODES, GreedyResult, greedy  # noqa: F401
from .nn import NNResult, nn  # noqa: F401
from .threshold import (  # noqa: F401
    _TAU_SAMPLE,
    THRESHOLD_MODES,
    ThresholdResult,
    _default_tau_scaled,
    _tau_from_d2,
    check_threshold_args,
    default_tau,
    max_d2_from,
    scan_order,
    threshold_counts,
    threshold_decay,
)
