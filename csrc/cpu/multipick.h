// Shared machinery of the multi-pick kernels (greedy multi, threshold chunks):
// a centred copy of the pool for GEMMs, and the certified update of every
// row's min-distance against a batch of new picks.
//
// The update computes GEMM-form squared distances of centred rows and keeps,
// per row, only the picks whose rigorous error interval can hold the row's new
// minimum below its current value; those are recomputed by row_d2_dispatch,
// the same difference form (same clone, same rounding) the one-pick kernel
// uses. The resulting min-distances are therefore bit-identical to applying
// the picks one by one.
#pragma once
#include <ATen/ATen.h>

#include <limits>
#include <vector>

#include "cpu/rowdist.h"

namespace fastsel {
namespace cpu {

constexpr int64_t kRowBlock = 8192;  // rows per GEMM tile

struct Centred {
  at::Tensor xc;  // (N, d) accumulation dtype: x - mean(x)
  at::Tensor cn;  // (N,) float64 norms of the centred rows
  at::Tensor mu;  // (d,) the mean, in the accumulation dtype (to centre other rows, e.g. queries)
  double u;       // unit roundoff of the accumulation dtype
};

inline Centred make_centred(const at::Tensor& xt) {
  const int64_t N = xt.size(0), d = xt.size(1);
  const auto acc = xt.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor mu = at::zeros({d}, xt.options().dtype(at::kDouble));
  for (int64_t r0 = 0; r0 < N; r0 += kRowBlock)
    mu += xt.narrow(0, r0, std::min(kRowBlock, N - r0)).to(at::kDouble).sum(0);
  mu = (mu / static_cast<double>(N)).to(acc);
  at::Tensor xc = at::empty({N, d}, xt.options().dtype(acc));
  at::Tensor cn = at::empty({N}, xt.options().dtype(at::kDouble));
  for (int64_t r0 = 0; r0 < N; r0 += kRowBlock) {
    int64_t rb = std::min(kRowBlock, N - r0);
    at::Tensor blk = xc.narrow(0, r0, rb);
    blk.copy_(xt.narrow(0, r0, rb).to(acc) - mu);
    cn.narrow(0, r0, rb).copy_(blk.to(at::kDouble).square().sum(1).sqrt());
  }
  return {xc, cn, mu, acc == at::kDouble ? 0x1p-53 : 0x1p-24};
}

// Lower md[i] (for rows with md[i] >= 0) to min(md[i], d2(x_i, x_p)) over the picks P.
// When C stores the rows permuted (row r of C.xc is pool row perm[r]), perm and the picks'
// positions Ppos in C are given.
template <typename T, typename Acc>
void update_against(const Centred& C, const T* x, int64_t N, int64_t d, Acc* md, const std::vector<int64_t>& P,
                    const int64_t* perm = nullptr, const std::vector<int64_t>* Ppos = nullptr) {
  const int64_t np = static_cast<int64_t>(P.size());
  if (np == 0) return;
  const double* cnp = C.cn.data_ptr<double>();
  std::vector<int64_t> Pv(Ppos != nullptr ? *Ppos : P);
  at::Tensor pidx = at::from_blob(Pv.data(), {np}, at::kLong).clone();
  at::Tensor pc = C.xc.index_select(0, pidx).t().contiguous();  // (d, P)
  std::vector<double> pn(np);
  std::vector<std::vector<Acc>> pbuf(np);
  std::vector<const Acc*> pexact(np);
  for (int64_t a = 0; a < np; ++a) {
    pn[a] = cnp[Pv[a]];
    pexact[a] = centre<T, Acc>(x + P[a] * d, d, pbuf[a]);
  }
  // |GEMM-form d^2 - difference-form d^2| <= kappa * (|c_i| + |c_p|)^2: the dot
  // product's rounding, the centring's rounding and the difference form's own.
  const double kappa = 4.0 * (static_cast<double>(d) + 8.0) * C.u;
  for (int64_t r0 = 0; r0 < N; r0 += kRowBlock) {
    const int64_t rb = std::min(kRowBlock, N - r0);
    at::Tensor G = at::mm(C.xc.narrow(0, r0, rb), pc);  // (rb, P)
    const Acc* gp = G.data_ptr<Acc>();
    at::parallel_for(0, rb, 256, [&](int64_t i0, int64_t i1) {
      std::vector<double> lo(np);
      for (int64_t ii = i0; ii < i1; ++ii) {
        const int64_t pos = r0 + ii, i = perm != nullptr ? perm[pos] : pos;
        Acc cur = md[i];
        if (cur < Acc(0)) continue;
        const double ci = cnp[pos];
        double umin = std::numeric_limits<double>::infinity();
        for (int64_t a = 0; a < np; ++a) {
          double s = ci + pn[a];
          double e = kappa * s * s;
          double g = ci * ci + pn[a] * pn[a] - 2.0 * static_cast<double>(gp[ii * np + a]);
          lo[a] = g - e;
          umin = std::min(umin, g + e);
        }
        for (int64_t a = 0; a < np; ++a) {
          // pick a can hold the new minimum only if its lower bound is under
          // every pick's upper bound and under the current value
          if (lo[a] <= umin && lo[a] < static_cast<double>(cur)) {
            Acc v = row_d2_dispatch(x + i * d, pexact[a], d);
            if (v < cur) cur = v;
          }
        }
        md[i] = cur;
      }
    });
  }
}

}  // namespace cpu
}  // namespace fastsel
