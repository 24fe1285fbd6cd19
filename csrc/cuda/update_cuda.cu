// CUDA kernel of fastsel::update_min_d2 (schema and contract: csrc/ops.cpp):
// greedy's row scan against external centre rows, for the sharded ops.
#include <torch/library.h>

#include "cuda/common.cuh"
#include "utils.h"

namespace fastsel {
namespace cuda {

std::tuple<at::Tensor, at::Tensor> update_min_d2_cuda(const at::Tensor& x_, const at::Tensor& min_d2,
                                                      const at::Tensor& centres_, double thr, int64_t from) {
  check_pool(x_, "x");
  check_state(min_d2, x_);
  TORCH_CHECK(x_.is_cuda(), "x must be a CUDA tensor");
  TORCH_CHECK(centres_.dim() == 2 && centres_.size(1) == x_.size(1), "centres must be (P, ", x_.size(1),
              "), got ", centres_.sizes());
  TORCH_CHECK(centres_.scalar_type() == x_.scalar_type(), "centres must have the dtype of x");
  TORCH_CHECK(centres_.device() == x_.device(), "centres must be on ", x_.device());
  c10::cuda::CUDAGuard guard(x_.device());
  at::Tensor x = x_.contiguous(), centres = centres_.contiguous();
  at::Tensor md = min_d2.contiguous().clone();
  auto out = at::empty({3}, x.options().dtype(at::kDouble));
  const int64_t P = centres.size(0), d = x.size(1);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastsel_update_min_d2_cuda", [&] {
    using A = typename AccT<scalar_t>::type;
    Scanner<scalar_t, A> S(x, md.data_ptr<A>());
    // warp_d2's 4-element loads need the centre rows aligned like the pool's
    S.args.vec4 = S.args.vec4 && vec4_ok(centres);
    ScanArgs<scalar_t, A> a = S.args;
    a.thr = thr;
    a.from = from;
    if (P == 0) {
      a.summary = out.data_ptr<double>();
      S.launch(a);
    }
    for (int64_t p = 0; p < P; ++p) {
      a.centre = centres.data_ptr<scalar_t>() + p * d;
      a.summary = p + 1 == P ? out.data_ptr<double>() : nullptr;
      S.launch(a);
    }
  });
  return {md, out};
}

}  // namespace cuda
}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CUDA, m) { m.impl("update_min_d2", &fastsel::cuda::update_min_d2_cuda); }
