// Multi-pick machinery on the GPU (greedy multi, threshold chunks); the CPU
// counterpart is csrc/cpu/multipick.h and follows the same argument.
//
// GEMM-form squared distances of centred rows, ||a||^2 + ||b||^2 - 2 a.b, come
// from cuBLAS (through at::mm, with TF32 switched off for the call); a rigorous
// bound kappa * (|a| + |b|)^2 on their distance to warp_d2's value decides, per
// pair, whether the pair can matter. Only those pairs are recomputed by
// warp_d2, so every min-distance equals what the one-pick scan would give.
#pragma once
#include "cuda/row_scan.cuh"
#include "utils.h"  // Centred, gemm_kappa

namespace fastsel {
namespace cuda {

inline Centred make_centred(const at::Tensor& x) {
  const int64_t N = x.size(0), d = x.size(1), B = 65536;
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor mu = at::zeros({d}, x.options().dtype(at::kDouble));
  for (int64_t r0 = 0; r0 < N; r0 += B) mu += x.narrow(0, r0, std::min(B, N - r0)).to(at::kDouble).sum(0);
  mu = (mu / static_cast<double>(N)).to(acc);
  at::Tensor xc = at::empty({N, d}, x.options().dtype(acc));
  at::Tensor cn = at::empty({N}, x.options().dtype(at::kDouble));
  for (int64_t r0 = 0; r0 < N; r0 += B) {
    const int64_t rb = std::min(B, N - r0);
    at::Tensor blk = xc.narrow(0, r0, rb);
    at::sub_out(blk, x.narrow(0, r0, rb).to(acc), mu);
    cn.narrow(0, r0, rb).copy_(blk.to(at::kDouble).square().sum(1).sqrt());
  }
  return {xc, cn, mu, acc == at::kDouble ? 0x1p-53 : 0x1p-24};
}

// |GEMM-form d^2 - warp_d2| <= kappa * (|c_a| + |c_b|)^2 (dot product, centring
// and the difference form's own rounding), as on the CPU.
inline double kappa_for(int64_t d, double u) { return gemm_kappa(d, u); }  // utils.h

// a x b^T in full float32 (never TF32: its 10-bit products would break the bound).
inline at::Tensor mm_exact(const at::Tensor& a, const at::Tensor& b_t) {
  at::NoTF32Guard no_tf32;
  return at::mm(a, b_t);
}

// E (m, m): E[p * m + a] is warp_d2(cand a, cand p) when the GEMM bound says that
// pair can lower vals0[a], else +inf (picking p then leaves a's value as it is).
// One warp per pair of rows (w, m - 1 - w) of the triangle, for balance.
template <typename T, typename A>
__global__ void refine_kernel(const T* __restrict__ x, int64_t d, bool vec4, const int64_t* __restrict__ cand,
                              const A* __restrict__ vals0, const A* __restrict__ G, const double* __restrict__ cn,
                              int64_t m, double kappa, A* __restrict__ E) {
  const int lane = threadIdx.x & (kWarp - 1);
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const A inf = std::numeric_limits<A>::infinity();
  for (int side = 0; side < 2; ++side) {
    const int64_t a = side == 0 ? w : m - 1 - w;
    if (a >= m || (side == 1 && a == w)) continue;
    if (side == 1 && a < (m + 1) / 2) continue;
    const double ca = cn[cand[a]];
    const A va = vals0[a];
    const T* ra = x + cand[a] * d;
    for (int64_t b0 = a + 1; b0 < m; b0 += kWarp) {
      const int64_t b = b0 + lane;
      bool need_ab = false, need_ba = false;
      if (b < m) {
        const double cb = cn[cand[b]];
        const double s = ca + cb;
        const double lo = ca * ca + cb * cb - 2.0 * static_cast<double>(G[a * m + b]) - kappa * s * s;
        need_ab = lo < static_cast<double>(vals0[b]);  // picking a may lower b
        need_ba = lo < static_cast<double>(va);        // picking b may lower a
        if (!need_ab) E[a * m + b] = inf;
        if (!need_ba) E[b * m + a] = inf;
      }
      unsigned mask = __ballot_sync(kFull, need_ab || need_ba);
      while (mask) {
        const int src = __ffs(mask) - 1;
        mask &= mask - 1;
        const int64_t bb = b0 + src;
        const A v = warp_d2<T, A>(ra, x + cand[bb] * d, d, lane, vec4);
        if (lane == src) {
          if (need_ab) E[a * m + bb] = v;
          if (need_ba) E[bb * m + a] = v;
        }
      }
    }
  }
}

template <typename T, typename A>
at::Tensor refine_pairs(const at::Tensor& x, const Centred& C, const at::Tensor& cand, const at::Tensor& vals0,
                        cudaStream_t stream) {
  const int64_t m = cand.size(0), d = x.size(1);
  at::Tensor cc = C.xc.index_select(0, cand);
  at::Tensor G = mm_exact(cc, cc.t()).contiguous();
  at::Tensor E = at::empty({m, m}, vals0.options());
  const int64_t warps = (m + 1) / 2;
  const int threads = 128;
  const int64_t blocks = ceil_div(warps * kWarp, threads);
  refine_kernel<T, A><<<blocks, threads, 0, stream>>>(x.data_ptr<T>(), d, vec4_ok(x), cand.data_ptr<int64_t>(),
                                                      vals0.data_ptr<A>(), G.data_ptr<A>(),
                                                      C.cn.data_ptr<double>(), m, kappa_for(d, C.u),
                                                      E.data_ptr<A>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return E;
}

// Certified pool update: one warp per row of a row block; G (rb, np) holds the
// GEMM dots of the block's centred rows with the picks'.
template <typename T, typename A>
__global__ void certify_kernel(const T* __restrict__ x, int64_t d, bool vec4, int64_t r0, int64_t rb,
                               const A* __restrict__ G, const int64_t* __restrict__ P, const double* __restrict__ pn,
                               int64_t np, const double* __restrict__ cn, double kappa, A* __restrict__ md) {
  const int lane = threadIdx.x & (kWarp - 1);
  const int64_t ii = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  if (ii >= rb) return;
  const int64_t i = r0 + ii;
  A cur = md[i];
  if (cur < A(0)) return;
  const double ci = cn[i];
  const A* g = G + ii * np;
  double umin = std::numeric_limits<double>::infinity();
  for (int64_t a = lane; a < np; a += kWarp) {
    const double s = ci + pn[a];
    umin = fmin(umin, ci * ci + pn[a] * pn[a] - 2.0 * static_cast<double>(g[a]) + kappa * s * s);
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) umin = fmin(umin, __shfl_xor_sync(kFull, umin, o));
  const T* xi = x + i * d;
  for (int64_t a0 = 0; a0 < np; a0 += kWarp) {
    const int64_t a = a0 + lane;
    bool need = false;
    if (a < np) {
      const double s = ci + pn[a];
      const double lo = ci * ci + pn[a] * pn[a] - 2.0 * static_cast<double>(g[a]) - kappa * s * s;
      need = lo <= umin && lo < static_cast<double>(cur);
    }
    unsigned mask = __ballot_sync(kFull, need);
    while (mask) {
      const int src = __ffs(mask) - 1;
      mask &= mask - 1;
      const A v = warp_d2<T, A>(xi, x + P[a0 + src] * d, d, lane, vec4);
      cur = v < cur ? v : cur;
    }
  }
  if (lane == 0) md[i] = cur;
}

// Lower md[i] (rows with md[i] >= 0) to min(md[i], warp_d2(x_i, x_p)) over the picks P (device, int64).
template <typename T, typename A>
void update_against(const Centred& C, const at::Tensor& x, at::Tensor& md, const at::Tensor& P, cudaStream_t stream) {
  const int64_t np = P.size(0);
  if (np == 0) return;
  const int64_t N = x.size(0), d = x.size(1);
  at::Tensor pc_t = C.xc.index_select(0, P).t();
  at::Tensor pn = C.cn.index_select(0, P).contiguous();
  // row blocks keep the GEMM output under ~256 MB
  const int64_t rb_max = std::max<int64_t>(1024, (int64_t(1) << 26) / np);
  const double kappa = kappa_for(d, C.u);
  const bool v4 = vec4_ok(x);
  for (int64_t r0 = 0; r0 < N; r0 += rb_max) {
    const int64_t rb = std::min(rb_max, N - r0);
    at::Tensor G = mm_exact(C.xc.narrow(0, r0, rb), pc_t).contiguous();
    const int threads = 256;
    const int64_t blocks = ceil_div(rb * kWarp, threads);
    certify_kernel<T, A><<<blocks, threads, 0, stream>>>(x.data_ptr<T>(), d, v4, r0, rb, G.data_ptr<A>(),
                                                         P.data_ptr<int64_t>(), pn.data_ptr<double>(), np,
                                                         C.cn.data_ptr<double>(), kappa, md.data_ptr<A>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
}

}  // namespace cuda
}  // namespace fastsel
