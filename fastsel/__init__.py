"""fastsel: exact, fast entropy-maximising data selection for model-collapse research.

Ops (CPU C++ kernels, PyTorch fallback): :func:`greedy` (Algorithm 1, farthest-point
sampling), :func:`threshold_decay` (Algorithm 2, threshold-decay filter), :func:`nn`
(exact k-NN). Metrics of Shi et al. 2025 live in :mod:`fastsel.metrics`.
"""
from .ops import GreedyResult, NNResult, ThresholdResult, default_tau, greedy, nn, scan_order, threshold_decay
from .select import select

__version__ = "0.1.0"
__all__ = ["greedy", "threshold_decay", "nn", "select", "default_tau", "scan_order", "GreedyResult", "ThresholdResult",
           "NNResult", "__version__"]
