// CUDA kernels of fastsel::greedy (schema and contract: csrc/ops.cpp; entry point and
// argument checks: csrc/cuda/ops_cuda.cpp).
//
// single: one launch of scan_kernel (row_scan.cuh) per pick over the whole chip;
//   the grid's last block reduces the arg-max and makes the next pick on the
//   device, so n picks are n queued launches with no host round-trip.
// multi: exact multi-pick passes as on the CPU: the top-M rows (a stable sort
//   of the state), their pairwise distances certified by refine_pairs, a
//   one-block sequential resolve, then one certified GEMM update of the pool.
#include "cuda/launch.h"
#include "cuda/multipick.cuh"

namespace fastsel {
namespace cuda {

namespace {
constexpr int kResolveThreads = 1024;
constexpr int kMaxPerThread = 4;  // M <= 4096 candidates
constexpr int64_t kMaxM = kResolveThreads * kMaxPerThread;
}  // namespace

template <typename A> __global__ void begin_kernel(A* md, int64_t first, int64_t* cur, int64_t* idx, A* d2) {
  *cur = first;
  idx[0] = first;
  d2[0] = md[first];
  md[first] = A(-1);
}

// Resolve a pass's picks among m candidates (one block). Thread tid owns
// candidates tid + k * 1024; E (m, m) from refine_pairs.
template <typename A>
__global__ void __launch_bounds__(kResolveThreads)
    resolve_greedy_kernel(const int64_t* __restrict__ cand, const A* __restrict__ vals0, int64_t m,
                          const A* __restrict__ E, bool bounded, const int64_t* __restrict__ itheta_p,
                          const A* __restrict__ md, int64_t budget, int64_t* idx_out, A* d2_out, int64_t* P,
                          int64_t* np_out) {
  const int tid = threadIdx.x, lane = tid & (kWarp - 1), warp = tid / kWarp;
  A v[kMaxPerThread];
  int64_t row[kMaxPerThread];
#pragma unroll
  for (int k = 0; k < kMaxPerThread; ++k) {
    const int64_t a = tid + static_cast<int64_t>(k) * kResolveThreads;
    row[k] = a < m ? cand[a] : -1;  // -1: no candidate / taken
    v[k] = a < m ? vals0[a] : A(-1);
  }
  const int64_t itheta = bounded ? *itheta_p : -1;
  const A theta = bounded ? md[itheta] : A(-1);
  __shared__ A s_v[kWarp];
  __shared__ int64_t s_i[kWarp];
  __shared__ int64_t s_sel;  // candidate slot picked in this round, -1 to stop
  int64_t cnt = 0;
  while (cnt < budget) {
    A bv = A(-1);
    int64_t bi = -1, bslot = -1;
#pragma unroll
    for (int k = 0; k < kMaxPerThread; ++k) {
      if (better(v[k], row[k], bv, bi)) {
        bv = v[k];
        bi = row[k];
        bslot = tid + static_cast<int64_t>(k) * kResolveThreads;
      }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      A ov = __shfl_xor_sync(kFull, bv, o);
      int64_t oi = __shfl_xor_sync(kFull, bi, o), os = __shfl_xor_sync(kFull, bslot, o);
      if (better(ov, oi, bv, bi)) { bv = ov; bi = oi; bslot = os; }
    }
    __shared__ int64_t s_slot[kWarp];
    if (lane == 0) { s_v[warp] = bv; s_i[warp] = bi; s_slot[warp] = bslot; }
    __syncthreads();
    if (tid == 0) {
      for (int w = 1; w < kResolveThreads / kWarp; ++w)
        if (better(s_v[w], s_i[w], bv, bi)) { bv = s_v[w]; bi = s_i[w]; bslot = s_slot[w]; }
      bool ok = bi >= 0 && (!bounded || bv > theta || (bv == theta && bi < itheta));
      if (ok) {
        idx_out[cnt] = bi;
        d2_out[cnt] = bv;
        P[cnt] = bi;
      }
      s_sel = ok ? bslot : -1;
    }
    __syncthreads();
    const int64_t sel = s_sel;
    if (sel < 0) break;
    ++cnt;
    if (cnt == budget) break;
    const A* e = E + sel * m;
#pragma unroll
    for (int k = 0; k < kMaxPerThread; ++k) {
      const int64_t a = tid + static_cast<int64_t>(k) * kResolveThreads;
      if (a == sel) row[k] = -1;
      else if (row[k] >= 0) {
        const A w = e[a];
        v[k] = w < v[k] ? w : v[k];
      }
    }
  }
  if (tid == 0) *np_out = cnt;
}

template <typename T, typename A>
static void greedy_single(const at::Tensor& x, at::Tensor& md, int64_t n, int64_t first, at::Tensor& idx,
                          at::Tensor& d2) {
  Scanner<T, A> S(x, md.data_ptr<A>());
  at::Tensor cur = at::empty({1}, x.options().dtype(at::kLong));
  ScanArgs<T, A> a = S.args;
  a.cur_out = cur.data_ptr<int64_t>();
  a.idx_out = idx.data_ptr<int64_t>();
  a.d2_out = d2.data_ptr<A>();
  if (first >= 0) {
    begin_kernel<A><<<1, 1, 0, S.stream>>>(md.data_ptr<A>(), first, a.cur_out, a.idx_out, a.d2_out);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  } else {  // resume: the first pick is the state's arg-max (a scan with no centre)
    ScanArgs<T, A> s = a;
    s.t_next = 0;
    S.launch(s);
  }
  a.centre_idx = a.cur_out;
  for (int64_t t = 0; t < n; ++t) {
    a.t_next = t + 1;
    if (t + 1 == n) a.idx_out = nullptr;  // the last pick is applied too: the state stays exact
    S.launch(a);
  }
  record_greedy_stats(n, n);
}

template <typename T, typename A>
static void greedy_multi(const at::Tensor& x, at::Tensor& md, int64_t n, int64_t first, at::Tensor& idx,
                         at::Tensor& d2, int64_t remaining) {
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
  int64_t t = 0;
  if (first >= 0) {  // the given first pick: one ordinary scan
    Scanner<T, A> S(x, md.data_ptr<A>());
    at::Tensor cur = at::empty({1}, x.options().dtype(at::kLong));
    begin_kernel<A><<<1, 1, 0, stream>>>(md.data_ptr<A>(), first, cur.data_ptr<int64_t>(),
                                         idx.data_ptr<int64_t>(), d2.data_ptr<A>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    ScanArgs<T, A> a = S.args;
    a.centre_idx = cur.data_ptr<int64_t>();
    S.launch(a);
    t = 1;
    --remaining;
    record_greedy_stats(1, 1);
  }
  if (t == n) return;
  const Centred C = make_centred(x);
  at::Tensor np_dev = at::empty({1}, x.options().dtype(at::kLong));
  at::Tensor Pbuf = at::empty({kMaxM}, x.options().dtype(at::kLong));
  int64_t M = 256;
  while (t < n) {
    // 1. the top-M unselected rows in greedy's order (stable: ties keep index order)
    at::Tensor order = std::get<1>(at::sort(md, /*stable=*/true, /*dim=*/0, /*descending=*/true));
    const int64_t m = std::min(M, remaining);
    const bool bounded = remaining > M;
    at::Tensor cand = order.narrow(0, 0, m).contiguous();
    at::Tensor vals0 = md.index_select(0, cand);
    // 2. certified pairwise distances, then the sequential resolve on one block
    at::Tensor E = refine_pairs<T, A>(x, C, cand, vals0, stream);
    resolve_greedy_kernel<A><<<1, kResolveThreads, 0, stream>>>(
        cand.data_ptr<int64_t>(), vals0.data_ptr<A>(), m, E.data_ptr<A>(), bounded,
        bounded ? order.data_ptr<int64_t>() + m : nullptr, md.data_ptr<A>(), n - t, idx.data_ptr<int64_t>() + t,
        d2.data_ptr<A>() + t, Pbuf.data_ptr<int64_t>(), np_dev.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    const int64_t np = np_dev.item<int64_t>();  // the pass's one host sync
    TORCH_CHECK(np >= 1, "fastsel internal error: a multi-pick pass made no pick");
    at::Tensor P = Pbuf.narrow(0, 0, np);
    md.index_fill_(0, P, A(-1));
    // 3. the pool against every pick of the pass
    update_against<T, A>(C, x, md, P, stream);
    t += np;
    remaining -= np;
    record_greedy_stats(1, np);
    // 4. adapt the candidate count to the picks a pass yields
    if (2 * np >= M && M < kMaxM) M *= 2;
    else if (8 * np < M && M > 32) M /= 2;
  }
}

void greedy_run(const at::Tensor& x, at::Tensor& md, int64_t n, int64_t first, bool multi, int64_t remaining,
                at::Tensor& idx, at::Tensor& d2) {
  reset_greedy_stats();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastsel_greedy_cuda", [&] {
    using A = typename AccT<scalar_t>::type;
    if (multi) greedy_multi<scalar_t, A>(x, md, n, first, idx, d2, remaining);
    else greedy_single<scalar_t, A>(x, md, n, first, idx, d2);
  });
}

}  // namespace cuda
}  // namespace fastsel
