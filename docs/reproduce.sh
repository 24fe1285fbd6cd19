#!/usr/bin/env bash
# The reduced-scale reproduction of docs/reproduction.md: MNIST (offline), 16x16 digits, the 0.16M
# UNet, LeNet features, 3 seeds. Resumable: rerun after an interruption and every finished stage
# (training checkpoint, sample batch, iteration) is kept. About 50 min on 2 cores (AMD EPYC with AVX-512; twice that on an AVX2-only one).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
OUT=${OUT:-docs/reproduction}
mkdir -p "$RUNS"
# The memorization recipe (docs/reproduction.md, "Recipe"): constant lr 2e-3, EMA, 2,500 steps of
# batch 16 whatever n (so the epochs per image fall as n grows: 5,000 at n = 8, 78 at n = 512),
# 50-step DDIM; 256 extra samples per model are measured (never trained on).
COMMON=(--preset cpu --lr-schedule constant --warmup-steps 0 --train-steps 2500 --batch-size 16
        --eval-samples 256 --seeds 0,1,2)
export OMP_NUM_THREADS=1  # (a) and (b) side by side, one core each (2 cores: faster than in turn)
# (a) replace, no selection, nested sizes (Figs. 1, 2, 12)
python -m fastsel loop mnist "${COMMON[@]}" --paradigm replace --selector none -n 8,32,128,512 \
    --iterations 3 --run-dir "$RUNS/repro-replace" > "$RUNS/repro-replace.log" 2>&1 &
A=$!
# (b) accumulate, arms none / greedy / threshold at a size that memorizes part of its data (Figs. 8-11)
python -m fastsel loop mnist "${COMMON[@]}" --paradigm accumulate --selector none,greedy,threshold -n 16 \
    --iterations 3 --run-dir "$RUNS/repro-accumulate" > "$RUNS/repro-accumulate.log" 2>&1 &
B=$!
wait $A
wait $B
python -m fastsel report "$RUNS/repro-replace" --out "$OUT/replace"
python -m fastsel report "$RUNS/repro-accumulate" --out "$OUT/accumulate"
# every run's small records (metrics.json with its config; no checkpoints, no samples)
python - "$RUNS" "$OUT/records" <<'PY'
import os, shutil, sys
runs, out = sys.argv[1:]
for exp in ("repro-replace", "repro-accumulate"):
    for sub in sorted(os.listdir(os.path.join(runs, exp))):
        src = os.path.join(runs, exp, sub, "metrics.json")
        if os.path.isfile(src):
            os.makedirs(os.path.join(out, exp, sub), exist_ok=True)
            shutil.copyfile(src, os.path.join(out, exp, sub, "metrics.json"))
PY
