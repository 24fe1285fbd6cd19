// fastsel op schemas: written once here; each backend registers its kernels
// beside them (csrc/cpu/*_cpu.cpp: CPU, csrc/cuda/*_cuda.cu: CUDA).
//
// All distances are Euclidean; kernels work on squared distances accumulated
// in float32 (float64 for float64 input) in the difference form sum_j (x_j - c_j)^2,
// so data whose squared distances float32 represents exactly gives exact results.
#include <Python.h>
#include <torch/library.h>

extern "C" {
// Importing fastsel._C registers the ops below (static initialisers); the
// module itself carries no Python functions.
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

// The schemas, one m.def each with its contract beside it: one place for every op's signature,
// so this block is long by design.
TORCH_LIBRARY(fastsel, m) {
  // greedy: Algorithm 1 of Shi et al. 2025 (farthest-point sampling), one
  // read of the pool per pick.
  //   x (N, d) float32/float64/float16/bfloat16, contiguous rows.
  //   n picks in this call, 1 <= n <= number of rows not yet selected.
  //   start: first pick; required (>= 0) when min_d2 is None. With min_d2 (the
  //     state returned by an earlier call) start = -1 resumes with the arg-max.
  //   min_d2 (N,) accumulation dtype: running min squared distance to the
  //     selected set, -1 for selected rows; None = nothing selected yet.
  // Returns idx (n,) int64 in pick order, d2 (n,) the squared min distance of
  // each pick when it was picked (+inf for the very first), and the new state.
  // Ties go to the lowest index. Deterministic.
  //   mode: "single" reads the pool once per pick; "multi" makes exact
  //     multi-pick passes (below); "auto" picks multi for large pools.
  // Multi-pick pass -- THE exactness argument of every multi-pick kernel (CPU
  // csrc/cpu/greedy_cpu.cpp, multipick.h, prune.h; CUDA csrc/cuda/multipick.cuh,
  // the chunked/lazy threshold filters); their comments point here:
  //  1. min-distances only decrease, so after a pass the top-M rows by
  //     min-distance, resolved one by one among themselves with the exact
  //     difference form, yield every next pick whose value still beats the
  //     (M+1)-th row (value, then lower index). (CPU: resolved lazily -- a
  //     candidate's value is an upper bound until brought up to date against the
  //     pass's picks, and one is taken only when up to date and on top.)
  //  2. The pool is then updated against all of the pass's picks at once by a
  //     GEMM on centred rows (any common centre: the pool mean, a pruning cell's
  //     centre); |GEMM form - difference form| <= 4 (d + 8) u (|a| + |b|)^2
  //     bounds each pair, and only the pairs whose interval can hold a row's
  //     new minimum are recomputed in the difference form.
  //  3. Pruning (CPU, csrc/cpu/prune.h; from a fresh start, >= 512 picks, when
  //     a k-centre pass over a 2,048-row sample shows clusters): blocks of rows
  //     with a centre and radius bounds; a (block, pick) or (row, pick) pair
  //     whose triangle-inequality bound, shrunk by the kernel's rounding bound,
  //     proves that no min-distance can fall is skipped unread.
  // So the min-distance state -- and hence every pick -- is bit-identical to the
  // one-pick kernel's. "multi-noprune" is "multi" without 3 (CPU; tests and
  // benchmarks); picks are identical.
  m.def("greedy(Tensor x, int n, int start, Tensor? min_d2=None, str mode=\"auto\") -> (Tensor, Tensor, Tensor)");

  // greedy_sets: greedy on B independent sets at once. x (R, d) holds set b in
  // rows ptr[b] .. ptr[b+1] (ptr (B+1) int64, from 0 to R); n (B) picks and
  // start (B) local first picks per set; total = sum(n). Returns idx (total)
  // int64 global row numbers, set after set, each set's picks in pick order,
  // and d2 (total) as greedy's. Every set's picks equal greedy on that set alone.
  m.def("greedy_sets(Tensor x, Tensor ptr, Tensor n, Tensor start, int total, str mode=\"auto\") -> (Tensor, Tensor)");

  // _greedy_stats: [passes, picks, pairs examined, rows x picks] of the last greedy
  // call in this process (diagnostics: benchmarks, pruning tests, live progress).
  m.def("_greedy_stats() -> Tensor");

  // _auto_mode: what mode "auto" resolves to for a CPU call of op ("greedy":
  // "multi" or "single"; "threshold_decay": "lazy" or "single") on N rows and n
  // picks -- the rule is written once (utils.h); Python asks here.
  m.def("_auto_mode(str op, int N, int n) -> str");

  // _skinny_dots: a (R, d) times p (ns, d) transposed, float32 or float64 (CPU): the
  // kernel the pruned multi-pick update uses for GEMMs against few picks (tests).
  m.def("_skinny_dots(Tensor a, Tensor p) -> Tensor");

  // threshold_decay: Algorithm 2 (Appendix C) exactly as printed. Passes scan
  // the unselected rows in index order; row i is accepted when its squared
  // min distance to everything accepted so far (this pass included) is
  // strictly greater than tau^2 (compared in float64). A pass that accepts
  // nothing multiplies tau by alpha (every_pass: after every full pass, as the
  // authors' released code does). Passes that provably accept nothing are
  // skipped without reading the pool. When every unselected row is at squared
  // distance 0 from the selected set, the remaining slots are filled in index
  // order (the printed algorithm would never terminate).
  //   state (4,) float64 = [tau, scan position, accepted-in-this-pass, filled so far];
  //     None = fresh start (then start >= 0 and tau > 0 are used).
  //   mode: "single" updates the pool after every accept; "chunked" keeps up to
  //     256 accepts pending (rows are checked against them in the difference
  //     form) and updates the pool once per chunk with greedy's certified GEMM;
  //     "lazy" (CPU) brings a row up to date only when the scan reaches it; "auto"
  //     is lazy on the CPU for large pools (fastsel::_auto_mode), chunked on CUDA.
  //     Same result bit for bit.
  // Returns idx (n,), d2 (n,) squared min distance at acceptance (+inf first, 0
  // for filled rows), tau_at (n,) float64 threshold in force at acceptance,
  // the new min_d2 and the new state.
  // order (optional, int64 (N,), a permutation of 0..N-1): scan position p reads row order[p]
  //   -- the scan of a permuted pool without its copy. Positions are what the op takes (start,
  //   min_d2, state) and returns (idx): map them back with order[idx]. The CPU lazy mode reads
  //   through the order; the other modes and CUDA gather a permuted copy first.
  m.def("threshold_decay(Tensor x, int n, int start, float tau, float alpha, bool every_pass, "
        "Tensor? min_d2=None, Tensor? state=None, str mode=\"auto\", Tensor? order=None) -> "
        "(Tensor, Tensor, Tensor, Tensor, Tensor)");

  // nn: exact k nearest neighbours of every query row among ref rows.
  //   query (Q, d), ref (R, d), same dtype; 1 <= k <= R (R - 1 with exclude_self).
  //   exclude_self: query row i is ref row i (Q == R); j == i is never returned.
  // Candidates come from blocked GEMM distances ||q||^2 - 2 q.r + ||r||^2 with a
  // fused top-(k + extra); the candidates are re-ranked by the difference form in
  // float64, so the returned distances are float64-accurate. Memory stays bounded
  // by the block sizes, never (Q, R). Ties: lowest ref index first.
  // Returns dist (Q, k) Euclidean, ascending (float32; float64 for float64
  // input) and idx (Q, k) int64.
  m.def("nn(Tensor query, Tensor ref, int k, bool exclude_self=False) -> (Tensor, Tensor)");

  // update_min_d2: the incremental step the distributed ops are built from.
  // Lowers each unselected row's min_d2 (selected rows hold -1) against every
  // row of `centres` (P, d), with the same arithmetic as greedy's kernel, and
  // returns the new state plus a float64 summary [best value, its index (lowest
  // on ties; -1 if none), first index >= start_from whose value is > thr (-1 if none)].
  m.def("update_min_d2(Tensor x, Tensor min_d2, Tensor centres, float thr, int start_from) -> (Tensor, Tensor)");

  // _fps_one_block: benchmark baseline (CUDA only): FPS with one thread block
  // for the whole set, as GPU FPS libraries run each set of a batch. Returns idx (n,).
  m.def("_fps_one_block(Tensor x, int n, int start) -> Tensor");

  // _facility_gains: facility location's gain evaluations on a dense (N, N) float32/float64
  // kernel K, each listed row read once in place (CPU only): for each j in rows,
  // [sum_i max(0, K[j, i] - cover[i]), sum_i [K[j, i] >= thr[i]] K[j, i] (0 without thr)], (R, 2)
  // float64. cover has K's dtype; thr (float32 K only) is the certificate's activity threshold
  // (fastsel/diversity.py). float32 rows are summed in float32 lanes over blocks of 256 values and
  // then in float64: at most 16 u of either sum.
  m.def("_facility_gains(Tensor K, Tensor rows, Tensor cover, Tensor? thr=None) -> Tensor");

  // _facility_mirror: K[b:, a:b] = K[a:b, b:]^T in place (a symmetric kernel built by blocks on and
  // above the diagonal), in tiles (CPU only).
  m.def("_facility_mirror(Tensor(a!) K, int a, int b) -> ()");

  // _stream_read: sum of all elements, read once with the same vector units
  // and threads as the kernels; the benchmark's read-bandwidth probe.
  m.def("_stream_read(Tensor x) -> Tensor");
}
