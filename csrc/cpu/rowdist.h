// Row-distance update kernels shared by the CPU ops (greedy, threshold_decay).
//
// One call streams rows [begin, end) of the pool once: for each row it computes
// the squared distance to a centre in the difference form (accumulated in
// float32, or float64 for float64 data), lowers the row's running min-distance,
// and reports the arg-max of the updated min-distances (ties: lowest index)
// plus the first row >= `from` whose min-distance exceeds `thr`.
//
// Portability: no -march flags at build time. On x86-64 with GCC/clang the
// block functions are compiled several times (target_clones) and the loader
// picks the widest vector unit the user's CPU has (ifunc); elsewhere one
// generic version is built. `omp simd` lets the reductions vectorise.
#pragma once
#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <omp.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "utils.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__APPLE__) && !defined(__clang__)
#define FASTSEL_CLONES __attribute__((target_clones("default", "arch=x86-64-v3", "arch=x86-64-v4")))
#elif defined(__x86_64__) && defined(__clang__) && !defined(__APPLE__)
#define FASTSEL_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define FASTSEL_CLONES
#endif

#define FASTSEL_INLINE inline __attribute__((always_inline))

namespace fastsel {
namespace cpu {

template <typename Acc> struct BlockResult {
  Acc best;          // largest updated min-distance among unselected rows (-1 if none)
  int64_t best_i;    // its index, lowest on ties (-1 if none)
  int64_t first_i;   // first index >= from with min-distance > thr (-1 if none)
};

// B-byte vectors (GCC/clang vector extensions; B = 64 by default): each clone lowers them to
// its own registers (4 x SSE, 2 x AVX2, 1 x AVX-512 for 64 bytes).
template <typename Acc, int B = 64> struct Vec {
  static constexpr int W = B / sizeof(Acc);
  typedef Acc type __attribute__((vector_size(B)));
};

template <typename E, int B> struct VecOf {
  typedef E type __attribute__((vector_size(B)));
};

template <typename T, typename Acc, int B = 64>
FASTSEL_INLINE typename Vec<Acc, B>::type vload(const T* p) {
  typename Vec<Acc, B>::type v;
  if constexpr (std::is_same_v<T, Acc>) {
    __builtin_memcpy(&v, p, sizeof(v));
  } else if constexpr (std::is_same_v<T, c10::BFloat16> && std::is_same_v<Acc, float>) {
    // bfloat16 is the top half of a float32: widen and shift, in vector registers
    using U16 = typename VecOf<uint16_t, B / 2>::type;
    using U32 = typename VecOf<uint32_t, B>::type;
    U16 h;
    __builtin_memcpy(&h, p, sizeof(h));
    U32 w = __builtin_convertvector(h, U32) << 16;
    __builtin_memcpy(&v, &w, sizeof(v));
  } else if constexpr (std::is_same_v<T, c10::Half> && std::is_same_v<Acc, float>) {
    // IEEE half -> float by integer vector arithmetic (compilers scalarise
    // _Float16 vector conversions): rebias normal numbers, scale subnormals,
    // keep inf/NaN.
    using U16 = typename VecOf<uint16_t, B / 2>::type;
    using U32 = typename VecOf<uint32_t, B>::type;
    using I32 = typename VecOf<int32_t, B>::type;
    U16 h;
    __builtin_memcpy(&h, p, sizeof(h));
    U32 w = __builtin_convertvector(h, U32);
    U32 sign = (w & 0x8000u) << 16;
    U32 em = w & 0x7fffu;
    U32 normal = sign | ((em << 13) + 0x38000000u);
    U32 special = sign | 0x7f800000u | ((em & 0x3ffu) << 13);
    typename Vec<Acc, B>::type sub = __builtin_convertvector(em, typename Vec<Acc, B>::type) * 0x1p-24f;
    U32 subb;
    __builtin_memcpy(&subb, &sub, sizeof(subb));
    subb |= sign;
    I32 is_sub = (I32)(em < 0x400u), is_special = (I32)(em >= 0x7c00u);
    U32 bits = (U32)((is_sub & (I32)subb) | (~is_sub & ((is_special & (I32)special) | (~is_special & (I32)normal))));
    __builtin_memcpy(&v, &bits, sizeof(v));
  } else {
    Acc tmp[Vec<Acc, B>::W];
    for (int k = 0; k < Vec<Acc, B>::W; ++k) tmp[k] = static_cast<Acc>(p[k]);
    __builtin_memcpy(&v, tmp, sizeof(v));
  }
  return v;
}

template <typename Acc> FASTSEL_INLINE Acc hsum(typename Vec<Acc>::type v) {
  Acc s = 0;
  for (int k = 0; k < Vec<Acc>::W; ++k) s += v[k];
  return s;
}

// The squared distance in the difference form: four 64-byte accumulators (lane l of
// accumulator q sums coordinates j + q W + l, j stepping 4 W; W = 64 / sizeof(Acc)), added
// pairwise and then lane by lane from the first. They are held as eight 32-byte halves (one
// AVX2 register each: 64-byte generic vectors spill to the stack without AVX-512); lanes and
// order are those of the 64-byte form, so every clone computes the same value, bit for bit.
template <typename T, typename Acc>
FASTSEL_INLINE Acc row_d2(const T* __restrict a, const Acc* __restrict c, int64_t d) {
  using V = typename Vec<Acc, 32>::type;
  constexpr int H = Vec<Acc, 32>::W, W = 2 * H;
  V s0 = {}, s1 = {}, s2 = {}, s3 = {}, s4 = {}, s5 = {}, s6 = {}, s7 = {};  // s(2q), s(2q+1): halves of q
  int64_t j = 0;
  for (; j + 4 * W <= d; j += 4 * W) {
    V t0 = vload<T, Acc, 32>(a + j) - vload<Acc, Acc, 32>(c + j);
    V t1 = vload<T, Acc, 32>(a + j + H) - vload<Acc, Acc, 32>(c + j + H);
    V t2 = vload<T, Acc, 32>(a + j + 2 * H) - vload<Acc, Acc, 32>(c + j + 2 * H);
    V t3 = vload<T, Acc, 32>(a + j + 3 * H) - vload<Acc, Acc, 32>(c + j + 3 * H);
    V t4 = vload<T, Acc, 32>(a + j + 4 * H) - vload<Acc, Acc, 32>(c + j + 4 * H);
    V t5 = vload<T, Acc, 32>(a + j + 5 * H) - vload<Acc, Acc, 32>(c + j + 5 * H);
    V t6 = vload<T, Acc, 32>(a + j + 6 * H) - vload<Acc, Acc, 32>(c + j + 6 * H);
    V t7 = vload<T, Acc, 32>(a + j + 7 * H) - vload<Acc, Acc, 32>(c + j + 7 * H);
    s0 += t0 * t0;
    s1 += t1 * t1;
    s2 += t2 * t2;
    s3 += t3 * t3;
    s4 += t4 * t4;
    s5 += t5 * t5;
    s6 += t6 * t6;
    s7 += t7 * t7;
  }
  for (; j + W <= d; j += W) {
    V t0 = vload<T, Acc, 32>(a + j) - vload<Acc, Acc, 32>(c + j);
    V t1 = vload<T, Acc, 32>(a + j + H) - vload<Acc, Acc, 32>(c + j + H);
    s0 += t0 * t0;
    s1 += t1 * t1;
  }
  const V lo = (s0 + s2) + (s4 + s6), hi = (s1 + s3) + (s5 + s7);
  Acc s = 0;
  for (int k = 0; k < H; ++k) s += lo[k];
  for (int k = 0; k < H; ++k) s += hi[k];
  for (; j < d; ++j) {
    Acc t = static_cast<Acc>(a[j]) - c[j];
    s += t * t;
  }
  return s;
}

// Body shared by every dtype clone. Selected rows hold -1 and stay there
// (min(-1, d2) = -1), so they never win the arg-max, whose floor is -1.
template <typename T, typename Acc>
FASTSEL_INLINE BlockResult<Acc> update_block_impl(const T* __restrict x, int64_t d, const Acc* __restrict c,
                                                  Acc* __restrict md, int64_t begin, int64_t end, double thr,
                                                  int64_t from) {
  BlockResult<Acc> r{Acc(-1), -1, -1};
  for (int64_t i = begin; i < end; ++i) {
    Acc v = md[i];
    if (v >= Acc(0)) {
      Acc d2 = row_d2<T, Acc>(x + i * d, c, d);
      if (d2 < v) {
        v = d2;
        md[i] = v;
      }
      if (v > r.best) {
        r.best = v;
        r.best_i = i;
      }
      if (r.first_i < 0 && i >= from && static_cast<double>(v) > thr) r.first_i = i;
    }
  }
  return r;
}

// Greedy on a low-dimensional pool (1 <= D <= 8, e.g. point clouds) stored as D columns of Np
// rows (Np a multiple of kLowdW<Acc>; padding rows hold md = -1): each pick's update runs across
// rows, W rows per vector, fused with the arg-max (per-lane best, ties to the lowest index). A
// row's squared distance is summed in coordinate order from the first, which is what row_d2
// computes when d is below its vector width: the same values, bit for bit, as every kernel.
template <typename Acc> constexpr int64_t kLowdW = 32 / sizeof(Acc);
template <int D, typename Acc>
FASTSEL_INLINE void lowd_picks_impl(const Acc* __restrict col, int64_t Np, Acc* __restrict md, int64_t n,
                                    int64_t first, int64_t* __restrict idx, Acc* __restrict d2) {
  // 32-byte vectors: one AVX2 register (64-byte ones spill in this loop without AVX-512)
  typedef Acc V __attribute__((vector_size(32)));
  using IT = std::conditional_t<std::is_same_v<Acc, float>, int32_t, int64_t>;
  typedef IT VI __attribute__((vector_size(32)));
  constexpr int W = kLowdW<Acc>;
  VI lane;
  for (int k = 0; k < W; ++k) lane[k] = static_cast<IT>(k);
  const V zero = {};
  int64_t pick = first;
  for (int64_t t = 0; t < n; ++t) {
    idx[t] = pick;
    d2[t] = md[pick];
    md[pick] = Acc(-1);
    V c[D];
    for (int j = 0; j < D; ++j) c[j] = zero + col[j * Np + pick];
    V bestv = zero - Acc(1);
    VI besti = lane;
    for (int64_t b = 0; b < Np; b += W) {
      V u, sq, v;
      __builtin_memcpy(&u, col + b, sizeof(u));
      u = u - c[0];
      sq = u * u;
      for (int j = 1; j < D; ++j) {
        __builtin_memcpy(&u, col + j * Np + b, sizeof(u));
        u = u - c[j];
        sq = sq + u * u;
      }
      __builtin_memcpy(&v, md + b, sizeof(v));
      VI take = (v >= zero) & (sq < v);  // bit blends (a vector ?: is scalarised by some compilers)
      v = (V)(((VI)sq & take) | ((VI)v & ~take));
      __builtin_memcpy(md + b, &v, sizeof(v));
      VI gt = v > bestv;
      bestv = (V)(((VI)v & gt) | ((VI)bestv & ~gt));
      besti = ((lane + static_cast<IT>(b)) & gt) | (besti & ~gt);
    }
    Acc best = bestv[0];
    int64_t bi = besti[0];
    for (int k = 1; k < W; ++k)
      if (bestv[k] > best || (bestv[k] == best && besti[k] < bi)) {
        best = bestv[k];
        bi = besti[k];
      }
    pick = best >= Acc(0) ? bi : -1;
  }
}

#define FASTSEL_DECLARE_BLOCK(T, Acc)                                                                    \
  BlockResult<Acc> update_block(const T* x, int64_t d, const Acc* c, Acc* md, int64_t begin, int64_t end, \
                                double thr, int64_t from);                                                \
  Acc row_d2_dispatch(const T* a, const Acc* c, int64_t d);
FASTSEL_DECLARE_BLOCK(float, float)
FASTSEL_DECLARE_BLOCK(double, double)
FASTSEL_DECLARE_BLOCK(c10::Half, float)
FASTSEL_DECLARE_BLOCK(c10::BFloat16, float)
#undef FASTSEL_DECLARE_BLOCK
// lowd_picks: lowd_picks_impl for D = d (1..8), in the widest clone the CPU runs.
void lowd_picks(const float* col, int64_t Np, int64_t d, float* md, int64_t n, int64_t first, int64_t* idx, float* d2);
void lowd_picks(const double* col, int64_t Np, int64_t d, double* md, int64_t n, int64_t first, int64_t* idx,
                double* d2);
// row_d2_dispatch computes exactly what update_block computes for one row
// (same source, same clone, -ffp-contract=off), so values from either agree bit for bit.

// Arg-max / first-above over the state alone (no pool read).
template <typename Acc> BlockResult<Acc> scan_state(const Acc* md, int64_t N, double thr, int64_t from) {
  BlockResult<Acc> r{Acc(-1), -1, -1};
  for (int64_t i = 0; i < N; ++i) {
    Acc v = md[i];
    if (v > r.best) {
      r.best = v;
      r.best_i = i;
    }
    if (r.first_i < 0 && i >= from && v >= Acc(0) && static_cast<double>(v) > thr) r.first_i = i;
  }
  return r;
}

// One full update of the pool against centre c, split over threads in
// contiguous ranges; partial results merge in range order, so the outcome does
// not depend on the thread count.
template <typename T, typename Acc>
BlockResult<Acc> update_all(const T* x, int64_t N, int64_t d, const Acc* c, Acc* md, double thr, int64_t from) {
  int nt = at::get_num_threads();
  if (N * d < (int64_t(1) << 16) || nt <= 1) return update_block(x, d, c, md, 0, N, thr, from);
  std::vector<BlockResult<Acc>> part(nt, BlockResult<Acc>{Acc(-1), -1, -1});
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num();
    int T_ = omp_get_num_threads();
    int64_t chunk = (N + T_ - 1) / T_;
    int64_t b = std::min<int64_t>(N, t * chunk), e = std::min<int64_t>(N, b + chunk);
    if (b < e) part[t] = update_block(x, d, c, md, b, e, thr, from);
  }
  BlockResult<Acc> r{Acc(-1), -1, -1};
  for (const auto& p : part) {
    if (p.best_i >= 0 && p.best > r.best) {
      r.best = p.best;
      r.best_i = p.best_i;
    }
    if (r.first_i < 0 && p.first_i >= 0) r.first_i = p.first_i;
  }
  return r;
}

// The centre row in the accumulation dtype (a view for float32/float64 data).
template <typename T, typename Acc> const Acc* centre(const T* row, int64_t d, std::vector<Acc>& buf) {
  if constexpr (std::is_same_v<T, Acc>) {
    return row;
  } else {
    buf.resize(d);
    for (int64_t j = 0; j < d; ++j) buf[j] = static_cast<Acc>(row[j]);
    return buf.data();
  }
}

}  // namespace cpu
}  // namespace fastsel
