// CUDA kernel of fastsel::threshold_decay (schema and contract: csrc/ops.cpp; entry
// point and argument checks: csrc/cuda/ops_cuda.cpp).
//
// The CPU's chunked scheme, on the GPU: the min-distance state is exact at the
// start of every chunk. A chunk takes the next K rows of the pass that are
// above tau^2 (in index order; rows at or below it can never be accepted in
// this pass, since min-distances only fall), resolves them sequentially on one
// block against each other with the certified pair distances of refine_pairs,
// and then updates the pool against the chunk's accepts with the certified
// GEMM. Each decision compares the same min-distance as the per-accept
// algorithm, so the accepted rows are Algorithm 2's. The control flow (pass
// starts, tau decay, the duplicate-only fill) runs on the host, as on the CPU.
#include "cuda/launch.h"
#include "cuda/multipick.cuh"

namespace fastsel {
namespace cuda {

namespace {
constexpr int kThreads = 1024;
}  // namespace

// mask[p - pos] = the row at scan position p (>= pos) is unselected and strictly above thr (float64
// compare); ord: the scan order (position -> row), or null for index order
template <typename A>
__global__ void above_kernel(const A* __restrict__ md, const int64_t* __restrict__ ord, int64_t pos, int64_t len,
                             double thr, bool* __restrict__ mask) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= len) return;
  const A m = md[ord ? ord[pos + j] : pos + j];
  mask[j] = m >= A(0) && static_cast<double>(m) > thr;
}

// Candidate a (in scan order) is accepted when its value, lowered by every
// earlier accept of the chunk, is still above thr. Thread tid owns a = tid + k * 1024.
// cand: scan positions (what idx reports); crow: their rows (md, the picks P).
template <typename A>
__global__ void __launch_bounds__(kThreads)
    resolve_threshold_kernel(const int64_t* __restrict__ cand, const int64_t* __restrict__ crow,
                             const A* __restrict__ vals0, int64_t m,
                             const A* __restrict__ E, double thr, int64_t budget, A* __restrict__ md,
                             int64_t* idx_out, A* d2_out, int64_t* P, int64_t* out2) {
  extern __shared__ unsigned char smem[];
  A* v = reinterpret_cast<A*>(smem);  // m values
  const int tid = threadIdx.x;
  for (int64_t a = tid; a < m; a += kThreads) v[a] = vals0[a];
  __syncthreads();
  int64_t cnt = 0, pos = cand[m - 1] + 1;
  for (int64_t a = 0; a < m; ++a) {
    // v[a] is final here: every earlier accept has lowered it (writes before the last barrier)
    const A va = v[a];
    if (!(static_cast<double>(va) > thr)) continue;  // uniform: all threads read the same value
    if (tid == 0) {
      idx_out[cnt] = cand[a];
      d2_out[cnt] = va;
      P[cnt] = crow[a];
      md[crow[a]] = A(-1);
    }
    ++cnt;
    if (cnt == budget) {
      pos = cand[a] + 1;
      break;
    }
    const A* e = E + a * m;
    for (int64_t b = a + 1 + tid; b < m; b += kThreads) {
      const A w = e[b];
      if (w < v[b]) v[b] = w;
    }
    __syncthreads();
  }
  if (tid == 0) {
    out2[0] = cnt;
    out2[1] = pos;
  }
}

// md: by row (x is never permuted); ord: the scan order (position -> row) or undefined (index order).
// idx reports scan positions, as the CPU op does.
template <typename T, typename A>
static void threshold_impl(const at::Tensor& x, at::Tensor& md, int64_t n, int64_t start, double alpha,
                           bool every_pass, ThresholdState& s, int64_t K, at::Tensor& idx, at::Tensor& d2,
                           at::Tensor& tau_at, const at::Tensor& ord) {
  const int64_t N = x.size(0);
  const bool perm = ord.defined();
  const int64_t* ordp = perm ? ord.data_ptr<int64_t>() : nullptr;
  auto rows_of = [&](const at::Tensor& pos) { return perm ? ord.index_select(0, pos) : pos; };
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream(x.get_device()).stream();
  int64_t t = 0;
  if (start >= 0) {  // the first row is accepted unconditionally: one scan applies it
    Scanner<T, A> S(x, md.data_ptr<A>());
    const int64_t srow = perm ? ord[start].item<int64_t>() : start;
    d2.narrow(0, 0, 1).copy_(md.narrow(0, srow, 1));
    idx.narrow(0, 0, 1).fill_(start);
    tau_at.narrow(0, 0, 1).fill_(s.tau);
    md.narrow(0, srow, 1).fill_(-1);
    ScanArgs<T, A> a = S.args;
    a.centre = x.data_ptr<T>() + srow * x.size(1);
    S.launch(a);
    t = 1;
  }
  if (t == n) return;
  const Centred C = make_centred(x);
  at::Tensor out2 = at::empty({2}, x.options().dtype(at::kLong));
  at::Tensor Pbuf = at::empty({K}, x.options().dtype(at::kLong));
  while (t < n) {
    if (s.pos == 0) {
      // A pass begins: it accepts nothing exactly when no unselected row is above tau^2.
      const double best = md.max().item<double>();
      if (best <= 0.0) {  // only duplicates of selected rows remain: fill in scan order
        const at::Tensor mpos = perm ? md.index_select(0, ord) : md;
        at::Tensor rows = at::nonzero(mpos.ge(0)).view(-1).narrow(0, 0, n - t);  // scan positions
        const int64_t f = rows.size(0);
        idx.narrow(0, t, f).copy_(rows);
        d2.narrow(0, t, f).copy_(mpos.index_select(0, rows));
        tau_at.narrow(0, t, f).fill_(s.tau);
        md.index_fill_(0, rows_of(rows), A(-1));
        t += f;
        s.filled += f;
        break;
      }
      while (best <= s.tau * s.tau) s.tau *= alpha;
    }
    const double thr = s.tau * s.tau;
    const int64_t len = N - s.pos;
    at::Tensor cand;
    if (len > 0) {
      at::Tensor mask = at::empty({len}, x.options().dtype(at::kBool));
      above_kernel<A><<<ceil_div(len, 256), 256, 0, stream>>>(md.data_ptr<A>(), ordp, s.pos, len, thr,
                                                               mask.data_ptr<bool>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      cand = at::nonzero(mask).view(-1);
    }
    if (len == 0 || cand.size(0) == 0) {  // end of a full pass
      if (every_pass || !s.added) s.tau *= alpha;
      s.pos = 0;
      s.added = false;
      continue;
    }
    const int64_t m = std::min<int64_t>(K, cand.size(0));
    cand = (cand.narrow(0, 0, m) + s.pos).contiguous();  // scan positions
    const at::Tensor crow = rows_of(cand).contiguous();    // their rows
    at::Tensor vals0 = md.index_select(0, crow);
    at::Tensor E = refine_pairs<T, A>(x, C, crow, vals0, stream);
    resolve_threshold_kernel<A><<<1, kThreads, m * sizeof(A), stream>>>(
        cand.data_ptr<int64_t>(), crow.data_ptr<int64_t>(), vals0.data_ptr<A>(), m, E.data_ptr<A>(), thr, n - t, md.data_ptr<A>(),
        idx.data_ptr<int64_t>() + t, d2.data_ptr<A>() + t, Pbuf.data_ptr<int64_t>(), out2.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    at::Tensor o = out2.cpu();  // the chunk's one host sync
    const int64_t np = o.data_ptr<int64_t>()[0];
    s.pos = o.data_ptr<int64_t>()[1];
    if (np > 0) {
      s.added = true;
      tau_at.narrow(0, t, np).fill_(s.tau);
      update_against<T, A>(C, x, md, Pbuf.narrow(0, 0, np), stream);
      t += np;
    }
  }
}

void threshold_run(const at::Tensor& x, at::Tensor& md, int64_t n, int64_t start, double alpha, bool every_pass,
                   ThresholdState& s, int64_t K, at::Tensor& idx, at::Tensor& d2, at::Tensor& tau_at,
                   const at::Tensor& order) {
  // md arrives and leaves in scan positions (the op's contract); inside it is kept by row, so the
  // kernels read row order[p] at position p and the pool is never gathered into a permuted copy
  if (order.defined()) {
    at::Tensor by_row = at::empty_like(md);
    by_row.index_copy_(0, order, md);
    md = by_row;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastsel_threshold_cuda", [&] {
    using A = typename AccT<scalar_t>::type;
    threshold_impl<scalar_t, A>(x, md, n, start, alpha, every_pass, s, K, idx, d2, tau_at, order);
  });
  if (order.defined()) md = md.index_select(0, order);
}

}  // namespace cuda
}  // namespace fastsel
