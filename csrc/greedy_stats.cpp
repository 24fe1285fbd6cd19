// fastsel::_greedy_stats and fastsel::_auto_mode (schemas: csrc/ops.cpp). _greedy_stats: counters of the last greedy / threshold call, for
// tests, benchmarks and live progress (fastsel.ops._watched reads the pick counter while a kernel
// runs). One set for every backend; each kernel resets them on entry.
#include <torch/library.h>

#include <atomic>
#include <string>

#include "utils.h"

namespace fastsel {
namespace {
std::atomic<int64_t> g_passes{0}, g_picks{0}, g_pairs{0}, g_pairs_all{0};
}  // namespace

void reset_greedy_stats() {
  g_passes = 0;
  g_picks = 0;
  g_pairs = 0;
  g_pairs_all = 0;
}
void record_greedy_stats(int64_t passes, int64_t picks) {
  g_passes += passes;
  g_picks += picks;
}
void record_greedy_pairs(int64_t examined, int64_t all) {
  g_pairs += examined;
  g_pairs_all += all;
}

// [passes, picks, (row, pick) pairs examined, rows x picks]
static at::Tensor greedy_stats() {
  auto s = at::empty({4}, at::kLong);
  s[0] = g_passes.load();
  s[1] = g_picks.load();
  s[2] = g_pairs.load();
  s[3] = g_pairs_all.load();
  return s;
}

// What mode "auto" resolves to for a CPU call of `op` on N rows and n picks (the rules of
// utils.h, the one place they are written; Python asks here instead of repeating them).
static std::string auto_mode(c10::string_view op_, int64_t N, int64_t n) {
  const std::string op(op_);
  if (op == "greedy") return greedy_multi_pick("auto", N, n) ? "multi" : "single";
  TORCH_CHECK(op == "threshold_decay", "_auto_mode: op must be greedy or threshold_decay, got ", op);
  return threshold_lazy_auto(N, n) ? "lazy" : "single";
}

}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CompositeExplicitAutograd, m) {
  m.impl("_greedy_stats", &fastsel::greedy_stats);
  m.impl("_auto_mode", &fastsel::auto_mode);
}
