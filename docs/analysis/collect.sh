#!/usr/bin/env bash
# Copy each finished seed's records (metrics.json with its full config) of docs/analysis/run.sh into
# docs/analysis/records/PARADIGM/ (accumulate, the default, or replace), with the commit of the code the runs used (CODE). A seed is
# finished when run.sh logged it done (progress.txt); unfinished seeds are never copied.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${RUNS:-/work/analysis-runs}
PARADIGM=${PARADIGM:-accumulate}
case "$PARADIGM" in accumulate) PROGRESS=progress.txt ;; replace) PROGRESS=progress-replace.txt ;;
    *) echo "PARADIGM must be accumulate or replace, got $PARADIGM" >&2; exit 2 ;; esac
OUT=docs/analysis/records/$PARADIGM
mkdir -p "$OUT"
cp "$RUNS/code/COMMIT" "$OUT/CODE"
[ -f "$RUNS/$PROGRESS" ] || exit 0
for s in $(awk '/ done /{print $2}' "$RUNS/$PROGRESS"); do
  mkdir -p "$OUT/seed$s"
  cp "$RUNS/$PARADIGM/seed$s/metrics.json" "$OUT/seed$s/metrics.json"
done
ls "$OUT"
