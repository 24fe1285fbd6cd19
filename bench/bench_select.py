#!/usr/bin/env python
"""Selector benchmark: greedy, threshold and nn for every backend, beside the plain PyTorch
loop and the per-pick memory floor measured in the same run.

    python bench/bench_select.py            # quick grid (~1 min on 2 cores)
    python bench/bench_select.py --full     # larger grid
Same as `fastsel bench`; writes bench/results/bench_select.{json,md}.
"""
import sys

from fastsel.cli.bench import bench

if __name__ == "__main__":
    bench.main(args=sys.argv[1:], prog_name="bench_select.py")
