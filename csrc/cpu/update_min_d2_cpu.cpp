// CPU kernel of fastsel::update_min_d2 (schema and contract: csrc/ops.cpp):
// greedy's row update against external centre rows, for the sharded ops.
#include <torch/library.h>

#include <limits>

#include "cpu/rowdist.h"
#include "utils.h"

namespace fastsel {
namespace cpu {

std::tuple<at::Tensor, at::Tensor> update_min_d2_cpu(const at::Tensor& x_, const at::Tensor& min_d2,
                                                     const at::Tensor& centres_, double thr, int64_t from) {
  check_pool(x_, "x");
  check_state(min_d2, x_);
  TORCH_CHECK(centres_.dim() == 2 && centres_.size(1) == x_.size(1), "centres must be (P, ", x_.size(1),
              "), got ", centres_.sizes());
  TORCH_CHECK(centres_.scalar_type() == x_.scalar_type(), "centres must have the dtype of x");
  const int64_t N = x_.size(0), d = x_.size(1), P = centres_.size(0);
  at::Tensor x = x_.contiguous(), centres = centres_.contiguous();
  at::Tensor md = min_d2.contiguous().clone();
  auto out = at::empty({3}, x.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastsel_update_min_d2_cpu", [&] {
    using Acc_t = typename Acc<scalar_t>::type;
    Acc_t* m = md.data_ptr<Acc_t>();
    std::vector<Acc_t> buf;
    BlockResult<Acc_t> r = scan_state<Acc_t>(m, N, thr, from);
    for (int64_t p = 0; p < P; ++p) {
      const Acc_t* c = centre<scalar_t, Acc_t>(centres.data_ptr<scalar_t>() + p * d, d, buf);
      r = update_all<scalar_t, Acc_t>(x.data_ptr<scalar_t>(), N, d, c, m, thr, from);
    }
    double* o = out.data_ptr<double>();
    o[0] = static_cast<double>(r.best);
    o[1] = static_cast<double>(r.best_i);
    o[2] = static_cast<double>(r.first_i);
  });
  return {md, out};
}

}  // namespace cpu
}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CPU, m) { m.impl("update_min_d2", &fastsel::cpu::update_min_d2_cpu); }
