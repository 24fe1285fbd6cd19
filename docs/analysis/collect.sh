#!/usr/bin/env bash
# Copy each finished seed's records (metrics.json with its full config) of docs/analysis/run.sh into
# docs/analysis/records/accumulate/, with the commit of the code the runs used (CODE). A seed is
# finished when run.sh logged it done (progress.txt); unfinished seeds are never copied.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-/work/analysis-runs}
OUT=docs/analysis/records/accumulate
mkdir -p "$OUT"
cp "$RUNS/code/COMMIT" "$OUT/CODE"
[ -f "$RUNS/progress.txt" ] || exit 0
for s in $(awk '/ done /{print $2}' "$RUNS/progress.txt"); do
  mkdir -p "$OUT/seed$s"
  cp "$RUNS/accumulate/seed$s/metrics.json" "$OUT/seed$s/metrics.json"
done
ls "$OUT"
