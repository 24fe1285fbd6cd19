"""The self-consuming DDPM loop of Shi et al. 2025 with fastsel's selectors plugged in.

``fastsel loop`` is the command; from Python::

    from fastsel.loop import LoopConfig, run_loop, write_report
    cfg = LoopConfig(dataset="mnist", **preset("smoke", "mnist"))
    records = run_loop(cfg, "runs/mnist-smoke")      # one dict of metrics per (arm, iteration)
    write_report("runs/mnist-smoke")
"""
from .config import LoopConfig, preset
from .report import write_report
from .run import run_loop

__all__ = ["LoopConfig", "preset", "run_loop", "write_report"]
