// fastsel::greedy_sets on CUDA: every set of a batch in ONE launch, one thread block per set (the
// point-cloud workload: PointNet++-style sampling of 32 x 4,096 x 3, K = 1,024, every training step).
// Ragged sets by ptr, per-set n and start, outputs packed set after set (offsets: optr).
//
// Exactness: each squared distance is the canonical GPU one (device.cuh, warp_d2) -- computed by a
// whole warp per row for wide rows, or, for rows of at most kThreadRowD elements, by one thread that
// replays warp_d2's lane partials and xor butterfly exactly (serial_d2), so the min-distance state,
// picks and distances are bit for bit those of greedy's CUDA kernel run on each set alone, and the
// tie rule (larger value, then lower index) is greedy's everywhere.
//
// Off by default (fastsel/_backend.py, CUDA_NEW_KERNELS) until a device run has passed its tests.
#include "cuda/device.cuh"
#include "cuda/launch.h"

namespace fastsel {
namespace cuda {

constexpr int kSetsThreads = 256;   // threads per block (one block per set)
constexpr int64_t kThreadRowD = 32; // rows of at most this many elements: one thread per row

// warp_d2's value, computed by one thread: the 32 lanes' strided partial sums (the same FMAs in the
// same order), then the xor butterfly of warp_sum (lane 0's result; a + b == b + a, so every lane's).
template <typename T, typename A>
__device__ __forceinline__ A serial_d2(const T* __restrict__ a, const T* __restrict__ b, int64_t d, bool vec4) {
  A v[kWarp];
#pragma unroll
  for (int l = 0; l < kWarp; ++l) v[l] = A(0);
  if (vec4) {
    for (int64_t j = 0; j < d; j += 4) {
      const int l = static_cast<int>((j / 4) % kWarp);
#pragma unroll
      for (int e = 0; e < 4; ++e) v[l] = sq_acc(v[l], load1<T, A>(a + j + e), load1<T, A>(b + j + e));
    }
  } else {
    for (int64_t j = 0; j < d; ++j) {
      const int l = static_cast<int>(j % kWarp);
      v[l] = sq_acc(v[l], load1<T, A>(a + j), load1<T, A>(b + j));
    }
  }
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    A w[kWarp];
#pragma unroll
    for (int l = 0; l < kWarp; ++l) w[l] = add_rn(v[l], v[l ^ o]);
#pragma unroll
    for (int l = 0; l < kWarp; ++l) v[l] = w[l];
  }
  return v[0];
}

// The block's best (value, index) into every thread: warps reduce, then warp 0 reduces the warps.
template <typename A>
__device__ __forceinline__ int64_t block_best(A bv, int64_t bi, A* s_v, int64_t* s_i) {
  const int lane = threadIdx.x % kWarp, w = threadIdx.x / kWarp, nw = blockDim.x / kWarp;
#pragma unroll
  for (int o = kWarp / 2; o > 0; o >>= 1) {
    A ov = __shfl_xor_sync(kFull, bv, o);
    int64_t oi = __shfl_xor_sync(kFull, bi, o);
    if (better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
  }
  if (lane == 0) { s_v[w] = bv; s_i[w] = bi; }
  __syncthreads();
  if (w == 0) {
    bv = lane < nw ? s_v[lane] : A(-1);
    bi = lane < nw ? s_i[lane] : int64_t(-1);
#pragma unroll
    for (int o = kWarp / 2; o > 0; o >>= 1) {
      A ov = __shfl_xor_sync(kFull, bv, o);
      int64_t oi = __shfl_xor_sync(kFull, bi, o);
      if (better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
    }
    if (lane == 0) s_i[0] = bi;
  }
  __syncthreads();
  const int64_t out = s_i[0];
  __syncthreads();  // s_i is reused by the next pick
  return out;
}

// One block per set b: rows [ptr[b], ptr[b + 1]), n[b] picks from start[b] (set-local), written at
// optr[b]. md: (R,) +inf on entry. WarpRows: one warp per row (d > kThreadRowD), else one thread.
template <typename T, typename A, bool WarpRows>
__global__ void __launch_bounds__(kSetsThreads)
    greedy_sets_kernel(const T* __restrict__ x, int64_t d, const int64_t* __restrict__ ptr,
                       const int64_t* __restrict__ n, const int64_t* __restrict__ start,
                       const int64_t* __restrict__ optr, A* __restrict__ md, int64_t* __restrict__ idx,
                       A* __restrict__ d2, bool vec4) {
  __shared__ A s_v[kSetsThreads / kWarp];
  __shared__ int64_t s_i[kSetsThreads / kWarp];
  const int64_t b = blockIdx.x, r0 = ptr[b], N = ptr[b + 1] - r0, nb = n[b], o = optr[b];
  if (nb <= 0) return;
  const T* xs = x + r0 * d;
  A* m = md + r0;
  int64_t cur = start[b];
  if (threadIdx.x == 0) {
    idx[o] = r0 + cur;
    d2[o] = m[cur];
    m[cur] = A(-1);
  }
  __syncthreads();
  const int lane = threadIdx.x % kWarp;
  for (int64_t t = 1; t < nb; ++t) {
    const T* c = xs + cur * d;
    A bv = A(-1);
    int64_t bi = -1;
    if (WarpRows) {
      for (int64_t i = threadIdx.x / kWarp; i < N; i += blockDim.x / kWarp) {
        const A old = m[i];  // every lane reads it: the warp takes one branch
        if (old < A(0)) continue;  // picked
        const A v = warp_d2<T, A>(xs + i * d, c, d, lane, vec4);  // every lane: the same bits
        const A mm = v < old ? v : old;
        __syncwarp();
        if (lane == 0) m[i] = mm;
        if (better(mm, i, bv, bi)) { bv = mm; bi = i; }
      }
    } else {
      for (int64_t i = threadIdx.x; i < N; i += blockDim.x) {
        const A old = m[i];
        if (old < A(0)) continue;
        const A v = serial_d2<T, A>(xs + i * d, c, d, vec4);
        const A mm = v < old ? v : old;
        m[i] = mm;
        if (better(mm, i, bv, bi)) { bv = mm; bi = i; }
      }
    }
    cur = block_best(bv, bi, s_v, s_i);
    if (threadIdx.x == 0) {
      idx[o + t] = r0 + cur;
      d2[o + t] = m[cur];
      m[cur] = A(-1);
    }
    __syncthreads();
  }
}

void greedy_sets_run(const at::Tensor& x, const at::Tensor& ptr, const at::Tensor& n, const at::Tensor& start,
                     const at::Tensor& optr, at::Tensor& md, at::Tensor& idx, at::Tensor& d2) {
  const int64_t B = ptr.numel() - 1, d = x.size(1);
  if (B <= 0) return;
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastsel_greedy_sets_cuda", [&] {
    using A = typename AccT<scalar_t>::type;
    // 4-element loads need d % 4 == 0 and a base aligned to 4 elements (the same rule as greedy's)
    const bool vec4 = vec4_ok(x);
    const auto args = std::make_tuple(x.data_ptr<scalar_t>(), d, ptr.data_ptr<int64_t>(), n.data_ptr<int64_t>(),
                                      start.data_ptr<int64_t>(), optr.data_ptr<int64_t>(), md.data_ptr<A>(),
                                      idx.data_ptr<int64_t>(), d2.data_ptr<A>(), vec4);
    if (d > kThreadRowD) {
      std::apply([&](auto... a) { greedy_sets_kernel<scalar_t, A, true><<<B, kSetsThreads, 0, stream>>>(a...); },
                 args);
    } else {
      std::apply([&](auto... a) { greedy_sets_kernel<scalar_t, A, false><<<B, kSetsThreads, 0, stream>>>(a...); },
                 args);
    }
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace cuda
}  // namespace fastsel
