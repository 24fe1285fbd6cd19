// CPU kernels of fastsel::threshold_decay (schema and contract: csrc/ops.cpp).
// The literal Algorithm 2 on the incremental machinery of greedy: rows'
// min-distances to the accepted set are kept exact, so a pass is a scan of the
// state for rows above tau^2, and passes that cannot accept anything are skipped.
// single: the pool is updated after every accept (one read per accept).
// lazy (cpu/threshold_lazy.h): rows brought up to date only where the scan reaches them.
// chunked: accepts since the last update are kept pending; a row above tau^2
//   is checked against the pending accepts in the difference form (the exact
//   sequential rule), and every K accepts the pool is updated against all of
//   them by the certified GEMM of multipick.h. Bit-identical to single.
#include <torch/library.h>

#include <cmath>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/multipick.h"
#include "cpu/rowdist.h"
#include "cpu/threshold_lazy.h"
#include "utils.h"

namespace fastsel {
namespace cpu {

template <typename T, typename Acc>
static void threshold_loop(const T* x, int64_t N, int64_t d, Acc* md, int64_t n, int64_t start, double alpha,
                           bool every_pass, ThresholdState& s, int64_t* idx, Acc* d2, double* tau_at) {
  std::vector<Acc> buf;
  Accepted<Acc> out{idx, d2, tau_at, md};
  int64_t& t = out.t;
  // Accept row i; the next candidate of the pass is searched from `from`.
  auto accept = [&](int64_t i, int64_t from) {
    out.add(i, md[i], s.tau);
    const Acc* c = centre<T, Acc>(x + i * d, d, buf);
    // Keep the state exact after every accept.
    return update_all<T, Acc>(x, N, d, c, md, s.tau * s.tau, from);
  };
  BlockResult<Acc> r;
  if (start >= 0) {
    r = accept(start, 0);  // the first pass then scans from row 0
  } else {
    r = scan_state<Acc>(md, N, s.tau * s.tau, s.pos);
  }
  while (t < n) {
    if (s.pos == 0) {
      // A pass begins. It accepts nothing exactly when no unselected row is
      // above tau^2; each such pass would multiply tau by alpha once.
      double best = static_cast<double>(r.best);
      if (r.best_i < 0 || best <= 0.0) {
        // Every unselected row is at distance 0 from the selected set: the
        // printed algorithm never ends. Fill the remaining slots in index order.
        for (int64_t i = 0; i < N && t < n; ++i) {
          if (md[i] >= Acc(0)) {
            out.add(i, md[i], s.tau);
            ++s.filled;
          }
        }
        break;
      }
      bool decayed = false;
      while (best <= s.tau * s.tau) {
        s.tau *= alpha;
        decayed = true;
      }
      if (decayed) r = scan_state<Acc>(md, N, s.tau * s.tau, 0);
    }
    if (r.first_i >= 0) {
      s.added = true;
      int64_t i = r.first_i;
      s.pos = i + 1;
      r = accept(i, i + 1);
      continue;
    }
    // End of a full pass.
    if (every_pass || !s.added) s.tau *= alpha;
    s.pos = 0;
    s.added = false;
    r = scan_state<Acc>(md, N, s.tau * s.tau, 0);
  }
}

constexpr int64_t kPending = 256;        // chunked: accepts between pool updates

template <typename T, typename Acc>
static void threshold_chunked(const at::Tensor& xt, const T* x, int64_t N, int64_t d, Acc* md, int64_t n,
                              int64_t start, double alpha, bool every_pass, ThresholdState& s, int64_t* idx, Acc* d2,
                              double* tau_at) {
  const Centred C = make_centred(xt);
  std::vector<int64_t> pend;
  std::vector<std::vector<Acc>> pbuf;
  std::vector<const Acc*> prow;
  Accepted<Acc> out{idx, d2, tau_at, md};
  int64_t& t = out.t;
  auto record = [&](int64_t i, Acc v) { out.add(i, v, s.tau); };
  auto add_pending = [&](int64_t i) {
    pend.push_back(i);
    pbuf.emplace_back();
    prow.push_back(centre<T, Acc>(x + i * d, d, pbuf.back()));
  };
  auto flush = [&]() {
    update_against<T, Acc>(C, x, N, d, md, pend);
    pend.clear();
    pbuf.clear();
    prow.clear();
  };
  if (start >= 0) {
    record(start, md[start]);
    add_pending(start);
  }
  while (t < n) {
    if (s.pos == 0) {
      flush();  // the pass-start test needs the exact state
      Acc best = Acc(-1);
      for (int64_t i = 0; i < N; ++i) best = std::max(best, md[i]);
      if (static_cast<double>(best) <= 0.0) {
        for (int64_t i = 0; i < N && t < n; ++i) {
          if (md[i] >= Acc(0)) {
            record(i, md[i]);
            ++s.filled;
          }
        }
        break;
      }
      while (static_cast<double>(best) <= s.tau * s.tau) s.tau *= alpha;
    }
    const double thr = s.tau * s.tau;
    int64_t i = s.pos;
    bool accepted = false;
    Acc v = Acc(0);
    for (; i < N; ++i) {
      const Acc m = md[i];
      if (m < Acc(0) || !(static_cast<double>(m) > thr)) continue;  // min-distances only fall
      v = m;
      for (size_t a = 0; a < pend.size() && static_cast<double>(v) > thr; ++a) {
        Acc w = row_d2_dispatch(x + i * d, prow[a], d);
        if (w < v) v = w;
      }
      if (static_cast<double>(v) > thr) {
        accepted = true;
        break;
      }
    }
    if (accepted) {
      record(i, v);
      add_pending(i);
      s.added = true;
      s.pos = i + 1;
      if (static_cast<int64_t>(pend.size()) >= kPending) flush();
      continue;
    }
    // End of a full pass.
    if (every_pass || !s.added) s.tau *= alpha;
    s.pos = 0;
    s.added = false;
  }
  flush();  // the returned state is exact
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> threshold_decay_cpu(
    const at::Tensor& x_, int64_t n, int64_t start, double tau, double alpha, bool every_pass,
    const std::optional<at::Tensor>& min_d2, const std::optional<at::Tensor>& state, c10::string_view mode_,
    const std::optional<at::Tensor>& order) {
  reset_greedy_stats();  // the accept counter fastsel.ops._watched reads
  check_pool(x_, "x");
  const std::string mode(mode_);
  check_threshold_args(mode, alpha);
  TORCH_CHECK(x_.device().is_cpu(), "x must be a CPU tensor");
  const int64_t N = x_.size(0), d = x_.size(1);
  at::Tensor x = x_.contiguous();
  const bool lazy = mode == "lazy" || (mode == "auto" && threshold_lazy_auto(N, n));
  at::Tensor ord;
  if (order.has_value()) {
    check_scan_order(*order, x);
    if (lazy) {
      ord = order->contiguous();  // read through: no copy of the pool
    } else {
      x = x.index_select(0, *order);  // the eager modes update the whole pool in row blocks: a permuted copy
    }
  }
  ThresholdStart ts = threshold_start(x, n, start, tau, min_d2, state);
  ThresholdState s = ts.s;
  at::Tensor md = ts.md, idx = ts.idx, d2 = ts.d2, tau_at = ts.tau_at;
  start = ts.start;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastsel_threshold_cpu", [&] {
    using Acc_t = typename Acc<scalar_t>::type;
    Acc_t* m = md.data_ptr<Acc_t>();
    if (lazy) {
      LazyScan<scalar_t, Acc_t>(x.data_ptr<scalar_t>(), N, d, m, start, s, idx.data_ptr<int64_t>(),
                                d2.data_ptr<Acc_t>(), tau_at.data_ptr<double>(),
                                ord.defined() ? ord.data_ptr<int64_t>() : nullptr)
          .run(n, start, alpha, every_pass);
    } else if (mode == "chunked") {
      threshold_chunked<scalar_t, Acc_t>(x, x.data_ptr<scalar_t>(), N, d, m, n, start, alpha, every_pass, s,
                                         idx.data_ptr<int64_t>(), d2.data_ptr<Acc_t>(), tau_at.data_ptr<double>());
    } else {
      threshold_loop<scalar_t, Acc_t>(x.data_ptr<scalar_t>(), N, d, m, n, start, alpha, every_pass, s,
                                      idx.data_ptr<int64_t>(), d2.data_ptr<Acc_t>(), tau_at.data_ptr<double>());
    }
  });
  return {idx, d2, tau_at, md, threshold_state_tensor(s, x.device())};
}

}  // namespace cpu
}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CPU, m) { m.impl("threshold_decay", &fastsel::cpu::threshold_decay_cpu); }
