#!/usr/bin/env bash
# The reduced-scale reproduction of docs/reproduction.md: MNIST (offline), 16x16 digits, the 0.16M
# UNet, LeNet features, 3 seeds. Resumable: rerun after an interruption and every finished stage
# (training checkpoint, sample batch, iteration) is kept. About an hour on 2 cores (62 min on an AMD EPYC with AVX-512, 2026-12-04; more on an AVX2-only one).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs}
OUT=${OUT:-docs/reproduction}
mkdir -p "$RUNS"
# The memorization recipe (docs/reproduction.md, "Recipe"): constant lr 2e-3, EMA, batch 16, 50-step
# DDIM, 256 extra samples per model measured (never trained on) -- the cpu preset (the main job).
# (a) trains 2,500 steps whatever n (so the epochs per image fall as n grows: 5,000 at n = 8, 78 at
# n = 512); (b) is the main job itself (n = 16, 1,250 steps) with three seeds and one more iteration.
COMMON=(--preset cpu --lr-schedule constant --warmup-steps 0 --batch-size 16 --eval-samples 256 --seeds 0,1,2)
export OMP_NUM_THREADS=1  # (a) and (b) side by side, one core each (2 cores: faster than in turn)
# (a) replace, no selection, nested sizes (Figs. 1, 2, 12)
python -m fastsel loop mnist "${COMMON[@]}" --paradigm replace --selector none -n 8,32,128,512 \
    --train-steps 2500 --iterations 3 --run-dir "$RUNS/repro-replace" > "$RUNS/repro-replace.log" 2>&1 &
A=$!
# (b) accumulate, arms none / greedy / threshold at a size that memorizes part of its data (Figs. 8-11)
# then (c) the same arms in the old weak-generator regime (the cpu-n512 preset: 512 digits, 800 cosine-lr
# steps, no copies), for the real-share comparison (docs/reproduction.md, "Which images the selectors keep")
( python -m fastsel loop mnist "${COMMON[@]}" --paradigm accumulate --selector none,greedy,threshold -n 16 \
    --train-steps 1250 --iterations 3 --run-dir "$RUNS/repro-accumulate" > "$RUNS/repro-accumulate.log" 2>&1
  python -m fastsel loop mnist --preset cpu-n512 --paradigm accumulate --selector none,greedy,threshold \
    --iterations 2 --seeds 0,1,2 --run-dir "$RUNS/repro-inversion" > "$RUNS/repro-inversion.log" 2>&1 ) &
B=$!
wait $A
wait $B
python -m fastsel report "$RUNS/repro-replace" --out "$OUT/replace"
python -m fastsel report "$RUNS/repro-accumulate" --out "$OUT/accumulate"
python -m fastsel report "$RUNS/repro-inversion" --out "$OUT/inversion"
# every run's small records (metrics.json with its config; no checkpoints, no samples)
python - "$RUNS" "$OUT/records" <<'PY'
import os, shutil, sys
runs, out = sys.argv[1:]
for exp in ("repro-replace", "repro-accumulate", "repro-inversion"):
    for sub in sorted(os.listdir(os.path.join(runs, exp))):
        src = os.path.join(runs, exp, sub, "metrics.json")
        if os.path.isfile(src):
            os.makedirs(os.path.join(out, exp, sub), exist_ok=True)
            shutil.copyfile(src, os.path.join(out, exp, sub, "metrics.json"))
PY
