#!/usr/bin/env bash
# The reduced-scale reproduction of docs/reproduction.md, on MNIST (offline) with the cpu preset.
# Resumable: rerun this script after an interruption and every finished step is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
# (a) replace paradigm, no selection, three training-set sizes (Figs. 1-right, 2a, 2b)
fastsel loop mnist --paradigm replace --selector none -n 128,256,512 --iterations 3 --run-dir "$RUNS/repro-replace"
# (b) accumulate paradigm, arms none / greedy / threshold (Figs. 8-11)
fastsel loop mnist --paradigm accumulate --selector none,greedy,threshold --iterations 3 --train-steps 400 --run-dir "$RUNS/repro-accumulate"
fastsel report "$RUNS/repro-replace" --out docs/reproduction/replace --iteration 2
fastsel report "$RUNS/repro-accumulate" --out docs/reproduction/accumulate --iteration 2
