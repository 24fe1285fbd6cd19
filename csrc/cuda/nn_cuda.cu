// CUDA kernel of fastsel::nn (schema and contract: csrc/ops.cpp; entry point and
// argument checks: csrc/cuda/ops_cuda.cpp); the same
// four steps as csrc/cpu/nn_cpu.cpp:
// 1. centre both sets on the ref mean;
// 2. per (query block, ref block) tile, one cuBLAS GEMM (TF32 off) gives q.r,
//    and a warp per query row ranks ||r||^2 - 2 q.r and merges the tile into its
//    running top-(k + extra) list (held across the warp's lanes, updated with
//    shuffles), ties to the lower index; memory is O(Q (k + extra) + tile);
// 3. the candidates are re-ranked by the float64 difference form;
// 4. queries the GEMM error bound cannot certify get a full float64 scan.
#include "cuda/launch.h"
#include "cuda/multipick.cuh"

namespace fastsel {
namespace cuda {

namespace {
constexpr int64_t kQueryBlock = 4096;
constexpr int64_t kRefBlock = 16384;  // a tile is 4096 x 16384 x 4 B = 256 MB
constexpr int64_t kExtra = 4;
constexpr int64_t kFallbackRows = 32;
}  // namespace

// Merge one GEMM tile (G = q.r) into the running lists (cv, ci) of kc <= 32
// entries per query, ranked by ||r||^2 - 2 q.r. Lane l holds the list's l-th smallest entry; a value enters only when
// strictly below the current worst, after every entry <= it.
template <typename A>
__global__ void topk_merge_kernel(const A* __restrict__ G, const A* __restrict__ rn, int64_t qb, int64_t rb,
                                  int64_t q0, int64_t r0, int kc, bool exclude_self, A* __restrict__ cv,
                                  int64_t* __restrict__ ci) {
  const int lane = threadIdx.x & (kWarp - 1);
  const int64_t ii = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  if (ii >= qb) return;
  const int64_t qi = q0 + ii;
  const A inf = std::numeric_limits<A>::infinity();
  A lv = lane < kc ? cv[qi * kc + lane] : inf;
  int64_t li = lane < kc ? ci[qi * kc + lane] : -1;
  A worst = __shfl_sync(kFull, lv, kc - 1);
  const A* row = G + ii * rb;
  for (int64_t j0 = 0; j0 < rb; j0 += kWarp) {
    const int64_t j = j0 + lane;
    A v = inf;
    if (j < rb && !(exclude_self && r0 + j == qi)) v = rn[r0 + j] - A(2) * row[j];  // as on the CPU
    unsigned mask = __ballot_sync(kFull, v < worst);
    while (mask) {
      const int src = __ffs(mask) - 1;
      mask &= mask - 1;
      const A nv = __shfl_sync(kFull, v, src);
      const int64_t nj = r0 + j0 + src;
      if (!(nv < worst)) continue;
      const int p = __popc(__ballot_sync(kFull, lane < kc && lv <= nv));
      const A up_v = __shfl_up_sync(kFull, lv, 1);
      const int64_t up_i = __shfl_up_sync(kFull, li, 1);
      if (lane < kc && lane > p) { lv = up_v; li = up_i; }
      if (lane == p) { lv = nv; li = nj; }
      worst = __shfl_sync(kFull, lv, kc - 1);
    }
  }
  if (lane < kc) {
    cv[qi * kc + lane] = lv;
    ci[qi * kc + lane] = li;
  }
}

// Float64 difference-form squared distances of (query i, ref ids[i, t]) pairs; one warp per pair.
template <typename T>
__global__ void exact_pairs_kernel(const T* __restrict__ q, const T* __restrict__ r, int64_t d,
                                   const int64_t* __restrict__ qrow, const int64_t* __restrict__ ids, int64_t rows,
                                   int64_t kc, double* __restrict__ out) {
  const int lane = threadIdx.x & (kWarp - 1);
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  if (w >= rows * kc) return;
  const int64_t i = qrow[w / kc], j = ids[w];
  if (j < 0) {
    if (lane == 0) out[w] = std::numeric_limits<double>::infinity();
    return;
  }
  double acc = 0.0;
  const T* a = q + i * d;
  const T* b = r + j * d;
  for (int64_t e = lane; e < d; e += kWarp) acc = sq_acc(acc, load1<T, double>(a + e), load1<T, double>(b + e));
  acc = warp_sum(acc);
  if (lane == 0) out[w] = acc;
}

// Float64 distances of a few queries to every ref row (the fallback scan); one warp per pair.
template <typename T>
__global__ void exact_all_kernel(const T* __restrict__ q, const T* __restrict__ r, int64_t d, int64_t R,
                                 const int64_t* __restrict__ qrow, int64_t rows, bool exclude_self,
                                 double* __restrict__ out) {
  const int lane = threadIdx.x & (kWarp - 1);
  const int64_t w = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  if (w >= rows * R) return;
  const int64_t i = qrow[w / R], j = w % R;
  double acc = 0.0;
  const T* a = q + i * d;
  const T* b = r + j * d;
  for (int64_t e = lane; e < d; e += kWarp) acc = sq_acc(acc, load1<T, double>(a + e), load1<T, double>(b + e));
  acc = warp_sum(acc);
  if (lane == 0) out[w] = (exclude_self && i == j) ? std::numeric_limits<double>::infinity() : acc;
}

inline int64_t warp_blocks(int64_t warps, int threads) { return ceil_div(warps * kWarp, threads); }

// The CUDA k-NN: screen by blocked GEMMs (top-k merge), re-rank in float64, certify, full scan for
// the rest. Over ~80 lines: not split this round because a split can only be run (not just
// compiled) on a GPU, and none was lent to the session that split the CPU twin (nn_cpu.cpp).
std::tuple<at::Tensor, at::Tensor> nn_run(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                          bool exclude_self) {
  const int64_t Q = query.size(0), R = ref.size(0), d = query.size(1);
  const int64_t avail = R - (exclude_self ? 1 : 0);
  const int64_t kc = std::min(avail, k + kExtra);
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(query.get_device()).stream();

  const auto acc = query.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  const Centred C = make_centred(ref);
  at::Tensor rn = (C.xc * C.xc).sum(1).contiguous();
  const double rmax = std::sqrt(rn.max().item<double>());
  at::Tensor qnorm = at::empty({Q}, query.options().dtype(at::kDouble));
  at::Tensor cand_v = at::full({Q, kc}, std::numeric_limits<double>::infinity(), query.options().dtype(acc));
  at::Tensor cand_i = at::full({Q, kc}, -1, query.options().dtype(at::kLong));
  {
    at::NoTF32Guard no_tf32;
    for (int64_t q0 = 0; q0 < Q; q0 += kQueryBlock) {
      const int64_t qb = std::min(kQueryBlock, Q - q0);
      at::Tensor qf = (query.narrow(0, q0, qb).to(acc) - C.mu).contiguous();
      qnorm.narrow(0, q0, qb).copy_((qf * qf).sum(1).to(at::kDouble));
      at::Tensor cvb = cand_v.narrow(0, q0, qb), cib = cand_i.narrow(0, q0, qb);
      for (int64_t r0 = 0; r0 < R; r0 += kRefBlock) {
        const int64_t rb = std::min(kRefBlock, R - r0);
        // a plain GEMM (cuBLAS, TF32 off); the ranking value is formed in the merge
        at::Tensor G = at::mm(qf, C.xc.narrow(0, r0, rb).t()).contiguous();
        if (kc <= kWarp) {
          AT_DISPATCH_FLOATING_TYPES(acc, "fastsel_nn_cuda_merge", [&] {
            topk_merge_kernel<scalar_t><<<warp_blocks(qb, 256), 256, 0, stream>>>(
                G.data_ptr<scalar_t>(), rn.data_ptr<scalar_t>(), qb, rb, q0, r0, static_cast<int>(kc),
                exclude_self, cand_v.data_ptr<scalar_t>(), cand_i.data_ptr<int64_t>());
            C10_CUDA_KERNEL_LAUNCH_CHECK();
          });
        } else {  // long lists: ATen's top-k, then a merge with the running list
          at::Tensor S = rn.narrow(0, r0, rb).unsqueeze(0) - 2 * G;
          if (exclude_self) {
            const int64_t lo = std::max(q0, r0), hi = std::min(q0 + qb, r0 + rb);
            if (lo < hi) {
              at::Tensor rows = at::arange(lo, hi, query.options().dtype(at::kLong));
              S.index_put_({rows - q0, rows - r0}, std::numeric_limits<double>::infinity());
            }
          }
          const int64_t kk = std::min(kc, rb);
          auto tk = at::topk(S, kk, 1, /*largest=*/false, /*sorted=*/true);
          at::Tensor allv = at::cat({cvb, std::get<0>(tk)}, 1);
          at::Tensor alli = at::cat({cib, std::get<1>(tk) + r0}, 1);
          auto m = at::topk(allv, kc, 1, /*largest=*/false, /*sorted=*/true);
          cvb.copy_(std::get<0>(m));
          cib.copy_(alli.gather(1, std::get<1>(m)));
        }
      }
    }
  }
  // 3. re-rank by the float64 difference form; ties: lowest index
  at::Tensor ex = at::empty({Q, kc}, query.options().dtype(at::kDouble));
  at::Tensor qrows = at::arange(Q, query.options().dtype(at::kLong));
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, query.scalar_type(), "fastsel_nn_cuda_rerank", [&] {
    exact_pairs_kernel<scalar_t><<<warp_blocks(Q * kc, 256), 256, 0, stream>>>(
        query.data_ptr<scalar_t>(), ref.data_ptr<scalar_t>(), d, qrows.data_ptr<int64_t>(),
        cand_i.data_ptr<int64_t>(), Q, kc, ex.data_ptr<double>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  auto by_idx = at::sort(cand_i, /*stable=*/true, 1, false);
  at::Tensor ids = std::get<0>(by_idx);
  ex = ex.gather(1, std::get<1>(by_idx));
  auto by_d = at::sort(ex, /*stable=*/true, 1, false);
  ex = std::get<0>(by_d);
  ids = ids.gather(1, std::get<1>(by_d));
  // 4. certification: every non-candidate's d^2 >= worst candidate's GEMM value - bound
  at::Tensor certified;
  if (kc == avail) {
    certified = ids.select(1, k - 1).ge(0);
  } else {
    at::Tensor worst = qnorm + std::get<0>(cand_v.max(1)).to(at::kDouble);
    at::Tensor s = qnorm.sqrt() + rmax;
    at::Tensor bound = 2.0 * (static_cast<double>(d) + 8.0) * (acc == at::kDouble ? 0x1p-53 : 0x1p-24) * s * s;
    certified = ((worst - bound) > ex.select(1, k - 1)) & cand_i.ge(0).all(1);
  }
  at::Tensor unc = at::nonzero(certified.logical_not()).view(-1);
  const int64_t nu = unc.size(0);
  for (int64_t u0 = 0; u0 < nu; u0 += kFallbackRows) {
    const int64_t ub = std::min(kFallbackRows, nu - u0);
    at::Tensor rows = unc.narrow(0, u0, ub).contiguous();
    at::Tensor D = at::empty({ub, R}, query.options().dtype(at::kDouble));
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, query.scalar_type(), "fastsel_nn_cuda_full", [&] {
      exact_all_kernel<scalar_t><<<warp_blocks(ub * R, 256), 256, 0, stream>>>(
          query.data_ptr<scalar_t>(), ref.data_ptr<scalar_t>(), d, R, rows.data_ptr<int64_t>(), ub, exclude_self,
          D.data_ptr<double>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    auto srt = at::sort(D, /*stable=*/true, 1, false);  // ascending j among equals: ties to the lowest index
    ex.index_copy_(0, rows, std::get<0>(srt).narrow(1, 0, kc));
    ids.index_copy_(0, rows, std::get<1>(srt).narrow(1, 0, kc));
  }
  at::Tensor out_d = ex.narrow(1, 0, k).sqrt().to(acc).contiguous();
  at::Tensor out_i = ids.narrow(1, 0, k).contiguous();
  return {out_d, out_i};
}

}  // namespace cuda
}  // namespace fastsel
