"""How much one seed can show: the seed-to-seed sd of the paired difference (arm - none) of the main
job's printed measures, from the committed records of six seeds of the cpu preset (accumulate, n = 16;
docs/selectors/records/selectors, seeds 0-5). ``fastsel loop`` prints it beside each one-seed
difference so a new user does not read noise as an effect; tests/test_analysis.py recomputes the table
from the records."""
from __future__ import annotations

from typing import Optional

SOURCE = "docs/selectors/records/selectors (cpu preset, accumulate, n = 16, seeds 0-5)"
# (selector, iteration, key) -> sd over the 6 seeds of (arm - none)
SD = {
    ("greedy", 1, "copy_fraction"): 0.0858, ("greedy", 1, "gs_norm"): 0.0811, ("greedy", 1, "entropy_fixed"): 13.1189,
    ("greedy", 2, "copy_fraction"): 0.0703, ("greedy", 2, "gs_norm"): 0.0960, ("greedy", 2, "entropy_fixed"): 15.2453,
    ("threshold", 1, "copy_fraction"): 0.0932, ("threshold", 1, "gs_norm"): 0.0960,
    ("threshold", 1, "entropy_fixed"): 14.6769, ("threshold", 2, "copy_fraction"): 0.1089,
    ("threshold", 2, "gs_norm"): 0.0970, ("threshold", 2, "entropy_fixed"): 14.7527,
}


def seed_sd(cfg, selector: str, iteration: int, key: str) -> Optional[float]:
    """The recorded seed sd for this comparison, or None when the run is not the recipe it was measured on."""
    same = (cfg.preset == "cpu" and cfg.paradigm == "accumulate" and cfg.n == 16 and cfg.train_steps == 1250
            and cfg.features == "lenet")
    return SD.get((selector, iteration, key)) if same else None
