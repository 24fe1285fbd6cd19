"""Loads the compiled extension ``fastsel._C`` and records why when it cannot.

Nothing here raises: callers ask :func:`available` and :func:`why_unavailable`.
The fallback warning is emitted once per (op, reason) on the ``fastsel`` logger
and on stderr, never silently.
"""
from __future__ import annotations

import json
import logging
import os
import sys

import torch

log = logging.getLogger("fastsel")

_C = None
_load_error: str | None = None

# One switch, FASTSEL_NO_EXTENSION=1, means "no compiled extension" wherever it is read: at install
# (setup.py builds none) and here (none is loaded: every op runs its PyTorch fallback).
# FASTSEL_DISABLE_EXTENSION=1 is its older run-time name, still honoured.
SWITCH = "FASTSEL_NO_EXTENSION"
_OLD_SWITCH = "FASTSEL_DISABLE_EXTENSION"
_off = next((v for v in (SWITCH, _OLD_SWITCH) if os.environ.get(v, "0") == "1"), None)
if _off is not None:
    _load_error = f"disabled by {_off}=1"
else:
    try:
        from . import _C  # noqa: F401  (importing registers the torch.ops.fastsel ops)
    except ImportError as e:  # not built (FASTSEL_NO_EXTENSION=1 at install) or built against another torch
        _C = None
        _load_error = f"{type(e).__name__}: {e}"

_warned: set = set()


def loaded() -> bool:
    """True when the compiled extension is importable in this process."""
    return _C is not None


def why_unavailable() -> str | None:
    return _load_error


# CUDA kernels written and compiled without a GPU (issue #43): each is off until a device run has
# passed its tests; this is the one switch per kernel, with the record of the run that turned it on
# ({"commit", "gpu", "tests"}). FASTSEL_CUDA_NEW_KERNELS=1 turns every one on (bench/gpu_check.sh
# runs their tests that way), =0 every one off (other values are ignored).
CUDA_NEW_KERNELS = {
    # csrc/cuda/greedy_sets_cuda.cu: every set of a batch in one launch, one block per set (off: greedy's
    # CUDA kernel set after set)
    "greedy_sets": {"enabled": False, "verified": None},
    # csrc/cuda/threshold_decay_cuda.cu reading row order[p] at scan position p (off: the pool is
    # gathered into scan order once, in Python)
    "threshold_scan_order": {"enabled": False, "verified": None},
}


def cuda_kernel_enabled(name: str) -> bool:
    """Whether the new CUDA kernel ``name`` (CUDA_NEW_KERNELS) is used."""
    on = CUDA_NEW_KERNELS[name]["enabled"]  # an unknown name: KeyError, whatever the environment says
    env = os.environ.get("FASTSEL_CUDA_NEW_KERNELS")
    return env == "1" if env in ("0", "1") else on  # any other value: the switch as recorded


def has_kernel(op: str, device_type: str) -> bool:
    """True when ``fastsel::op`` has a compiled kernel for ``device_type`` ('cpu', 'cuda')."""
    if _C is None:
        return False
    key = {"cpu": "CPU", "cuda": "CUDA"}.get(device_type)
    if key is None:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"fastsel::{op}", key)


def warn_once(op: str, reason: str) -> None:
    key = (op, reason)
    if key in _warned:
        return
    _warned.add(key)
    msg = f"fastsel: {op} uses the PyTorch fallback ({reason})"
    if log.handlers or logging.getLogger().handlers:
        log.warning(msg)  # the application configured logging: let it route the message
    else:
        print(msg, file=sys.stderr)


def build_info() -> dict:
    """What ``setup.py`` recorded at build time (empty when unknown)."""
    path = os.path.join(os.path.dirname(__file__), "_build_info.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
