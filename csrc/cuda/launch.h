// The CUDA launchers (csrc/cuda/*.cu), called by the op entry points in
// csrc/cuda/ops_cuda.cpp after every argument check.
//
// The split keeps host logic (argument checks, state set-up, registration) in
// code compiled by the host C++ compiler and leaves the .cu files kernels and
// their launchers; nvcc-compiled code raises only fixed-text internal errors.
// (On the GPU image of 2026-11-27 every error message with a number in it
// crashed at first: its default compiler, /opt/gcc/bin/g++, had linked
// libstdc++'s number formatting into _C statically -- seen with cuda-gdb and nm.
// bench/gpu_check.sh builds with the system g++ and warns if that happens again.)
#pragma once
#include <ATen/ATen.h>

#include <tuple>

#include "utils.h"  // ThresholdState

namespace fastsel {
namespace cuda {

// md: (N,) state in the accumulation dtype (cloned by the caller); first >= 0: the first pick.
void greedy_run(const at::Tensor& x, at::Tensor& md, int64_t n, int64_t first, bool multi, int64_t remaining,
                at::Tensor& idx, at::Tensor& d2);
// K: candidates per chunk (1 = one accept per pool update). order: the scan order (position -> row)
// or an undefined tensor (index order); md, start and idx are in scan positions.
void threshold_run(const at::Tensor& x, at::Tensor& md, int64_t n, int64_t start, double alpha, bool every_pass,
                   ThresholdState& s, int64_t K, at::Tensor& idx, at::Tensor& d2, at::Tensor& tau_at,
                   const at::Tensor& order);
std::tuple<at::Tensor, at::Tensor> nn_run(const at::Tensor& query, const at::Tensor& ref, int64_t k,
                                          bool exclude_self);
void update_run(const at::Tensor& x, at::Tensor& md, const at::Tensor& centres, double thr, int64_t from,
                at::Tensor& out);
at::Tensor fps_one_block_run(const at::Tensor& x, int64_t n, int64_t start);
// greedy_sets: every set in one launch, one block per set; ptr/n/start/optr on the device, md (R,) +inf.
void greedy_sets_run(const at::Tensor& x, const at::Tensor& ptr, const at::Tensor& n, const at::Tensor& start,
                     const at::Tensor& optr, at::Tensor& md, at::Tensor& idx, at::Tensor& d2);

}  // namespace cuda
}  // namespace fastsel
