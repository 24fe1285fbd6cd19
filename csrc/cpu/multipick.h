// Shared machinery of the multi-pick kernels (greedy multi and pruning, threshold chunks and
// lazy filter): a centred copy of the pool for GEMMs and the certified settle of a row against a
// batch of picks (settle_row), whose result is bit-identical to applying the picks one by one
// (the argument: csrc/ops.cpp, greedy).
#pragma once
#include <ATen/ATen.h>

#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "cpu/rowdist.h"

namespace fastsel {
namespace cpu {

constexpr int64_t kRowBlock = 8192;  // rows per GEMM tile

// A row centred on m, in the accumulation dtype (written to out); returns its float64 norm,
// summed in 8 lanes (vectorisable; a tighter rounding bound than one running sum).
template <typename T, typename AccT>
FASTSEL_INLINE double centre_row(const T* row, const AccT* m, int64_t d, AccT* out) {
  double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= d; j += 8)
    for (int l = 0; l < 8; ++l) {
      AccT v = static_cast<AccT>(row[j + l]) - m[j + l];
      out[j + l] = v;
      s[l] += static_cast<double>(v) * static_cast<double>(v);
    }
  for (; j < d; ++j) {
    AccT v = static_cast<AccT>(row[j]) - m[j];
    out[j] = v;
    s[0] += static_cast<double>(v) * static_cast<double>(v);
  }
  return std::sqrt(((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])));
}

// G (R x ns, row-major) = A P^T: rows of A at stride lda, ns picks of P contiguous (dots_cpu.cpp;
// for few picks, where BLAS runs far under its peak). Summation order differs from at::mm:
// both are within gemm_kappa's bound.
void skinny_dots(const float* A, int64_t lda, int64_t R, const float* P, int64_t ns, int64_t d, float* G);
void skinny_dots(const double* A, int64_t lda, int64_t R, const double* P, int64_t ns, int64_t d, double* G);
constexpr int64_t kSkinnyPicks = 256;  // up to this many picks: skinny_dots, above: at::mm

// Storage a caller keeps between kernel calls (the sets kernel runs many pools on one thread):
// the centred copy is written into it instead of fresh pages each time.
struct CentredStore {
  at::Tensor xc, cn;
};
// A (rows, cols) tensor of dtype dt: a view of keep when it is large enough, else fresh (kept).
inline at::Tensor reuse(at::Tensor* keep, int64_t rows, int64_t cols, at::ScalarType dt) {
  if (keep == nullptr) return at::empty({rows, cols}, at::TensorOptions().dtype(dt));
  if (!keep->defined() || keep->numel() < rows * cols || keep->scalar_type() != dt)
    *keep = at::empty({rows * cols}, at::TensorOptions().dtype(dt));
  return keep->narrow(0, 0, rows * cols).view({rows, cols});
}

// The certified settle of one row (pool row xi, current min-distance cur >= 0) against ns picks,
// given by accessors: g(s) the GEMM value <row, pick> of the centred vectors, pn(s) the pick's
// centred norm (ci the row's; both centred on the same point), pex(s) the pick's row in the
// accumulation dtype. |GEMM-form d^2 - difference-form d^2| <= kappa (ci + pn)^2 (kappa =
// 4 (d + 8) u: the dot product's rounding, the centring's and the difference form's own), so a
// pick can hold the new minimum only if its lower bound is under every pick's upper bound and
// under the current value; only those are recomputed by row_d2_dispatch, the same difference form
// as the one-pick kernel: the result is bit-identical to applying the picks one by one.
// lo: scratch of ns doubles.
template <typename T, typename Acc, typename GF, typename PNF, typename PXF>
FASTSEL_INLINE Acc settle_row(const T* xi, int64_t d, Acc cur, double ci, int64_t ns, GF g, PNF pn, PXF pex,
                              double kappa, double* lo) {
  double umin = std::numeric_limits<double>::infinity();
  for (int64_t s = 0; s < ns; ++s) {
    const double pa = pn(s), sum = ci + pa, e = kappa * sum * sum;
    const double gv = ci * ci + pa * pa - 2.0 * static_cast<double>(g(s));
    lo[s] = gv - e;
    umin = std::min(umin, gv + e);
  }
  for (int64_t s = 0; s < ns; ++s) {
    if (lo[s] <= umin && lo[s] < static_cast<double>(cur)) {
      Acc v = row_d2_dispatch(xi, pex(s), d);
      if (v < cur) cur = v;
    }
  }
  return cur;
}

// The centred copy in one parallel pass per step: column means in float64 (fixed row blocks,
// summed in block order: the same result for any thread count), then each row centred in the
// accumulation dtype with its float64 norm.
template <typename T, typename AccT>
Centred centred_rows(const T* x, int64_t N, int64_t d, const at::TensorOptions& opt, CentredStore* store = nullptr) {
  constexpr int64_t R = 1024;
  const int64_t nb = (N + R - 1) / R;
  std::vector<double> part(nb * d, 0.0);
  at::parallel_for(0, nb, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      double* s = part.data() + b * d;
      for (int64_t i = b * R; i < std::min(N, (b + 1) * R); ++i)
        for (int64_t j = 0; j < d; ++j) s[j] += static_cast<double>(x[i * d + j]);
    }
  });
  std::vector<double> mu64(d, 0.0);
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t j = 0; j < d; ++j) mu64[j] += part[b * d + j];
  const auto acc = std::is_same_v<AccT, double> ? at::kDouble : at::kFloat;
  at::Tensor mu = at::empty({d}, opt.dtype(acc));
  AccT* m = mu.data_ptr<AccT>();
  for (int64_t j = 0; j < d; ++j) m[j] = static_cast<AccT>(mu64[j] / static_cast<double>(N));
  at::Tensor xc = reuse(store ? &store->xc : nullptr, N, d, acc);
  at::Tensor cn = reuse(store ? &store->cn : nullptr, N, 1, at::kDouble).view({N});
  AccT* xp = xc.data_ptr<AccT>();
  double* cp = cn.data_ptr<double>();
  at::parallel_for(0, N, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      cp[r] = centre_row<T, AccT>(x + r * d, m, d, xp + r * d);
    }
  });
  return {xc, cn, mu, acc == at::kDouble ? 0x1p-53 : 0x1p-24};
}

inline Centred make_centred(const at::Tensor& xt) {
  Centred C;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xt.scalar_type(), "fastsel_make_centred", [&] {
    C = centred_rows<scalar_t, typename Acc<scalar_t>::type>(xt.data_ptr<scalar_t>(), xt.size(0), xt.size(1),
                                                              xt.options());
  });
  return C;
}

// Lower md[i] (for rows with md[i] >= 0) to min(md[i], d2(x_i, x_p)) over the picks P: GEMM
// tiles of the centred copy C (pool order) against the picks, each row settled by settle_row.
template <typename T, typename Acc>
void update_against(const Centred& C, const T* x, int64_t N, int64_t d, Acc* md, const std::vector<int64_t>& P) {
  const int64_t np = static_cast<int64_t>(P.size());
  if (np == 0) return;
  const double* cnp = C.cn.data_ptr<double>();
  std::vector<int64_t> Pv(P);
  at::Tensor pidx = at::from_blob(Pv.data(), {np}, at::kLong).clone();
  at::Tensor pc = C.xc.index_select(0, pidx).t().contiguous();  // (d, P)
  std::vector<double> pn(np);
  std::vector<std::vector<Acc>> pbuf(np);
  std::vector<const Acc*> pexact(np);
  for (int64_t a = 0; a < np; ++a) {
    pn[a] = cnp[P[a]];
    pexact[a] = centre<T, Acc>(x + P[a] * d, d, pbuf[a]);
  }
  const double kappa = gemm_kappa(d, C.u);  // settle_row's bound
  for (int64_t r0 = 0; r0 < N; r0 += kRowBlock) {
    const int64_t rb = std::min(kRowBlock, N - r0);
    at::Tensor G = at::mm(C.xc.narrow(0, r0, rb), pc);  // (rb, P)
    const Acc* gp = G.data_ptr<Acc>();
    at::parallel_for(0, rb, 256, [&](int64_t i0, int64_t i1) {
      std::vector<double> lo(np);
      for (int64_t ii = i0; ii < i1; ++ii) {
        const int64_t pos = r0 + ii, i = pos;
        Acc cur = md[i];
        if (cur < Acc(0)) continue;
        const Acc* g = gp + ii * np;
        cur = settle_row<T, Acc>(x + i * d, d, cur, cnp[pos], np, [&](int64_t a) { return g[a]; },
                                 [&](int64_t a) { return pn[a]; }, [&](int64_t a) { return pexact[a]; }, kappa,
                                 lo.data());
        md[i] = cur;
      }
    });
  }
}

}  // namespace cpu
}  // namespace fastsel
