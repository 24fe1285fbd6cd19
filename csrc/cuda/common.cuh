// Shared device code of the fastsel CUDA kernels.
//
// The one definition of a squared distance on the GPU: warp_d2 below. Every
// kernel that needs an exact d^2 (the one-pick scan, the multi-pick resolve,
// the certified pool update, the threshold filter) calls it, so the GPU's
// min-distance state does not depend on which path produced it. The order of
// operations is fixed by d and the dtype alone: lane l accumulates its strided
// share with explicit round-to-nearest FMAs, then a fixed xor butterfly sums the
// 32 lanes (every lane ends with the same bits, since a + b == b + a).
//
// Only c10/cuda headers are used (stream, guard, launch check): the extension
// builds without the cuBLAS/cuSPARSE headers that <ATen/cuda/CUDAContext.h> needs.
#pragma once
#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <type_traits>

namespace fastsel {
namespace cuda {

template <typename T> struct AccT { using type = float; };
template <> struct AccT<double> { using type = double; };

constexpr int kWarp = 32;
constexpr unsigned kFull = 0xffffffffu;

__device__ __forceinline__ float sq_acc(float acc, float a, float b) {
  float t = __fsub_rn(a, b);
  return __fmaf_rn(t, t, acc);
}
__device__ __forceinline__ double sq_acc(double acc, double a, double b) {
  double t = __dsub_rn(a, b);
  return __fma_rn(t, t, acc);
}
__device__ __forceinline__ float add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add_rn(double a, double b) { return __dadd_rn(a, b); }

template <typename A> __device__ __forceinline__ A to_acc(float v) { return static_cast<A>(v); }

// Four consecutive elements, widened to the accumulation type (exact for every dtype).
template <typename T, typename A> __device__ __forceinline__ void load4(const T* __restrict__ p, A (&v)[4]) {
  if constexpr (std::is_same<T, float>::value) {
    float4 q = __ldg(reinterpret_cast<const float4*>(p));
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
  } else if constexpr (sizeof(T) == 2) {
    uint2 q = __ldg(reinterpret_cast<const uint2*>(p));
    const T* h = reinterpret_cast<const T*>(&q);
#pragma unroll
    for (int e = 0; e < 4; ++e) v[e] = static_cast<A>(static_cast<float>(h[e]));
  } else {
#pragma unroll
    for (int e = 0; e < 4; ++e) v[e] = static_cast<A>(p[e]);
  }
}

template <typename T, typename A> __device__ __forceinline__ A load1(const T* p) {
  if constexpr (sizeof(T) == 2) return static_cast<A>(static_cast<float>(*p));
  else return static_cast<A>(*p);
}

template <typename A> __device__ __forceinline__ A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = add_rn(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

// The canonical squared distance of rows a and b (d elements), called by all 32
// lanes of a warp; every lane returns the same value. vec4: d % 4 == 0 and the
// base pointers allow 4-element loads (decided once per call by the host).
template <typename T, typename A>
__device__ __forceinline__ A warp_d2(const T* __restrict__ a, const T* __restrict__ b, int64_t d, int lane,
                                     bool vec4) {
  A acc = A(0);
  if (vec4) {
#pragma unroll 4
    for (int64_t j = 4 * lane; j < d; j += 4 * kWarp) {
      A va[4], vb[4];
      load4<T, A>(a + j, va);
      load4<T, A>(b + j, vb);
#pragma unroll
      for (int e = 0; e < 4; ++e) acc = sq_acc(acc, va[e], vb[e]);
    }
  } else {
    for (int64_t j = lane; j < d; j += kWarp) acc = sq_acc(acc, load1<T, A>(a + j), load1<T, A>(b + j));
  }
  return warp_sum(acc);
}

// greedy's preference: larger value first, then lower index; index -1 = none.
template <typename A> __device__ __forceinline__ bool better(A v1, int64_t i1, A v2, int64_t i2) {
  if (i1 < 0) return false;
  if (i2 < 0) return true;
  return v1 > v2 || (v1 == v2 && i1 < i2);
}

// Warp-reduce a (best value, best index, first index) triple; the result is in every lane.
template <typename A> __device__ __forceinline__ void warp_reduce_best(A& bv, int64_t& bi, int64_t& fi) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    A ov = __shfl_xor_sync(kFull, bv, o);
    int64_t oi = __shfl_xor_sync(kFull, bi, o);
    int64_t of = __shfl_xor_sync(kFull, fi, o);
    if (better(ov, oi, bv, bi)) { bv = ov; bi = oi; }
    fi = of < fi ? of : fi;
  }
}

inline bool vec4_ok(const at::Tensor& t) {
  const int64_t d = t.size(1);
  const auto align = static_cast<uintptr_t>(4 * t.element_size());
  return d % 4 == 0 && reinterpret_cast<uintptr_t>(t.data_ptr()) % align == 0;
}

inline int num_sms(int device) {
  int v = 0;
  C10_CUDA_CHECK(cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, device));
  return v;
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ----------------------------------------------------------------------------
// The row scan: lower every unselected row's min-distance against one centre
// row and reduce, across the whole grid, the arg-max (ties: lowest index) and
// the first row >= from above thr. The last block to finish does the final
// reduction (no host round-trip) and, for greedy's one-pick loop, makes the
// next pick: it writes the pick's index to *cur_out, records it, and marks it selected.

constexpr int kScanThreads = 256;
constexpr int kScanWarps = kScanThreads / kWarp;

template <typename T, typename A> struct ScanArgs {
  const T* x;
  int64_t N, d;
  bool vec4;
  A* md;
  const T* centre;            // centre row, or nullptr: x + (*centre_idx) * d, or no update when both are null
  const int64_t* centre_idx;  // device index of the centre row
  int64_t* cur_out;           // chaining: where the last block writes the next pick's index
  double thr;          // first-above threshold (squared), compared in float64
  int64_t from;
  A* part_v;           // per-block partials (gridDim.x each)
  int64_t* part_bi;
  int64_t* part_fi;
  unsigned int* counter;  // zero before the launch; reset to zero by the last block
  double* summary;     // optional: [best, best index, first index]
  int64_t* idx_out;    // optional chaining: record the arg-max as pick t_next
  A* d2_out;
  int64_t t_next;
};

template <typename T, typename A> __global__ void __launch_bounds__(kScanThreads) scan_kernel(ScanArgs<T, A> a) {
  const int lane = threadIdx.x & (kWarp - 1), warp = threadIdx.x / kWarp;
  const T* c = a.centre;
  if (c == nullptr && a.centre_idx != nullptr) c = a.x + (*a.centre_idx) * a.d;
  A bv = A(-1);
  int64_t bi = -1, fi = std::numeric_limits<int64_t>::max();
  const int64_t nw = static_cast<int64_t>(gridDim.x) * kScanWarps;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kScanWarps + warp; i < a.N; i += nw) {
    A m = a.md[i];
    if (m < A(0)) continue;  // selected
    if (c != nullptr) {
      A v = warp_d2<T, A>(a.x + i * a.d, c, a.d, lane, a.vec4);
      if (v < m) {
        m = v;
        if (lane == 0) a.md[i] = m;
      }
    }
    if (better(m, i, bv, bi)) { bv = m; bi = i; }
    if (i >= a.from && i < fi && static_cast<double>(m) > a.thr) fi = i;
  }
  __shared__ A s_v[kScanWarps];
  __shared__ int64_t s_bi[kScanWarps], s_fi[kScanWarps];
  __shared__ bool s_last;
  // every lane of a warp holds the same triple: lane 0 speaks for it
  if (lane == 0) { s_v[warp] = bv; s_bi[warp] = bi; s_fi[warp] = fi; }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kScanWarps; ++w) {
      if (better(s_v[w], s_bi[w], bv, bi)) { bv = s_v[w]; bi = s_bi[w]; }
      fi = s_fi[w] < fi ? s_fi[w] : fi;
    }
    a.part_v[blockIdx.x] = bv;
    a.part_bi[blockIdx.x] = bi;
    a.part_fi[blockIdx.x] = fi;
    __threadfence();
    unsigned int done = atomicAdd(a.counter, 1u);
    s_last = done == gridDim.x - 1;
  }
  __syncthreads();
  if (!s_last) return;
  // last block: reduce the partials of every block
  bv = A(-1);
  bi = -1;
  fi = std::numeric_limits<int64_t>::max();
  for (int64_t b = threadIdx.x; b < gridDim.x; b += kScanThreads) {
    A v = __ldcg(a.part_v + b);
    int64_t i = __ldcg(a.part_bi + b), f = __ldcg(a.part_fi + b);
    if (better(v, i, bv, bi)) { bv = v; bi = i; }
    fi = f < fi ? f : fi;
  }
  warp_reduce_best(bv, bi, fi);
  __syncthreads();
  if (lane == 0) { s_v[warp] = bv; s_bi[warp] = bi; s_fi[warp] = fi; }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kScanWarps; ++w) {
      if (better(s_v[w], s_bi[w], bv, bi)) { bv = s_v[w]; bi = s_bi[w]; }
      fi = s_fi[w] < fi ? s_fi[w] : fi;
    }
    if (fi == std::numeric_limits<int64_t>::max()) fi = -1;
    if (a.summary != nullptr) {
      a.summary[0] = static_cast<double>(bv);
      a.summary[1] = static_cast<double>(bi);
      a.summary[2] = static_cast<double>(fi);
    }
    if (a.idx_out != nullptr && bi >= 0) {
      *a.cur_out = bi;
      a.idx_out[a.t_next] = bi;
      a.d2_out[a.t_next] = bv;
      a.md[bi] = A(-1);
    }
    *a.counter = 0u;
  }
}

// Scratch for scan_kernel launches on one pool: partials and the done-counter.
template <typename T, typename A> struct Scanner {
  at::Tensor pv, pbi, pfi, counter;
  ScanArgs<T, A> args{};
  int blocks = 1;
  cudaStream_t stream;

  Scanner(const at::Tensor& x, A* md) {
    const int64_t N = x.size(0);
    const int dev = x.get_device();
    blocks = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(ceil_div(N, kScanWarps), 8 * num_sms(dev))));
    auto o = x.options();
    pv = at::empty({blocks}, o.dtype(std::is_same<A, double>::value ? at::kDouble : at::kFloat));
    pbi = at::empty({blocks}, o.dtype(at::kLong));
    pfi = at::empty({blocks}, o.dtype(at::kLong));
    counter = at::zeros({1}, o.dtype(at::kInt));
    stream = c10::cuda::getCurrentCUDAStream(dev).stream();
    args.x = x.data_ptr<T>();
    args.N = N;
    args.d = x.size(1);
    args.vec4 = vec4_ok(x);
    args.md = md;
    args.thr = std::numeric_limits<double>::infinity();
    args.from = N;
    args.part_v = pv.data_ptr<A>();
    args.part_bi = pbi.data_ptr<int64_t>();
    args.part_fi = pfi.data_ptr<int64_t>();
    args.counter = reinterpret_cast<unsigned int*>(counter.data_ptr<int>());
  }
  void launch(const ScanArgs<T, A>& a) {
    scan_kernel<T, A><<<blocks, kScanThreads, 0, stream>>>(a);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

}  // namespace cuda
}  // namespace fastsel
