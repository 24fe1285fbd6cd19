// CPU kernel of fastsel::_stream_read: the benchmark's read-bandwidth probe.
// Reads every element once with the same threads and vector clones as the
// selection kernels and returns their sum (so the read cannot be elided).
#include <torch/library.h>

#include <vector>

#include "cpu/rowdist.h"

namespace fastsel {
namespace cpu {

namespace {
// Four independent vector accumulators, as in row_d2: the read, not the adds, sets the pace.
FASTSEL_CLONES float sum_range(const float* p, int64_t n) {
  using V = Vec<float>::type;
  constexpr int W = Vec<float>::W;
  V s0 = {}, s1 = {}, s2 = {}, s3 = {};
  int64_t i = 0;
  for (; i + 4 * W <= n; i += 4 * W) {
    s0 += vload<float, float>(p + i);
    s1 += vload<float, float>(p + i + W);
    s2 += vload<float, float>(p + i + 2 * W);
    s3 += vload<float, float>(p + i + 3 * W);
  }
  float s = hsum<float>((s0 + s1) + (s2 + s3));
  for (; i < n; ++i) s += p[i];
  return s;
}
}  // namespace

at::Tensor stream_read_cpu(const at::Tensor& x_) {
  TORCH_CHECK(x_.device().is_cpu(), "x must be a CPU tensor");
  at::Tensor x = x_.contiguous();
  TORCH_CHECK(x.scalar_type() == at::kFloat, "_stream_read takes float32");
  const float* p = x.data_ptr<float>();
  const int64_t n = x.numel();
  int nt = at::get_num_threads();
  std::vector<double> part(nt, 0.0);
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num(), T_ = omp_get_num_threads();
    int64_t chunk = (n + T_ - 1) / T_;
    int64_t b = std::min<int64_t>(n, t * chunk), e = std::min<int64_t>(n, b + chunk);
    if (b < e) part[t] = sum_range(p + b, e - b);
  }
  double s = 0.0;
  for (double v : part) s += v;
  return at::scalar_tensor(s, x.options().dtype(at::kDouble));
}

}  // namespace cpu
}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CPU, m) { m.impl("_stream_read", &fastsel::cpu::stream_read_cpu); }
