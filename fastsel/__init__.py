"""fastsel: exact, fast entropy-maximising data selection for model-collapse research.

Ops (CPU C++ kernels, PyTorch fallback): :func:`greedy` (Algorithm 1, farthest-point
sampling), :func:`threshold_decay` (Algorithm 2, threshold-decay filter), :func:`nn`
(exact k-NN). Metrics of Shi et al. 2025 live in :mod:`fastsel.metrics`.
"""
import os as _os

import torch as _torch  # noqa: F401 -- first: torch's own OpenMP runtime keeps its default wait policy

# Threads that spin at a per-pick barrier while another process holds their core slowed fastsel's
# kernels 6-90x on another 2-core machine, so OMP_WAIT_POLICY=PASSIVE is set here (after torch is
# imported) unless the user chose a policy (FASTSEL_OMP_WAIT_POLICY=default keeps the runtime's
# default). It only acts where fastsel._C has an OpenMP runtime of its own: with torch 2.13's CPU
# wheel, _C shares torch's bundled libgomp, which read its settings when torch was imported, so
# nothing changes in this process; there the busy-machine figures come from that runtime's default
# spin-then-sleep (the kernels) and the loop's core governor (training, fastsel._threads).
# docs/benchmarks.md, "Busy machines", has the measurements.
# The variable is taken back out once fastsel._C is loaded: a process started from this one (a
# --jobs worker, a benchmark's child) would otherwise start torch's runtime passive too, which made
# 2-thread training steps 2x slower (102 vs 52 ms per step of the cpu preset's UNet).
_SET_WAIT_POLICY = ("OMP_WAIT_POLICY" not in _os.environ
                    and _os.environ.get("FASTSEL_OMP_WAIT_POLICY", "passive").lower() != "default")
if _SET_WAIT_POLICY:
    _os.environ["OMP_WAIT_POLICY"] = _os.environ.get("FASTSEL_OMP_WAIT_POLICY", "passive").upper()

try:  # the ops, each from the module where it lives (fastsel.ops re-exports nothing)
    from .ops.greedy import GreedyResult, greedy, greedy_from  # greedy: (N, d), and (B, N, d) -> greedy_sets
    from .ops.nn import NNResult, nn
    from .ops.sets import SetsResult, fps, greedy_sets
    from .ops.threshold import ThresholdResult, default_tau, scan_order, threshold_decay
finally:  # fastsel._C is loaded now (fastsel.ops imports it), and with it any runtime of its own
    if _SET_WAIT_POLICY:
        _os.environ.pop("OMP_WAIT_POLICY", None)
from .selectors import register_selector, select
# the other built-in selectors register themselves when imported (the registry imports none of them)
from . import clusters as _clusters  # noqa: F401 -- semdedup, kmeans-balanced
from . import diversity as _diversity  # noqa: F401 -- facility, dpp, herding
from . import streaming  # noqa: F401 -- fastsel.streaming.greedy after `import fastsel`, as the README shows it

from ._version import __version__
__all__ = ["greedy", "greedy_from", "greedy_sets", "fps", "threshold_decay", "nn", "select", "register_selector", "default_tau", "scan_order",
           "GreedyResult", "SetsResult", "ThresholdResult", "NNResult", "__version__"]
