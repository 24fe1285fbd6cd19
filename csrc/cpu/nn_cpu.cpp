// CPU kernel of fastsel::nn (schema and contract: csrc/ops.cpp).
// 1. Both sets are centred on the ref mean (distances do not change; the GEMM
//    form no longer cancels on data far from the origin).
// 2. Blocked GEMM distances (at::mm on a query-block x ref-block tile) feed a
//    fused per-query top-(k + extra) insertion list.
// 3. The candidates are re-ranked by the float64 difference form.
// 4. Certification: with E a rigorous bound on the GEMM form's error for the
//    query, every non-candidate has true d^2 >= (worst candidate's GEMM value) - E.
//    When that exceeds the k-th exact d^2 the answer is the float64-correct one;
//    otherwise (near-ties, tight clusters) that query is recomputed by a full
//    float64 difference-form scan. Memory: O(Q * (k + extra) + tiles), never (Q, R).
#include <torch/library.h>

#include <algorithm>
#include <limits>

#include "cpu/multipick.h"
#include "cpu/rowdist.h"
#include "utils.h"

namespace fastsel {
namespace cpu {

namespace {
constexpr int64_t kQueryBlock = 1024;
constexpr int64_t kRefBlock = 4096;
constexpr int64_t kExtra = 4;  // extra GEMM candidates re-checked in float64

// Insert (v, j) into the ascending list (vals, ids) of length kc when it beats
// the last entry. Equal values keep the earlier (lower) index first, since ref
// rows arrive in ascending index order.
template <typename Acc> inline void insert(Acc* vals, int64_t* ids, int64_t kc, Acc v, int64_t j) {
  if (!(v < vals[kc - 1])) return;
  int64_t p = kc - 1;
  while (p > 0 && vals[p - 1] > v) {
    vals[p] = vals[p - 1];
    ids[p] = ids[p - 1];
    --p;
  }
  vals[p] = v;
  ids[p] = j;
}

// Scan one row of a GEMM tile: v_j = rn_j - 2 dot_j (the query's own norm is a
// constant of the row, added back at certification) and insert every v_j that
// beats the current worst candidate. Chunks whose vector minimum cannot beat
// the worst are skipped without a scalar pass.
template <typename Acc>
FASTSEL_INLINE void scan_row_impl(const Acc* __restrict dot, const Acc* __restrict rn, int64_t n, int64_t j0,
                                  Acc* vals, int64_t* ids, int64_t kc, int64_t skip) {
  using V = typename Vec<Acc>::type;
  constexpr int W = Vec<Acc>::W;
  constexpr int C = 4 * W;
  int64_t j = 0;
  for (; j + C <= n; j += C) {
    Acc tmp[C];
    V m;
    for (int b = 0; b < 4; ++b) {
      V v = vload<Acc, Acc>(rn + j + b * W) - Acc(2) * vload<Acc, Acc>(dot + j + b * W);
      __builtin_memcpy(tmp + b * W, &v, sizeof(v));
      m = b == 0 ? v : (v < m ? v : m);
    }
    Acc mn = m[0];
    for (int e = 1; e < W; ++e) mn = m[e] < mn ? m[e] : mn;
    if (!(mn < vals[kc - 1])) continue;
    for (int e = 0; e < C; ++e) {
      const int64_t gj = j0 + j + e;
      if (gj != skip) insert<Acc>(vals, ids, kc, tmp[e], gj);
    }
  }
  for (; j < n; ++j) {
    const int64_t gj = j0 + j;
    if (gj != skip) insert<Acc>(vals, ids, kc, rn[j] - Acc(2) * dot[j], gj);
  }
}

FASTSEL_CLONES void scan_row(const float* dot, const float* rn, int64_t n, int64_t j0, float* vals, int64_t* ids,
                             int64_t kc, int64_t skip) {
  scan_row_impl<float>(dot, rn, n, j0, vals, ids, kc, skip);
}
FASTSEL_CLONES void scan_row(const double* dot, const double* rn, int64_t n, int64_t j0, double* vals, int64_t* ids,
                             int64_t kc, int64_t skip) {
  scan_row_impl<double>(dot, rn, n, j0, vals, ids, kc, skip);
}

// Bound on |GEMM-form d^2 - true d^2| for centred rows of norms a and b,
// accumulated in a type with unit roundoff u over d terms: the dot product
// and both norms each err by at most d*u*(norm products); centring rounds
// each coordinate once. Doubled for slack.
inline double gemm_error_bound(double a, double b, int64_t d, double u) {
  double s = a + b;
  return 2.0 * (static_cast<double>(d) + 8.0) * u * s * s;
}

template <typename T> double exact_d2(const T* a, const T* b, int64_t d) {
  double s = 0.0;
  for (int64_t j = 0; j < d; ++j) {
    double t = static_cast<double>(a[j]) - static_cast<double>(b[j]);
    s += t * t;
  }
  return s;
}
}  // namespace

// Phase 1: each query's kc best candidates by the GEMM form ||r||^2 - 2 q.r on rows centred on the
// ref mean mu (rc: the centred ref rows, rn: their squared norms), in blocks of queries and refs;
// qnorm gets the centred queries' squared norms.
static void screen(const at::Tensor& query, const at::Tensor& rc, const at::Tensor& mu, const at::Tensor& rn,
                   int64_t kc, bool exclude_self, at::Tensor& qnorm, at::Tensor& cand_v, at::Tensor& cand_i) {
  const int64_t Q = query.size(0), R = rc.size(0);
  const auto acc = cand_v.scalar_type();
  AT_DISPATCH_FLOATING_TYPES(acc, "fastsel_nn_cpu_gemm", [&] {
    using Acc_t = scalar_t;
    Acc_t* cv = cand_v.data_ptr<Acc_t>();
    int64_t* ci = cand_i.data_ptr<int64_t>();
    const Acc_t* rnp = rn.data_ptr<Acc_t>();
    for (int64_t q0 = 0; q0 < Q; q0 += kQueryBlock) {
      const int64_t qb = std::min(kQueryBlock, Q - q0);
      at::Tensor qf = (query.narrow(0, q0, qb).to(acc) - mu).contiguous();
      qnorm.narrow(0, q0, qb).copy_((qf * qf).sum(1).to(at::kDouble));
      for (int64_t r0 = 0; r0 < R; r0 += kRefBlock) {
        const int64_t rb = std::min(kRefBlock, R - r0);
        at::Tensor dot = at::mm(qf, rc.narrow(0, r0, rb).t()).contiguous();
        const Acc_t* dp = dot.data_ptr<Acc_t>();
        at::parallel_for(0, qb, 16, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) {
            const int64_t gi = q0 + i;
            scan_row(dp + i * rb, rnp + r0, rb, r0, cv + gi * kc, ci + gi * kc, kc, exclude_self ? gi : -1);
          }
        });
      }
    }
  });
}

// Phase 2: re-rank the candidates by the float64 difference form (ties: lowest index); a query
// the GEMM bound cannot certify (its k-th best could be outside the candidates) gets a full
// float64 scan. Writes the k nearest distances and indices.
static void rerank(const at::Tensor& query, const at::Tensor& ref, int64_t k, int64_t kc, bool exclude_self,
                   const at::Tensor& cand_v, const at::Tensor& cand_i, const at::Tensor& qnorm, double rmax, double u,
                   at::Tensor& out_d, at::Tensor& out_i) {
  const int64_t Q = query.size(0), R = ref.size(0), d = query.size(1);
  const int64_t avail = R - (exclude_self ? 1 : 0);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, query.scalar_type(), "fastsel_nn_cpu_rerank", [&] {
    using Acc_t = typename Acc<scalar_t>::type;
    const scalar_t* qp = query.data_ptr<scalar_t>();
    const scalar_t* rp = ref.data_ptr<scalar_t>();
    const int64_t* ci = cand_i.data_ptr<int64_t>();
    const Acc_t* cvp = cand_v.data_ptr<Acc_t>();
    const double* qnp = qnorm.data_ptr<double>();
    Acc_t* od = out_d.data_ptr<Acc_t>();
    int64_t* oi = out_i.data_ptr<int64_t>();
    at::parallel_for(0, Q, 64, [&](int64_t b, int64_t e) {
      std::vector<std::pair<double, int64_t>> c(kc);
      for (int64_t i = b; i < e; ++i) {
        for (int64_t t = 0; t < kc; ++t) {
          int64_t j = ci[i * kc + t];
          c[t] = {exact_d2<scalar_t>(qp + i * d, rp + j * d, d), j};
        }
        std::sort(c.begin(), c.end());
        bool certified = kc == avail;
        if (!certified) {
          double worst = qnp[i] + static_cast<double>(cvp[i * kc + kc - 1]);
          certified = worst - gemm_error_bound(std::sqrt(qnp[i]), rmax, d, u) > c[k - 1].first;
        }
        if (!certified) {
          // full float64 scan; ascending j with strict < keeps ties low
          std::vector<double> bv(k, std::numeric_limits<double>::infinity());
          std::vector<int64_t> bi(k, -1);
          for (int64_t j = 0; j < R; ++j) {
            if (exclude_self && j == i) continue;
            insert<double>(bv.data(), bi.data(), k, exact_d2<scalar_t>(qp + i * d, rp + j * d, d), j);
          }
          for (int64_t t = 0; t < k; ++t) c[t] = {bv[t], bi[t]};
        }
        for (int64_t t = 0; t < k; ++t) {
          od[i * k + t] = static_cast<Acc_t>(std::sqrt(c[t].first));
          oi[i * k + t] = c[t].second;
        }
      }
    });
  });
}

std::tuple<at::Tensor, at::Tensor> nn_cpu(const at::Tensor& query_, const at::Tensor& ref_, int64_t k,
                                          bool exclude_self) {
  check_pool(query_, "query");
  check_pool(ref_, "ref");
  TORCH_CHECK(query_.device().is_cpu() && ref_.device().is_cpu(), "query and ref must be CPU tensors");
  const int64_t avail = check_nn_args(query_, ref_, k, exclude_self);
  const int64_t Q = query_.size(0);
  const int64_t kc = std::min(avail, k + kExtra);

  at::Tensor query = query_.contiguous(), ref = ref_.contiguous();
  const auto acc = acc_dtype(query.scalar_type());
  // the ref set centred on its mean (float64 mean rounded once), and its squared norms
  const Centred C = make_centred(ref);
  const double u = C.u;
  const at::Tensor& mu = C.mu;
  const at::Tensor& rc = C.xc;
  at::Tensor rn = (rc * rc).sum(1).contiguous();
  double rmax = rn.max().item<double>();
  auto qnorm = at::empty({Q}, query.options().dtype(at::kDouble));
  auto cand_v = at::full({Q, kc}, std::numeric_limits<double>::infinity(), query.options().dtype(acc));
  auto cand_i = at::full({Q, kc}, -1, query.options().dtype(at::kLong));

  screen(query, rc, mu, rn, kc, exclude_self, qnorm, cand_v, cand_i);
  // candidates hold ||r||^2 - 2 q.r; the query's ||q||^2 is added back below
  rmax = std::sqrt(rmax);
  auto out_d = at::empty({Q, k}, query.options().dtype(acc));
  auto out_i = at::empty({Q, k}, query.options().dtype(at::kLong));
  rerank(query, ref, k, kc, exclude_self, cand_v, cand_i, qnorm, rmax, u, out_d, out_i);
  return {out_d, out_i};
}

}  // namespace cpu
}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CPU, m) { m.impl("nn", &fastsel::cpu::nn_cpu); }
