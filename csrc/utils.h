// Shared checks and small helpers for the fastsel ops (CPU and CUDA).
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace fastsel {

// Accumulation type: at least float32; float64 input stays float64.
template <typename T> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

inline at::ScalarType acc_dtype(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

inline void check_pool(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.dim() == 2, name, " must be 2-D (N, d), got ", x.dim(), "-D");
  TORCH_CHECK(x.size(0) > 0 && x.size(1) > 0, name, " must be non-empty, got shape ", x.sizes());
  auto t = x.scalar_type();
  TORCH_CHECK(t == at::kFloat || t == at::kDouble || t == at::kHalf || t == at::kBFloat16,
              name, " must be float32, float64, float16 or bfloat16, got ", t);
}

// fastsel::nn's rules on its inputs past their devices (each backend checks those first): same dtype and
// dimension, exclude_self on one set, k in range. Returns the rows a query may take as neighbours.
inline int64_t check_nn_args(const at::Tensor& query, const at::Tensor& ref, int64_t k, bool exclude_self) {
  TORCH_CHECK(query.scalar_type() == ref.scalar_type(), "query and ref must have the same dtype, got ",
              query.scalar_type(), " and ", ref.scalar_type());
  TORCH_CHECK(query.size(1) == ref.size(1), "query and ref must have the same dimension, got ", query.size(1),
              " and ", ref.size(1));
  const int64_t Q = query.size(0), R = ref.size(0);
  if (exclude_self) TORCH_CHECK(Q == R, "exclude_self needs query and ref of the same length, got ", Q, " and ", R);
  const int64_t avail = R - (exclude_self ? 1 : 0);
  TORCH_CHECK(k >= 1 && k <= avail, "k must be in [1, ", avail, "], got ", k);
  return avail;
}

inline void check_n(int64_t n, int64_t N) {
  TORCH_CHECK(n >= 1 && n <= N, "n must be in [1, N=", N, "], got ", n);
}

// Min-distance state of the incremental ops: one entry per pool row, in the
// accumulation dtype; rows already selected hold a negative value (-1).
inline void check_state(const at::Tensor& md, const at::Tensor& x) {
  TORCH_CHECK(md.dim() == 1 && md.size(0) == x.size(0), "min_d2 must have shape (N,) = (", x.size(0),
              ",), got ", md.sizes());
  TORCH_CHECK(md.scalar_type() == acc_dtype(x.scalar_type()), "min_d2 must be ",
              acc_dtype(x.scalar_type()), " for ", x.scalar_type(), " data, got ", md.scalar_type());
  TORCH_CHECK(md.device() == x.device(), "min_d2 must be on ", x.device());
}

// The min-distance state an op starts from: the caller's (checked, cloned: theirs stays
// untouched), or a fresh one (+inf everywhere, start must be a row).
inline at::Tensor initial_state(const at::Tensor& x, const std::optional<at::Tensor>& min_d2, int64_t start) {
  if (min_d2.has_value()) {
    check_state(*min_d2, x);
    return min_d2->contiguous().clone();
  }
  TORCH_CHECK(start >= 0 && start < x.size(0), "start must be in [0, N=", x.size(0), "), got ", start);
  return at::full({x.size(0)}, std::numeric_limits<double>::infinity(),
                  x.options().dtype(acc_dtype(x.scalar_type())));
}

// Rows not yet selected in a state; n picks must fit in them.
inline int64_t check_unselected(const at::Tensor& md, int64_t n) {
  const int64_t remaining = md.ge(0).sum().item<int64_t>();
  TORCH_CHECK(n >= 1 && n <= remaining, "n must be in [1, ", remaining, "] (rows not yet selected), got ", n);
  return remaining;
}

// threshold_decay's scan state, carried between calls as a float64 tensor of 4 values.
struct ThresholdState {
  double tau;
  int64_t pos;     // next row to scan in the current pass; 0 = a pass begins
  bool added;      // the current pass accepted something
  int64_t filled;  // rows filled in index order (only duplicates were left)
  bool stale = false;  // written by a lazy call: its min_d2 holds upper bounds, not a resumable state
};

inline ThresholdState read_threshold_state(const at::Tensor& state, int64_t N) {
  TORCH_CHECK(state.dim() == 1 && state.numel() == 4 && state.scalar_type() == at::kDouble,
              "state must be a float64 tensor of 4 values");
  auto st = state.cpu();
  const double* sp = st.data_ptr<double>();
  TORCH_CHECK(sp[2] < 2.0, "state comes from a lazy threshold_decay call, whose min_d2 holds upper bounds: it "
              "cannot be resumed (use mode='chunked' or 'single' for resumable calls)");
  ThresholdState s{sp[0], static_cast<int64_t>(sp[1]), sp[2] != 0.0, static_cast<int64_t>(sp[3])};
  TORCH_CHECK(s.pos >= 0 && s.pos <= N, "state holds an invalid scan position");
  return s;
}

inline at::Tensor threshold_state_tensor(const ThresholdState& s, const at::Device& device) {
  auto st = at::empty({4}, at::TensorOptions().dtype(at::kDouble));
  double* sp = st.data_ptr<double>();
  sp[0] = s.tau;
  sp[1] = static_cast<double>(s.pos);
  sp[2] = (s.added ? 1.0 : 0.0) + (s.stale ? 2.0 : 0.0);
  sp[3] = static_cast<double>(s.filled);
  return st.to(device);
}

// threshold_decay's starting point on every backend: the scan state (fresh, or the caller's
// with start = -1) and the min-distance state, both checked, and the outputs to fill.
struct ThresholdStart {
  ThresholdState s;
  at::Tensor md;
  int64_t start;
  at::Tensor idx, d2, tau_at;  // (n,) int64 accepts, their squared min-distances, the tau each beat
};

inline ThresholdStart threshold_start(const at::Tensor& x, int64_t n, int64_t start, double tau,
                                      const std::optional<at::Tensor>& min_d2,
                                      const std::optional<at::Tensor>& state) {
  TORCH_CHECK(min_d2.has_value() == state.has_value(), "min_d2 and state must be given together");
  ThresholdState s{tau, 0, false, 0};
  if (state.has_value()) {
    s = read_threshold_state(*state, x.size(0));
    start = -1;
  }
  at::Tensor md = initial_state(x, min_d2, start);
  TORCH_CHECK(std::isfinite(s.tau) && s.tau > 0.0, "tau must be finite and > 0, got ", s.tau);
  check_unselected(md, n);
  return {s, md, start, at::empty({n}, x.options().dtype(at::kLong)), at::empty({n}, md.options()),
          at::empty({n}, x.options().dtype(at::kDouble))};
}

// threshold_decay's scan order (every backend): an int64 (N,) permutation of 0..N-1 on x's device.
inline void check_scan_order(const at::Tensor& order, const at::Tensor& x) {
  TORCH_CHECK(order.dim() == 1 && order.size(0) == x.size(0), "order must have shape (", x.size(0),
              "), got ", order.sizes());
  TORCH_CHECK(order.scalar_type() == at::kLong, "order must be int64");
  TORCH_CHECK(order.device() == x.device(), "order must be on x's device");
  const int64_t N = x.size(0);
  if (N) {
    TORCH_CHECK(order.min().item<int64_t>() >= 0 && order.max().item<int64_t>() < N, "order must index rows of x");
    auto seen = at::zeros({N}, order.options().dtype(at::kInt)).index_add_(
        0, order, at::ones({N}, order.options().dtype(at::kInt)));
    TORCH_CHECK(seen.eq(1).all().item<bool>(), "order must be a permutation of 0..N-1");
  }
}

// threshold_decay's mode and alpha (every backend).
inline void check_threshold_args(const std::string& mode, double alpha) {
  TORCH_CHECK(mode == "auto" || mode == "single" || mode == "chunked" || mode == "lazy",
              "mode must be auto, single, chunked or lazy, got ", mode);
  TORCH_CHECK(alpha > 0.0 && alpha < 1.0, "alpha must be in (0, 1), got ", alpha);
}

// The centred copy of a pool for GEMM-form distances (built by cpu/multipick.h and
// cuda/multipick.cuh) and the bound that certifies them: |GEMM-form d^2 - difference-form d^2|
// <= gemm_kappa(d, u) (|c_a| + |c_b|)^2 for rows centred on any common point (ops.cpp, greedy).
struct Centred {
  at::Tensor xc;  // (N, d) accumulation dtype: the rows minus the centre
  at::Tensor cn;  // (N,) float64 norms of the centred rows
  at::Tensor mu;  // (d,) the centre in the accumulation dtype (undefined when rows have their own)
  double u;       // unit roundoff of the accumulation dtype
};
inline double gemm_kappa(int64_t d, double u) { return 4.0 * (static_cast<double>(d) + 8.0) * u; }

// greedy's mode (every backend; "multi-noprune" only where pruning exists, the CPU) and what
// "auto" resolves to: multi-pick passes from this pool size and this many picks.
constexpr int64_t kMultiMinRows = 8192;
constexpr int64_t kMultiMinPicks = 64;
// greedy_sets' arguments, one rule for every device: ptr (B + 1 offsets from 0 to R), n (B counts,
// 0 <= n_b <= size_b), start (B set-local first picks), total = sum n. ptr, n and start are read on
// the host (CPU int64 tensors). Returns the output offsets (B + 1).
inline std::vector<int64_t> check_sets_args(const at::Tensor& x, const at::Tensor& ptr, const at::Tensor& n,
                                            const at::Tensor& start, int64_t total) {
  TORCH_CHECK(ptr.dim() == 1 && ptr.size(0) >= 2 && ptr.scalar_type() == at::kLong && ptr.device().is_cpu(),
              "ptr must be a 1-D int64 CPU tensor of B + 1 offsets");
  const int64_t B = ptr.size(0) - 1;
  TORCH_CHECK(n.dim() == 1 && n.size(0) == B && n.scalar_type() == at::kLong && n.device().is_cpu(),
              "n must be a 1-D int64 CPU tensor of B counts");
  TORCH_CHECK(start.dim() == 1 && start.size(0) == B && start.scalar_type() == at::kLong && start.device().is_cpu(),
              "start must be a 1-D int64 CPU tensor of B local indices");
  at::Tensor pc = ptr.contiguous(), nc = n.contiguous(), sc = start.contiguous();
  const int64_t* P = pc.data_ptr<int64_t>();
  const int64_t* nv = nc.data_ptr<int64_t>();
  const int64_t* sv = sc.data_ptr<int64_t>();
  TORCH_CHECK(P[0] == 0 && P[B] == x.size(0), "ptr must start at 0 and end at the number of rows");
  std::vector<int64_t> off(B + 1, 0);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t Nb = P[b + 1] - P[b];
    TORCH_CHECK(Nb >= 0, "ptr must be non-decreasing");
    TORCH_CHECK(nv[b] >= 0 && nv[b] <= Nb, "set ", b, ": n = ", nv[b], " is not in [0, ", Nb, "]");
    TORCH_CHECK(nv[b] == 0 || (sv[b] >= 0 && sv[b] < Nb), "set ", b, ": start ", sv[b], " is out of range");
    off[b + 1] = off[b] + nv[b];
  }
  TORCH_CHECK(off[B] == total, "total must equal the sum of n");
  return off;
}

inline void check_greedy_mode(const std::string& mode, bool has_noprune) {
  const bool ok = mode == "auto" || mode == "single" || mode == "multi" || (has_noprune && mode == "multi-noprune");
  TORCH_CHECK(ok, "mode must be auto, single, multi", has_noprune ? " or multi-noprune" : " or ... (no multi-noprune here)",
              ", got ", mode);
}
inline bool greedy_multi_pick(const std::string& mode, int64_t N, int64_t n) {
  return mode == "multi" || mode == "multi-noprune" || (mode == "auto" && N >= kMultiMinRows && n >= kMultiMinPicks);
}
// threshold_decay's "auto" on the CPU: the lazy filter from the same pool size and accept count
// (CUDA runs every mode but "single" chunked). Both rules are also what fastsel::_auto_mode returns.
inline bool threshold_lazy_auto(int64_t N, int64_t n) { return N >= kMultiMinRows && n >= kMultiMinPicks; }

// Diagnostics behind fastsel::_greedy_stats (csrc/greedy_stats.cpp): passes, picks, and the
// (row, pick) pairs multi-pick updates examined out of all rows x picks, of the last call.
void reset_greedy_stats();
void record_greedy_stats(int64_t passes, int64_t picks);
void record_greedy_pairs(int64_t examined, int64_t all);

}  // namespace fastsel
