// CUDA entry points of the fastsel ops (schemas and contracts: csrc/ops.cpp):
// argument checks, device guard, state set-up, then the launchers of
// csrc/cuda/*.cu. Compiled by the host C++ compiler, never by nvcc (launch.h).
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <string>

#include "cuda/launch.h"
#include "utils.h"

namespace fastsel {
namespace cuda {

namespace {
constexpr int64_t kChunk = 1024;         // threshold: candidates per chunk ("single": 1)
}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> greedy_cuda(const at::Tensor& x_, int64_t n, int64_t start,
                                                           const std::optional<at::Tensor>& min_d2,
                                                           c10::string_view mode_) {
  check_pool(x_, "x");
  TORCH_CHECK(x_.is_cuda(), "x must be a CUDA tensor");
  const std::string mode(mode_);
  check_greedy_mode(mode, false);
  c10::cuda::CUDAGuard guard(x_.device());
  const int64_t N = x_.size(0);
  at::Tensor x = x_.contiguous();
  at::Tensor md = initial_state(x, min_d2, start);
  const int64_t remaining = check_unselected(md, n);
  if (start >= 0) {
    TORCH_CHECK(start < N && md[start].item<double>() >= 0.0, "start ", start, " is out of range or already selected");
  }
  auto idx = at::empty({n}, x.options().dtype(at::kLong));
  auto d2 = at::empty({n}, md.options());
  const bool multi = greedy_multi_pick(mode, N, n);
  greedy_run(x, md, n, start, multi, remaining, idx, d2);
  return {idx, d2, md};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> threshold_decay_cuda(
    const at::Tensor& x_, int64_t n, int64_t start, double tau, double alpha, bool every_pass,
    const std::optional<at::Tensor>& min_d2, const std::optional<at::Tensor>& state, c10::string_view mode_,
    const std::optional<at::Tensor>& order) {
  check_pool(x_, "x");
  const std::string mode(mode_);
  check_threshold_args(mode, alpha);
  TORCH_CHECK(x_.is_cuda(), "x must be a CUDA tensor");
  c10::cuda::CUDAGuard guard(x_.device());
  at::Tensor x = x_.contiguous();
  at::Tensor ord;  // the kernels read row order[p] at scan position p: no permuted copy of the pool
  if (order.has_value()) {
    check_scan_order(*order, x);
    ord = order->contiguous();
  }
  ThresholdStart ts = threshold_start(x, n, start, tau, min_d2, state);
  ThresholdState s = ts.s;
  at::Tensor md = ts.md, idx = ts.idx, d2 = ts.d2, tau_at = ts.tau_at;
  start = ts.start;
  threshold_run(x, md, n, start, alpha, every_pass, s, mode == "single" ? 1 : kChunk, idx, d2, tau_at, ord);
  return {idx, d2, tau_at, md, threshold_state_tensor(s, x.device())};
}

std::tuple<at::Tensor, at::Tensor> nn_cuda(const at::Tensor& query_, const at::Tensor& ref_, int64_t k,
                                           bool exclude_self) {
  check_pool(query_, "query");
  check_pool(ref_, "ref");
  TORCH_CHECK(query_.is_cuda() && ref_.is_cuda(), "query and ref must be CUDA tensors");
  TORCH_CHECK(query_.device() == ref_.device(), "query and ref must be on the same device");
  check_nn_args(query_, ref_, k, exclude_self);
  c10::cuda::CUDAGuard guard(query_.device());
  return nn_run(query_.contiguous(), ref_.contiguous(), k, exclude_self);
}

std::tuple<at::Tensor, at::Tensor> update_min_d2_cuda(const at::Tensor& x_, const at::Tensor& min_d2,
                                                      const at::Tensor& centres_, double thr, int64_t from) {
  check_pool(x_, "x");
  check_state(min_d2, x_);
  TORCH_CHECK(x_.is_cuda(), "x must be a CUDA tensor");
  TORCH_CHECK(centres_.dim() == 2 && centres_.size(1) == x_.size(1), "centres must be (P, ", x_.size(1),
              "), got ", centres_.sizes());
  TORCH_CHECK(centres_.scalar_type() == x_.scalar_type(), "centres must have the dtype of x");
  TORCH_CHECK(centres_.device() == x_.device(), "centres must be on ", x_.device());
  c10::cuda::CUDAGuard guard(x_.device());
  at::Tensor x = x_.contiguous();
  at::Tensor md = min_d2.contiguous().clone();
  auto out = at::empty({3}, x.options().dtype(at::kDouble));
  update_run(x, md, centres_.contiguous(), thr, from, out);
  return {md, out};
}

at::Tensor fps_one_block_cuda(const at::Tensor& x_, int64_t n, int64_t start) {
  check_pool(x_, "x");
  TORCH_CHECK(x_.is_cuda(), "x must be a CUDA tensor");
  check_n(n, x_.size(0));
  TORCH_CHECK(start >= 0 && start < x_.size(0), "start must be in [0, N=", x_.size(0), "), got ", start);
  c10::cuda::CUDAGuard guard(x_.device());
  return fps_one_block_run(x_.contiguous(), n, start);
}

// greedy_sets on the GPU: one launch, one block per set (csrc/cuda/greedy_sets_cuda.cu); the picks
// and distances of greedy's CUDA kernel run on each set alone. Python calls it only when switched on
// (fastsel/_backend.py, CUDA_NEW_KERNELS): until a device run has passed its tests, sets run one after another.
std::tuple<at::Tensor, at::Tensor> greedy_sets_cuda(const at::Tensor& x_, const at::Tensor& ptr,
                                                    const at::Tensor& n, const at::Tensor& start, int64_t total,
                                                    c10::string_view mode_) {
  check_pool(x_, "x");
  TORCH_CHECK(x_.is_cuda(), "x must be a CUDA tensor");
  check_greedy_mode(std::string(mode_), false);
  const std::vector<int64_t> off = check_sets_args(x_, ptr, n, start, total);
  c10::cuda::CUDAGuard guard(x_.device());
  at::Tensor x = x_.contiguous();
  const auto acc = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor md = at::full({x.size(0)}, std::numeric_limits<double>::infinity(), x.options().dtype(acc));
  auto idx = at::empty({total}, x.options().dtype(at::kLong));
  auto d2 = at::empty({total}, x.options().dtype(acc));
  const auto dev = [&](const at::Tensor& t) { return t.contiguous().to(x.device()); };
  at::Tensor optr = at::tensor(off, at::TensorOptions().dtype(at::kLong)).to(x.device());
  at::Tensor p = dev(ptr), nn = dev(n), st = dev(start);
  greedy_sets_run(x, p, nn, st, optr, md, idx, d2);
  return {idx, d2};
}

}  // namespace cuda
}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CUDA, m) {
  m.impl("greedy_sets", &fastsel::cuda::greedy_sets_cuda);
  m.impl("greedy", &fastsel::cuda::greedy_cuda);
  m.impl("threshold_decay", &fastsel::cuda::threshold_decay_cuda);
  m.impl("nn", &fastsel::cuda::nn_cuda);
  m.impl("update_min_d2", &fastsel::cuda::update_min_d2_cuda);
  m.impl("_fps_one_block", &fastsel::cuda::fps_one_block_cuda);
}
