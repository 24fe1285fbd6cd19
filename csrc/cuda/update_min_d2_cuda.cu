// CUDA kernel of fastsel::update_min_d2 (schema and contract: csrc/ops.cpp):
// greedy's row scan against external centre rows, for the sharded ops.
#include "cuda/row_scan.cuh"
#include "cuda/launch.h"

namespace fastsel {
namespace cuda {

void update_run(const at::Tensor& x, at::Tensor& md, const at::Tensor& centres, double thr, int64_t from,
                at::Tensor& out) {
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
}

}  // namespace cuda
}  // namespace fastsel
