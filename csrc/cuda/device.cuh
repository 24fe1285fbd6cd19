// Basic device helpers of the fastsel CUDA kernels (the grid-wide row scan: row_scan.cuh).
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

}  // namespace cuda
}  // namespace fastsel
