// CPU kernels of fastsel::_facility_gains and fastsel::_facility_mirror (schemas and contracts:
// csrc/ops.cpp): facility location's lazy-greedy gain evaluations on a dense kernel, each row read
// once in place (the torch form gathers, subtracts, clamps and sums: four passes), and the mirror of
// a symmetric kernel's upper blocks into its lower ones in cache-sized tiles (torch's strided copy
// of a transposed block runs at a fraction of the memory's speed).
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>

#include "cpu/rowdist.h"
#include "utils.h"

namespace fastsel {
namespace cpu {

namespace {
typedef double D8 __attribute__((vector_size(64), aligned(8)));
typedef float F16 __attribute__((vector_size(64), aligned(4)));
typedef float F8 __attribute__((vector_size(32), aligned(4)));

// float64: gain = sum_i max(0, k_i - c_i) in float64 lanes; no threshold sum.
FASTSEL_INLINE void row_gain64(const double* __restrict k, const double* __restrict c, int64_t N, double* out) {
  const D8 zero = D8{};
  D8 g0 = zero, g1 = zero;
  int64_t i = 0;
  for (; i + 16 <= N; i += 16) {
    const D8 d0 = *reinterpret_cast<const D8*>(k + i) - *reinterpret_cast<const D8*>(c + i);
    const D8 d1 = *reinterpret_cast<const D8*>(k + i + 8) - *reinterpret_cast<const D8*>(c + i + 8);
    g0 += d0 > zero ? d0 : zero;
    g1 += d1 > zero ? d1 : zero;
  }
  double g = 0.0;
  for (int l = 0; l < 8; ++l) g += g0[l] + g1[l];
  for (; i < N; ++i) g += k[i] > c[i] ? k[i] - c[i] : 0.0;
  out[0] = g;
  out[1] = 0.0;
}

// float32: the same gain, and s = sum_i [k_i >= t_i] k_i when t is given, each computed in float32
// lanes over blocks of 256 values (16 terms a lane) and added to float64 sums after each block, so
// the float32 rounding is at most 16 u of the sums (the caller's certificate counts it).
FASTSEL_INLINE void row_gain32(const float* __restrict k, const float* __restrict c, const float* __restrict t,
                               int64_t N, double* out) {
  const F16 zero = F16{};
  D8 G = D8{}, S = D8{};
  int64_t i = 0;
  for (; i + 256 <= N; i += 256) {
    F16 g = zero, s = zero;
#pragma GCC unroll 4
    for (int64_t q = i; q < i + 256; q += 16) {
      const F16 kv = *reinterpret_cast<const F16*>(k + q);
      const F16 d = kv - *reinterpret_cast<const F16*>(c + q);
      g += d > zero ? d : zero;
      if (t != nullptr) s += kv >= *reinterpret_cast<const F16*>(t + q) ? kv : zero;
    }
    const F8 glo = __builtin_shufflevector(g, g, 0, 1, 2, 3, 4, 5, 6, 7);
    const F8 ghi = __builtin_shufflevector(g, g, 8, 9, 10, 11, 12, 13, 14, 15);
    G += __builtin_convertvector(glo, D8) + __builtin_convertvector(ghi, D8);
    if (t != nullptr) {
      const F8 slo = __builtin_shufflevector(s, s, 0, 1, 2, 3, 4, 5, 6, 7);
      const F8 shi = __builtin_shufflevector(s, s, 8, 9, 10, 11, 12, 13, 14, 15);
      S += __builtin_convertvector(slo, D8) + __builtin_convertvector(shi, D8);
    }
  }
  double g = 0.0, s = 0.0;
  for (int l = 0; l < 8; ++l) {
    g += G[l];
    s += S[l];
  }
  for (; i < N; ++i) {
    const double kk = static_cast<double>(k[i]), d = kk - static_cast<double>(c[i]);
    g += d > 0.0 ? d : 0.0;
    if (t != nullptr && k[i] >= t[i]) s += kk;
  }
  out[0] = g;
  out[1] = s;
}
}  // namespace

FASTSEL_CLONES void facility_row_gain(const double* k, const double* c, const double*, int64_t N, double* out) {
  row_gain64(k, c, N, out);
}
FASTSEL_CLONES void facility_row_gain(const float* k, const float* c, const float* t, int64_t N, double* out) {
  row_gain32(k, c, t, N, out);
}

at::Tensor facility_gains_cpu(const at::Tensor& K, const at::Tensor& rows, const at::Tensor& cover,
                              const std::optional<at::Tensor>& thr) {
  TORCH_CHECK(K.dim() == 2 && K.size(0) == K.size(1), "K must be a square (N, N) matrix, got ", K.sizes());
  TORCH_CHECK(K.scalar_type() == at::kFloat || K.scalar_type() == at::kDouble, "K must be float32 or float64");
  TORCH_CHECK(K.stride(1) == 1, "K's rows must be contiguous");
  TORCH_CHECK(cover.dim() == 1 && cover.size(0) == K.size(1) && cover.scalar_type() == K.scalar_type(),
              "cover must be (N,) with K's dtype");
  TORCH_CHECK(rows.dim() == 1 && rows.scalar_type() == at::kLong, "rows must be a 1-D int64 tensor");
  const bool has_t = thr.has_value() && thr->defined();
  TORCH_CHECK(!has_t || K.scalar_type() == at::kFloat, "thr applies to a float32 K");
  TORCH_CHECK(!has_t || (thr->dim() == 1 && thr->size(0) == K.size(1) && thr->scalar_type() == at::kFloat),
              "thr must be (N,) float32");
  const int64_t N = K.size(1), R = rows.size(0), ld = K.stride(0);
  at::Tensor c = cover.contiguous(), r = rows.contiguous();
  at::Tensor t = has_t ? thr->contiguous() : at::Tensor();
  const int64_t* rp = r.data_ptr<int64_t>();
  for (int64_t q = 0; q < R; ++q) TORCH_CHECK(rp[q] >= 0 && rp[q] < K.size(0), "row index out of range: ", rp[q]);
  auto out = at::empty({R, 2}, K.options().dtype(at::kDouble));
  double* o = out.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(K.scalar_type(), "fastsel_facility_gains_cpu", [&] {
    const scalar_t* kp = K.data_ptr<scalar_t>();
    const scalar_t* cp = c.data_ptr<scalar_t>();
    const scalar_t* tp = has_t ? reinterpret_cast<const scalar_t*>(t.data_ptr<float>()) : nullptr;
    at::parallel_for(0, R, 1, [&](int64_t b, int64_t e) {
      for (int64_t q = b; q < e; ++q) facility_row_gain(kp + rp[q] * ld, cp, tp, N, o + 2 * q);
    });
  });
  return out;
}

void facility_mirror_cpu(const at::Tensor& K, int64_t a, int64_t b) {
  TORCH_CHECK(K.dim() == 2 && K.size(0) == K.size(1) && K.stride(1) == 1, "K must be a square matrix, rows contiguous");
  TORCH_CHECK(K.device().is_cpu(), "K must be on the CPU");
  const int64_t N = K.size(0), ld = K.stride(0);
  TORCH_CHECK(ld >= N, "K's rows must not overlap (row stride ", ld, " < ", N, ")");
  TORCH_CHECK(0 <= a && a <= b && b <= N, "need 0 <= a <= b <= N, got ", a, ", ", b);
  constexpr int64_t T = 64;  // a 64 x 64 tile of float64 is 32 KiB: read and written while in L1/L2
  AT_DISPATCH_FLOATING_TYPES(K.scalar_type(), "fastsel_facility_mirror_cpu", [&] {
    scalar_t* k = K.data_ptr<scalar_t>();
    at::parallel_for(b, N, T, [&](int64_t r0, int64_t r1) {  // destination rows r of K[b:, a:b]
      scalar_t buf[T * T];  // the source tile, read by rows (contiguous), then written out transposed
      for (int64_t rb = r0; rb < r1; rb += T)
        for (int64_t cb = a; cb < b; cb += T) {
          const int64_t re = std::min(rb + T, r1), ce = std::min(cb + T, b), w = re - rb;
          for (int64_t cc = cb; cc < ce; ++cc) std::memcpy(buf + (cc - cb) * T, k + cc * ld + rb, w * sizeof(scalar_t));
          for (int64_t r = 0; r < w; ++r) {
            scalar_t* dst = k + (rb + r) * ld + cb;
            for (int64_t cc = 0; cc < ce - cb; ++cc) dst[cc] = buf[cc * T + r];
          }
        }
    });
  });
}

}  // namespace cpu
}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CPU, m) {
  m.impl("_facility_gains", &fastsel::cpu::facility_gains_cpu);
  m.impl("_facility_mirror", &fastsel::cpu::facility_mirror_cpu);
}
