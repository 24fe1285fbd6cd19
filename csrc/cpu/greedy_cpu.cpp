// CPU kernels of fastsel::greedy (schema and contract: csrc/ops.cpp).
//
// single: one pick per pass -- mark the pick selected, stream the pool once to
//   lower every min-distance against it and find the next arg-max in the same pass.
// multi: exact multi-pick passes -- resolve the top-M rows among themselves,
//   then update the pool against all the pass's picks with one GEMM, recomputing
//   in the difference form only the (row, pick) pairs the GEMM's error bound
//   cannot settle. Both give the same min-distance state bit for bit.
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>

#include "cpu/multipick.h"
#include "cpu/rowdist.h"
#include "utils.h"

namespace fastsel {
namespace cpu {

namespace {
std::atomic<int64_t> g_passes{0}, g_picks{0};  // _greedy_stats, for CPU and CUDA kernels alike

constexpr int64_t kMultiMinRows = 8192;  // auto: multi-pick from this pool size ...
constexpr int64_t kMultiMinPicks = 64;   // ... and this many picks
}  // namespace

template <typename T, typename Acc>
static void apply_pick(const T* x, int64_t N, int64_t d, Acc* md, int64_t pick, std::vector<Acc>& buf) {
  md[pick] = Acc(-1);
  const Acc* c = centre<T, Acc>(x + pick * d, d, buf);
  update_all<T, Acc>(x, N, d, c, md, std::numeric_limits<double>::infinity(), N);
}

template <typename T, typename Acc>
static void greedy_single(const T* x, int64_t N, int64_t d, Acc* md, int64_t n, int64_t first, int64_t* idx,
                          Acc* d2) {
  std::vector<Acc> buf;
  const double no_thr = std::numeric_limits<double>::infinity();
  int64_t pick = first;
  for (int64_t t = 0; t < n; ++t) {
    idx[t] = pick;
    d2[t] = md[pick];
    md[pick] = Acc(-1);
    // The last pick is applied too, so the returned state is the exact min
    // distance to the whole selected set and a later call can resume from it.
    const Acc* c = centre<T, Acc>(x + pick * d, d, buf);
    auto r = update_all<T, Acc>(x, N, d, c, md, no_thr, N);
    pick = r.best_i;
  }
  g_passes += n;
  g_picks += n;
}

// (value desc, index asc): the order in which greedy prefers rows.
template <typename Acc> struct Before {
  const Acc* v;
  bool operator()(int64_t a, int64_t b) const { return v[a] > v[b] || (v[a] == v[b] && a < b); }
};

template <typename T, typename Acc>
static void greedy_multi(const at::Tensor& xt, const T* x, int64_t N, int64_t d, Acc* md, int64_t n, int64_t first,
                         int64_t* idx, Acc* d2) {
  std::vector<Acc> buf;
  int64_t t = 0;
  if (first >= 0) {  // the first pick is given: apply it with one ordinary pass
    idx[t] = first;
    d2[t] = md[first];
    ++t;
    apply_pick<T, Acc>(x, N, d, md, first, buf);
    g_passes += 1;
  }
  if (t == n) return;

  const Centred C = make_centred(xt);

  int64_t M = 256;
  std::vector<int64_t> rows;
  std::vector<Acc> vals;
  std::vector<int64_t> P;
  rows.reserve(N);
  while (t < n) {
    // 1. candidates: the top M unselected rows in greedy's order; (theta, itheta) the next one
    rows.clear();
    for (int64_t i = 0; i < N; ++i)
      if (md[i] >= Acc(0)) rows.push_back(i);
    const int64_t R = static_cast<int64_t>(rows.size());
    Before<Acc> before{md};
    int64_t m = std::min(M, R);
    bool bounded = R > M;
    Acc theta = Acc(-1);
    int64_t itheta = -1;
    if (bounded) {
      std::nth_element(rows.begin(), rows.begin() + M, rows.end(), before);
      theta = md[rows[M]];
      itheta = rows[M];
    }
    rows.resize(m);
    vals.resize(m);
    for (int64_t a = 0; a < m; ++a) vals[a] = md[rows[a]];
    // 2. resolve picks among the candidates, exactly as the one-pick loop would
    P.clear();
    std::vector<char> taken(m, 0);
    while (t < n) {
      int64_t b = -1;
      for (int64_t a = 0; a < m; ++a) {
        if (taken[a]) continue;
        if (b < 0 || vals[a] > vals[b] || (vals[a] == vals[b] && rows[a] < rows[b])) b = a;
      }
      if (b < 0) break;
      if (bounded && !(vals[b] > theta || (vals[b] == theta && rows[b] < itheta))) break;
      const int64_t p = rows[b];
      taken[b] = 1;
      idx[t] = p;
      d2[t] = vals[b];
      ++t;
      P.push_back(p);
      if (t == n) break;
      const Acc* c = centre<T, Acc>(x + p * d, d, buf);
      at::parallel_for(0, m, 64, [&](int64_t a0, int64_t a1) {
        for (int64_t a = a0; a < a1; ++a) {
          if (taken[a]) continue;
          Acc v = row_d2_dispatch(x + rows[a] * d, c, d);
          if (v < vals[a]) vals[a] = v;
        }
      });
    }
    g_passes += 1;
    // 3. pool update against every pick of the pass
    const int64_t np = static_cast<int64_t>(P.size());
    for (int64_t p : P) md[p] = Acc(-1);
    update_against<T, Acc>(C, x, N, d, md, P);
    g_picks += np;
    // 4. adapt the candidate count to how many picks a pass yields
    if (2 * np >= M && M < 4096) M *= 2;
    else if (8 * np < M && M > 32) M /= 2;
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> greedy_cpu(const at::Tensor& x_, int64_t n, int64_t start,
                                                          const std::optional<at::Tensor>& min_d2,
                                                          c10::string_view mode_) {
  check_pool(x_, "x");
  TORCH_CHECK(x_.device().is_cpu(), "x must be a CPU tensor");
  const std::string mode(mode_);
  TORCH_CHECK(mode == "auto" || mode == "single" || mode == "multi", "mode must be auto, single or multi, got ",
              mode);
  const int64_t N = x_.size(0), d = x_.size(1);
  at::Tensor x = x_.contiguous();
  at::Tensor md = initial_state(x, min_d2, start);
  check_unselected(md, n);
  auto idx = at::empty({n}, x.options().dtype(at::kLong));
  auto d2 = at::empty({n}, md.options());
  reset_greedy_stats();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastsel_greedy_cpu", [&] {
    using Acc_t = typename Acc<scalar_t>::type;
    Acc_t* m = md.data_ptr<Acc_t>();
    int64_t first = start;
    if (first >= 0) {
      TORCH_CHECK(first < N && m[first] >= Acc_t(0), "start ", first, " is out of range or already selected");
    }
    const bool multi = mode == "multi" || (mode == "auto" && N >= kMultiMinRows && n >= kMultiMinPicks);
    if (multi) {
      greedy_multi<scalar_t, Acc_t>(x, x.data_ptr<scalar_t>(), N, d, m, n, first, idx.data_ptr<int64_t>(),
                                    d2.data_ptr<Acc_t>());
    } else {
      if (first < 0) first = scan_state<Acc_t>(m, N, std::numeric_limits<double>::infinity(), N).best_i;
      greedy_single<scalar_t, Acc_t>(x.data_ptr<scalar_t>(), N, d, m, n, first, idx.data_ptr<int64_t>(),
                                     d2.data_ptr<Acc_t>());
    }
  });
  return {idx, d2, md};
}

}  // namespace cpu

void reset_greedy_stats() {
  cpu::g_passes = 0;
  cpu::g_picks = 0;
}
void record_greedy_stats(int64_t passes, int64_t picks) {
  cpu::g_passes += passes;
  cpu::g_picks += picks;
}

namespace cpu {
at::Tensor greedy_stats() {
  auto s = at::empty({2}, at::kLong);
  s[0] = g_passes.load();
  s[1] = g_picks.load();
  return s;
}

}  // namespace cpu
}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CPU, m) { m.impl("greedy", &fastsel::cpu::greedy_cpu); }
TORCH_LIBRARY_IMPL(fastsel, CompositeExplicitAutograd, m) { m.impl("_greedy_stats", &fastsel::cpu::greedy_stats); }
