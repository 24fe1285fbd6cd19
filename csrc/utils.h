// Shared checks and small helpers for the fastsel ops (CPU and CUDA).
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <limits>
#include <string>

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

// threshold_decay's mode and alpha (every backend).
inline void check_threshold_args(const std::string& mode, double alpha) {
  TORCH_CHECK(mode == "auto" || mode == "single" || mode == "chunked", "mode must be auto, single or chunked, got ",
              mode);
  TORCH_CHECK(alpha > 0.0 && alpha < 1.0, "alpha must be in (0, 1), got ", alpha);
}

// Diagnostics behind fastsel::_greedy_stats (passes and picks of the last greedy call).
void reset_greedy_stats();
void record_greedy_stats(int64_t passes, int64_t picks);

}  // namespace fastsel
