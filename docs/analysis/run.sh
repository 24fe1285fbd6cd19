#!/usr/bin/env bash
# The runs of docs/analysis.md: n = 16, arms none / greedy / threshold, iterations 0-5, seeds 1001-1016,
# one after another on one core at the lowest priority. PARADIGM=accumulate (the primary family, the
# default) or PARADIGM=replace (the second family: replace with selection, --pool-factor 2). Resumable: rerun it and every
# finished stage (checkpoint, sample batch, iteration) and every finished seed is kept; a seed whose
# records are committed (docs/analysis/collect.sh) is skipped on a machine that lost the runs folder.
# The package code is a snapshot (CODE below) so later edits to the work tree never reach a run.
set -euo pipefail
# nice acts within one autogroup (Linux, one per session): started with setsid, the runs are a session of
# their own and would take an equal share of the CPU beside the user's work whatever their nice; so a
# session leader lowers its whole session's weight too (measured 2026-12-07: two such runs held 50 % of
# a core each against a test run at nice 0 until their autogroup was set to 19)
if [ "$(ps -o sid= -p $$ | tr -d ' ')" = "$$" ] && [ -w /proc/self/autogroup ]; then
    echo 19 > /proc/self/autogroup 2>/dev/null || true
fi
cd "$(dirname "$0")/../.."
REPO=$(pwd)
RUNS=${RUNS:-/work/analysis-runs}
CODE=${CODE:-$RUNS/code}
SEEDS=${SEEDS:-$(seq 1001 1016)}
PARADIGM=${PARADIGM:-accumulate}
case "$PARADIGM" in
    accumulate) EXTRA=(); PROGRESS=progress.txt ;;
    replace) EXTRA=(--pool-factor 2); PROGRESS=progress-replace.txt ;;
    *) echo "PARADIGM must be accumulate or replace, got $PARADIGM" >&2; exit 2 ;;
esac
mkdir -p "$RUNS"
if [ ! -d "$CODE/fastsel" ]; then
    mkdir -p "$CODE"
    PINNED=docs/analysis/records/accumulate/CODE  # the commit the first seeds ran with: every seed runs it
    if [ -f "$PINNED" ]; then
        git archive "$(cat "$PINNED")" fastsel | tar -x -C "$CODE"
        cp fastsel/_C*.so "$CODE/fastsel/"  # the built kernels (exact: the same picks whatever the build)
        cp "$PINNED" "$CODE/COMMIT"
    else
        cp -r fastsel "$CODE/"
        git rev-parse HEAD > "$CODE/COMMIT"
    fi
fi
export OMP_NUM_THREADS=1 PYTHONPATH="$CODE"
cd "$RUNS"  # not the work tree: python -m puts the working folder first on the path
python -c 'import fastsel, sys; assert fastsel.__file__.startswith(sys.argv[1]), fastsel.__file__' "$CODE"
for s in $SEEDS; do
    # a seed whose records are committed is done, whether or not this machine kept its run folder
    [ -f "$REPO/docs/analysis/records/$PARADIGM/seed$s/metrics.json" ] && [ ! -d "$RUNS/$PARADIGM/seed$s" ] && continue
    nice -n 19 python -m fastsel loop mnist --preset cpu --paradigm "$PARADIGM" --selector none,greedy,threshold \
        -n 16 --train-steps 1250 --iterations 6 --seeds "$s" --run-dir "$RUNS/$PARADIGM/seed$s" ${EXTRA[@]+"${EXTRA[@]}"} \
        >> "$RUNS/$PARADIGM-seed$s.log" 2>&1
    echo "seed $s done $(date -u +%FT%TZ)" >> "$RUNS/$PROGRESS"
done
