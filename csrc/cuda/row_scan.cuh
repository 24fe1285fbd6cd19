// The grid-wide row scan of the fastsel CUDA kernels (one-pick greedy, the threshold filter,
// update_min_d2), on the device helpers of device.cuh.
#pragma once
#include "cuda/device.cuh"

namespace fastsel {
namespace cuda {

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
