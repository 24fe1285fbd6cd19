"""The seed count of docs/analysis.md, from the committed records of the tuning seeds.

Reads docs/selectors/records/selectors/seed0..5 (accumulate, n = 16, arms none / greedy / threshold /
facility / dpp / herding, iterations 0-2), takes the paired difference arm - none of GS/held-out at
the last iteration for each seed, and asks how many seeds a two-sided paired t-test needs for 80 %
power at alpha = 0.05 / (number of arms) (Holm's first step, the worst case) when the true
standardised effect is SHRINK times the one measured on the tuning seeds (winner's curse, the share
of GS/held-out's gain that came from its arm-dependent denominator, a new measure and horizon).

    python docs/analysis/power.py
"""
from __future__ import annotations

import json
import os

import numpy as np
from scipy import stats

HERE = os.path.dirname(os.path.abspath(__file__))
RECORDS = os.path.join(HERE, "..", "selectors", "records", "selectors")
ARMS = ("greedy", "threshold")
SHRINK = 0.5
ALPHA, POWER = 0.05, 0.80


def power_paired(dz: float, n: int, alpha: float) -> float:
    """Power of the two-sided one-sample t-test on n paired differences with true effect dz."""
    df = n - 1
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = dz * np.sqrt(n)
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def seeds_needed(dz: float, alpha: float, power: float = POWER) -> int:
    for n in range(3, 500):
        if power_paired(dz, n, alpha) >= power:
            return n
    raise ValueError("over 500 seeds")


def main() -> None:
    recs = {}
    seeds = sorted(int(s[4:]) for s in os.listdir(RECORDS) if s.startswith("seed"))
    for s in seeds:
        with open(os.path.join(RECORDS, f"seed{s}", "metrics.json")) as f:
            for r in json.load(f)["iterations"]:
                recs[(s, r["arm"].split("-", 1)[1], r["iteration"])] = r
    last = max(k[2] for k in recs)
    alpha = ALPHA / len(ARMS)
    print(f"tuning seeds {seeds}, iteration {last}, alpha {ALPHA}/{len(ARMS)} = {alpha:.4g} two-sided, "
          f"power {POWER:.0%}, effect shrunk x{SHRINK}")
    print("arm        mean diff   sd diff   dz(tuning)  dz(assumed)  seeds needed  power at 12 / 16 seeds")
    for a in ARMS:
        d = np.array([recs[(s, a, last)]["gs_norm"] - recs[(s, "none", last)]["gs_norm"] for s in seeds])
        dz = d.mean() / d.std(ddof=1)
        dza = SHRINK * dz
        print(f"{a:10s} {d.mean():+9.3f} {d.std(ddof=1):9.3f} {dz:11.2f} {dza:12.2f} {seeds_needed(dza, alpha):13d}"
              f"   {power_paired(dza, 12, alpha):.2f} / {power_paired(dza, 16, alpha):.2f}")


if __name__ == "__main__":
    main()
