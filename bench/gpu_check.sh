#!/usr/bin/env bash
# The GPU device check, for a fresh GPU machine with no network (torch with CUDA,
# nvcc and ninja already installed): build the extension with its CUDA kernels; the
# GPU path end to end (bench/gpu_pipeline.py, in this order: embed, loop throughput against
# bare diffusers, the paper preset's wall-time estimate, every selector, torch-quickfps's CUDA
# build on its grid, `fastsel curate` of a folder of PNGs, and last a short `fastsel loop` +
# report on the GPU -- measured once on 2026-12-04, so the pipeline's time limit cuts it first);
# the op tests parametrised over devices (their cpu and cuda cases); the kernel benchmark.
# First of all: the tests of the kernels that are off by default (tests/test_sets_cuda.py) and, if they
# pass, their benchmark (fastsel/benchmarks/gpu_sets.py -> sets.md / sets.json).
# Results go to $OUT (default bench/results/gpu): pipeline.md / pipeline.json,
# gpu_bench.md / gpu_bench.json, logs.tgz (env, build, tests, CLI logs), report.tgz.
# Wheels the image lacks (diffusers and its two small needs, torch-quickfps-cu130) are
# carried in .whl/ (git-ignored) and installed to /tmp/site. Fetch them where pip works:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl \
#     diffusers==0.42.1 importlib_metadata==10.2.0 lazy-importer zipp torch-quickfps-cu130==2.1.0
# Skip parts with SKIP_PIPELINE=1, SKIP_TESTS=1. The kernel benchmark (`fastsel bench gpu`,
# ~3 min; measured 2026-11-27 and 2026-12-04 with the same kernels) runs with KERNEL_BENCH=1.
# Sized to finish in about 8 minutes on one H100/H200 (build ~45 s, pipeline ~5 min, tests ~2 min);
# 2026-12-04_h200_pipeline.md lists what each stage took.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results/gpu}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
# the commit the tables name: from git where the tree has one, else pass it (the device copy has no .git):
#   FASTSEL_COMMIT=$(git rev-parse --short HEAD) bash bench/gpu_check.sh
export FASTSEL_COMMIT="${FASTSEL_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || true)}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" MAX_JOBS="${MAX_JOBS:-16}" PYTHONUNBUFFERED=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl > /dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site" || echo "gpu_check: WARNING: the carried wheels did not install"
fi
# The GPU image's default compiler (/opt/gcc/bin/g++) linked libstdc++'s number
# formatting into _C statically; that copy crashed on the first error message with a
# number in it (seen with cuda-gdb, 2026-11-27). Build with the system compiler.
if [ -z "${FASTSEL_KEEP_CXX:-}" ] && [ -x /usr/bin/g++ ]; then export CXX=/usr/bin/g++ CC=/usr/bin/gcc; fi
{ date -u; echo "commit: ${FASTSEL_COMMIT:-unknown (set FASTSEL_COMMIT)}"; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv;
  "$PY" -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.version.cuda)"; nvcc --version | tail -1; } 2>&1 | tee "$OUT/env.txt"
t0=$(date +%s)
if ! "$PY" setup.py build_ext --inplace > "$OUT/build.log" 2>&1; then
  tail -60 "$OUT/build.log"; echo "gpu_check: BUILD FAILED"; exit 1
fi
echo "build: $(( $(date +%s) - t0 )) s (CXX=${CXX:-default})"
if nm -C fastsel/_C*.so 2>/dev/null | grep -q " [TtWw] std::ostream& std::ostream::_M_insert<long>"; then
  echo "gpu_check: WARNING: libstdc++ is linked into fastsel/_C statically (set CXX to the system g++)"
fi
"$PY" -c "import fastsel._backend as B; assert B.has_kernel('greedy', 'cuda'), B.why_unavailable(); print('CUDA kernels loaded:', B.build_info())" || exit 1
pack() {  # the logs and the report in two archives: what comes back from $OUT is limited to 8 files
  (cd "$OUT" && tar czf logs.tgz --ignore-failed-read env.txt build.log tests.log bench.log pipeline_cli.log sets_tests.log 2>/dev/null \
     && rm -f build.log tests.log bench.log pipeline_cli.log sets_tests.log)
  [ -d /tmp/fastsel_pipeline_work/report ] && tar czf "$OUT/report.tgz" -C /tmp/fastsel_pipeline_work report
}
# first: the kernels that are off until a device run passes their tests (fastsel/_backend.py, CUDA_NEW_KERNELS):
# their tests, then -- if they passed -- their benchmark on the point-cloud grid (sets.md / sets.json)
src=0
FASTSEL_CUDA_NEW_KERNELS=1 timeout "${SETS_TIMEOUT:-120}" "$PY" -m pytest -q -p no:cacheprovider tests/test_sets_cuda.py \
  > "$OUT/sets_tests.log" 2>&1
src=$?
tail -5 "$OUT/sets_tests.log"
echo "sets kernel tests: exit $src"
if [ "$src" -eq 0 ]; then
  FASTSEL_CUDA_NEW_KERNELS=1 timeout "${SETS_BENCH_TIMEOUT:-120}" "$PY" -m fastsel.benchmarks.gpu_sets "$OUT" >> "$OUT/sets_tests.log" 2>&1
  echo "sets kernel bench: exit $?"; cat "$OUT/sets.md" 2>/dev/null
fi
prc=0
if [ -z "${SKIP_PIPELINE:-}" ]; then
  timeout "${PIPELINE_TIMEOUT:-330}" "$PY" bench/gpu_pipeline.py "$OUT" ${PIPELINE_ARGS:-}
  prc=$?
  echo "pipeline: exit $prc"
fi
trc=0
[ -z "${SKIP_TESTS:-}" ] && {
timeout "${TEST_TIMEOUT:-300}" "$PY" -m pytest -q -p no:cacheprovider --maxfail=20 \
  -k "device or opcheck" tests/test_greedy.py tests/test_threshold.py tests/test_nn.py tests/test_opcheck.py > "$OUT/tests.log" 2>&1
trc=$?
tail -25 "$OUT/tests.log"
echo "tests: exit $trc"
}
[ -z "${KERNEL_BENCH:-}" ] && { pack; exit $(( trc != 0 || prc != 0 || src != 0 )); }
timeout "${BENCH_TIMEOUT:-200}" "$PY" -m fastsel bench gpu --out "$OUT" ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
brc=$?
tail -3 "$OUT/bench.log"
echo "bench: exit $brc"
cat "$OUT/gpu_bench.md" 2>/dev/null
pack
exit $(( trc != 0 || brc != 0 || prc != 0 || src != 0 ))
