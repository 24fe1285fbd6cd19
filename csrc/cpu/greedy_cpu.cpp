// CPU kernel of fastsel::greedy (schema and contract: csrc/ops.cpp).
// One pick per pass: mark the pick selected, stream the pool once to lower
// every min-distance against the pick and find the next arg-max in the same pass.
#include <torch/library.h>

#include <limits>

#include "cpu/rowdist.h"
#include "utils.h"

namespace fastsel {
namespace cpu {

template <typename T, typename Acc>
static void greedy_loop(const T* x, int64_t N, int64_t d, Acc* md, int64_t n, int64_t first, int64_t* idx,
                        Acc* d2) {
  std::vector<Acc> buf;
  const double no_thr = std::numeric_limits<double>::infinity();
  int64_t pick = first;
  for (int64_t t = 0; t < n; ++t) {
    idx[t] = pick;
    d2[t] = md[pick];
    md[pick] = Acc(-1);
    // The last pick is applied too, so the returned state is the exact min
    // distance to the whole selected set and a later call can resume from it.
    const Acc* c = centre<T, Acc>(x + pick * d, d, buf);
    auto r = update_all<T, Acc>(x, N, d, c, md, no_thr, N);
    pick = r.best_i;
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> greedy_cpu(const at::Tensor& x_, int64_t n, int64_t start,
                                                          const std::optional<at::Tensor>& min_d2) {
  check_pool(x_, "x");
  TORCH_CHECK(x_.device().is_cpu(), "x must be a CPU tensor");
  const int64_t N = x_.size(0), d = x_.size(1);
  at::Tensor x = x_.contiguous();
  at::Tensor md;
  if (min_d2.has_value()) {
    check_state(*min_d2, x);
    md = min_d2->contiguous().clone();
  } else {
    TORCH_CHECK(start >= 0 && start < N, "start must be in [0, N=", N, "), got ", start);
    md = at::full({N}, std::numeric_limits<double>::infinity(), x.options().dtype(acc_dtype(x.scalar_type())));
  }
  auto idx = at::empty({n}, x.options().dtype(at::kLong));
  auto d2 = at::empty({n}, md.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastsel_greedy_cpu", [&] {
    using Acc_t = typename Acc<scalar_t>::type;
    Acc_t* m = md.data_ptr<Acc_t>();
    int64_t first = start;
    int64_t remaining = 0;
    auto r = scan_state<Acc_t>(m, N, std::numeric_limits<double>::infinity(), N);
    for (int64_t i = 0; i < N; ++i) remaining += m[i] >= Acc_t(0);
    TORCH_CHECK(n >= 1 && n <= remaining, "n must be in [1, ", remaining, "] (rows not yet selected), got ", n);
    if (first >= 0) {
      TORCH_CHECK(first < N && m[first] >= Acc_t(0), "start ", first, " is out of range or already selected");
    } else {
      first = r.best_i;
    }
    greedy_loop<scalar_t, Acc_t>(x.data_ptr<scalar_t>(), N, d, m, n, first, idx.data_ptr<int64_t>(),
                                 d2.data_ptr<Acc_t>());
  });
  return {idx, d2, md};
}

}  // namespace cpu
}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CPU, m) { m.impl("greedy", &fastsel::cpu::greedy_cpu); }
