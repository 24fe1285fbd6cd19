// Benchmark baseline only: farthest-point sampling with one thread block per
// point set, the scheme of torch_cluster's and pytorch3d's GPU FPS, reproduced
// here (not their code) so that bench/gpu_check.sh can time it beside fastsel's
// kernels. Each thread walks its rows and sums the row's squared distance
// element by element (row-major, so a warp's loads are d elements apart), then
// the block reduces the arg-max. Unlike torch_cluster's 5e4 sentinel, min-distances
// start at +inf, so large squared distances are not clipped.
#include "cuda/device.cuh"
#include "cuda/launch.h"

namespace fastsel {
namespace cuda {

constexpr int kOneBlockThreads = 1024;

template <typename T, typename A>
__global__ void __launch_bounds__(kOneBlockThreads)
    fps_one_block_kernel(const T* __restrict__ x, int64_t N, int64_t d, A* __restrict__ md, int64_t n,
                         int64_t start, int64_t* __restrict__ idx) {
  __shared__ A s_v[kOneBlockThreads];
  __shared__ int64_t s_i[kOneBlockThreads];
  const int tid = threadIdx.x;
  int64_t old = start;
  if (tid == 0) idx[0] = start;
  for (int64_t t = 1; t < n; ++t) {
    A bv = A(-1);
    int64_t bi = -1;
    const T* c = x + old * d;
    for (int64_t i = tid; i < N; i += kOneBlockThreads) {
      A s = A(0);
      for (int64_t e = 0; e < d; ++e) {
        A diff = load1<T, A>(x + i * d + e) - load1<T, A>(c + e);
        s += diff * diff;
      }
      A m = md[i] < s ? md[i] : s;
      md[i] = m;
      if (i != old && better(m, i, bv, bi)) { bv = m; bi = i; }
    }
    s_v[tid] = bv;
    s_i[tid] = bi;
    __syncthreads();
    for (int h = kOneBlockThreads / 2; h > 0; h >>= 1) {
      if (tid < h && better(s_v[tid + h], s_i[tid + h], s_v[tid], s_i[tid])) {
        s_v[tid] = s_v[tid + h];
        s_i[tid] = s_i[tid + h];
      }
      __syncthreads();
    }
    old = s_i[0];
    if (tid == 0) {
      idx[t] = old;
      md[old] = A(-1);
    }
    __syncthreads();
  }
}

at::Tensor fps_one_block_run(const at::Tensor& x, int64_t n, int64_t start) {
  at::Tensor md = at::full({x.size(0)}, std::numeric_limits<double>::infinity(),
                           x.options().dtype(x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
  md.narrow(0, start, 1).fill_(-1);
  at::Tensor idx = at::empty({n}, x.options().dtype(at::kLong));
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastsel_fps_one_block", [&] {
    using A = typename AccT<scalar_t>::type;
    fps_one_block_kernel<scalar_t, A><<<1, kOneBlockThreads, 0, stream>>>(
        x.data_ptr<scalar_t>(), x.size(0), x.size(1), md.data_ptr<A>(), n, start, idx.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return idx;
}

}  // namespace cuda
}  // namespace fastsel
