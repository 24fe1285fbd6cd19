// Skinny products for the certified multi-pick updates: G = A P^T for a block of rows A
// (R x d, row stride lda) against a few picks P (ns x d, contiguous), when ns is small (a
// pass's picks in one cell). BLAS packs A for every such product and runs far under its peak
// at ns of a few dozen; here each tile of 3 rows stays in L1 while 4 picks at a time stream
// past it, so A is read once. Any summation order is covered by the certified bound the GEMM
// values are used with (gemm_kappa, csrc/utils.h), so fused multiply-adds are allowed in
// this file (and only here: the difference-form kernels keep -ffp-contract=off).
#include <torch/library.h>

#include "cpu/multipick.h"

// after the includes: header code compiled here keeps the project's flags
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

namespace fastsel {
namespace cpu {

namespace {
template <typename Acc, int RR, int PP>
FASTSEL_INLINE void dots_tile(const Acc* __restrict A, int64_t lda, const Acc* __restrict P, int64_t d,
                              Acc* __restrict G, int64_t ldg) {
  typedef Acc V __attribute__((vector_size(32), aligned(sizeof(Acc))));  // unaligned loads
  constexpr int64_t W = 32 / sizeof(Acc);
  V acc[RR * PP];
#pragma GCC unroll 16
  for (int q = 0; q < RR * PP; ++q) acc[q] = V{};
  const Acc* a0 = A;
  const Acc* a1 = A + (RR > 1 ? lda : 0);
  const Acc* a2 = A + (RR > 2 ? 2 * lda : 0);
  int64_t k = 0;
  for (; k + W <= d; k += W) {
    const V x0 = *reinterpret_cast<const V*>(a0 + k);
    const V x1 = *reinterpret_cast<const V*>(a1 + k);
    const V x2 = *reinterpret_cast<const V*>(a2 + k);
#pragma GCC unroll 4
    for (int p = 0; p < PP; ++p) {
      const V b = *reinterpret_cast<const V*>(P + p * d + k);
      acc[p] += x0 * b;
      if (RR > 1) acc[PP + p] += x1 * b;
      if (RR > 2) acc[2 * PP + p] += x2 * b;
    }
  }
  for (int r = 0; r < RR; ++r)
    for (int p = 0; p < PP; ++p) {
      Acc s = 0;
      for (int64_t l = 0; l < W; ++l) s += acc[r * PP + p][l];
      for (int64_t q = k; q < d; ++q) s += A[r * lda + q] * P[p * d + q];
      G[r * ldg + p] = s;
    }
}

template <typename Acc, int RR>
FASTSEL_INLINE void dots_rows(const Acc* A, int64_t lda, const Acc* P, int64_t ns, int64_t d, Acc* G) {
  int64_t s = 0;
  for (; s + 4 <= ns; s += 4) dots_tile<Acc, RR, 4>(A, lda, P + s * d, d, G + s, ns);
  switch (ns - s) {
    case 3: dots_tile<Acc, RR, 3>(A, lda, P + s * d, d, G + s, ns); break;
    case 2: dots_tile<Acc, RR, 2>(A, lda, P + s * d, d, G + s, ns); break;
    case 1: dots_tile<Acc, RR, 1>(A, lda, P + s * d, d, G + s, ns); break;
    default: break;
  }
}

template <typename Acc>
FASTSEL_INLINE void dots_impl(const Acc* A, int64_t lda, int64_t R, const Acc* P, int64_t ns, int64_t d, Acc* G) {
  int64_t r = 0;
  for (; r + 3 <= R; r += 3) dots_rows<Acc, 3>(A + r * lda, lda, P, ns, d, G + r * ns);
  if (R - r == 2) dots_rows<Acc, 2>(A + r * lda, lda, P, ns, d, G + r * ns);
  if (R - r == 1) dots_rows<Acc, 1>(A + r * lda, lda, P, ns, d, G + r * ns);
}
}  // namespace

FASTSEL_CLONES void skinny_dots(const float* A, int64_t lda, int64_t R, const float* P, int64_t ns, int64_t d,
                                float* G) {
  dots_impl<float>(A, lda, R, P, ns, d, G);
}
FASTSEL_CLONES void skinny_dots(const double* A, int64_t lda, int64_t R, const double* P, int64_t ns, int64_t d,
                                double* G) {
  dots_impl<double>(A, lda, R, P, ns, d, G);
}

static at::Tensor skinny_dots_op(const at::Tensor& a_, const at::Tensor& p_) {
  TORCH_CHECK(a_.dim() == 2 && p_.dim() == 2 && a_.size(1) == p_.size(1), "a (R, d) and p (ns, d) must share d");
  TORCH_CHECK(a_.scalar_type() == p_.scalar_type() && (a_.scalar_type() == at::kFloat || a_.scalar_type() == at::kDouble),
              "a and p must both be float32 or both float64");
  at::Tensor a = a_.contiguous(), p = p_.contiguous();
  at::Tensor g = at::empty({a.size(0), p.size(0)}, a.options());
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "fastsel_skinny_dots", [&] {
    skinny_dots(a.data_ptr<scalar_t>(), a.size(1), a.size(0), p.data_ptr<scalar_t>(), p.size(0), a.size(1),
                g.data_ptr<scalar_t>());
  });
  return g;
}

}  // namespace cpu
}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CPU, m) { m.impl("_skinny_dots", &fastsel::cpu::skinny_dots_op); }
