#!/usr/bin/env python
"""Every benchmark from a source checkout: the same as `fastsel bench ...` (see bench/README.md).

    python bench/bench.py                 # the selector benchmark (quick grid)
    python bench/bench.py prune --reps 6  # any subcommand of `fastsel bench`
"""
import sys

from fastsel.cli.bench import bench

if __name__ == "__main__":
    bench.main(args=sys.argv[1:], prog_name="fastsel bench")
