// CPU kernels of fastsel::threshold_decay (schema and contract: csrc/ops.cpp).
// The literal Algorithm 2 on the incremental machinery of greedy: rows'
// min-distances to the accepted set are kept exact, so a pass is a scan of the
// state for rows above tau^2, and passes that cannot accept anything are skipped.
// single: the pool is updated after every accept (one read per accept).
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
#include "utils.h"

namespace fastsel {
namespace cpu {

// The outputs of a threshold call, filled in accept order: accept row i (its squared min-distance
// v, the tau it beat) and mark it selected in the state md.
template <typename Acc> struct Accepted {
  int64_t* idx;
  Acc* d2;
  double* tau_at;
  Acc* md;
  int64_t t = 0;
  void add(int64_t i, Acc v, double tau) {
    idx[t] = i;
    d2[t] = v;
    tau_at[t] = tau;
    ++t;
    md[i] = Acc(-1);
  }
};

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
            idx[t] = i;
            d2[t] = md[i];
            tau_at[t] = s.tau;
            md[i] = Acc(-1);
            ++t;
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

// lazy: each row's min-distance is brought up to date against the accepts since its last visit
// only when the scan reaches it (rows whose possibly stale value is already <= tau^2 are skipped:
// values only fall), in blocks of rows by a certified GEMM, then against the accepts made inside
// the block in the difference form. A pass that stops early reads only the rows it scanned. The
// decisions (accept, decay, fill) are made on exact values, so picks, distances and tau are those
// of the eager kernels; the returned min_d2 holds upper bounds for rows not brought up to date.
constexpr int64_t kLazyBlock = 1024;  // rows per block of the scan, at most
constexpr int64_t kLazyMinBlock = 16;  // and at least
constexpr int64_t kLazyAhead = 256;    // rows not reached before are brought up to date this many at a time
constexpr int64_t kLazyDirect = 8;    // a row lagging this few accepts or fewer: the difference form

template <typename T, typename Acc>
static void threshold_lazy(const T* x, int64_t N, int64_t d, Acc* md, int64_t n, int64_t start, double alpha,
                           bool every_pass, ThresholdState& s, int64_t* idx, Acc* d2, double* tau_at,
                           const int64_t* ord = nullptr) {
  // scan position i reads row ord[i] (a permuted scan without a permuted copy); everything else
  // (md, ver, the outputs) is indexed by scan position
  auto row = [&](int64_t i) { return x + (ord ? ord[i] : i) * d; };
  const double u = std::is_same_v<Acc, double> ? 0x1p-53 : 0x1p-24;
  const double kappa = gemm_kappa(d, u);
  std::vector<Acc> mu(d);  // GEMMs on rows centred by a fixed row (any fixed vector keeps the bound valid)
  for (int64_t j = 0; j < d; ++j) mu[j] = static_cast<Acc>(row(start >= 0 ? start : 0)[j]);
  std::vector<int64_t> acc;     // accepts of this call, in order
  std::vector<Acc> arows;       // (A, d) their rows in the accumulation dtype
  std::vector<Acc> ac;          // (A, d) centred
  std::vector<double> an;       // norms of the centred accepts
  std::vector<int64_t> ver(N, 0);  // accepts applied to md[i]
  Accepted<Acc> out{idx, d2, tau_at, md};
  int64_t& t = out.t;
  auto record = [&](int64_t i, Acc v) {
    out.add(i, v, s.tau);
    acc.push_back(i);
    for (int64_t j = 0; j < d; ++j) arows.push_back(static_cast<Acc>(row(i)[j]));
    ac.resize(ac.size() + d);
    an.push_back(centre_row<T, Acc>(row(i), mu.data(), d, ac.data() + ac.size() - d));
    record_greedy_stats(0, 1);
  };
  // row i against accepts ver[i] .. A-1, difference form
  auto direct = [&](int64_t i) {
    const int64_t A = static_cast<int64_t>(acc.size());
    Acc cur = md[i];
    for (int64_t a = ver[i]; a < A; ++a) {
      Acc v = row_d2_dispatch(row(i), arows.data() + a * d, d);
      if (v < cur) cur = v;
    }
    md[i] = cur;
    ver[i] = A;
  };
  // bring rows (unselected) up to date: a certified GEMM for the ones lagging many accepts
  auto refresh = [&](std::vector<int64_t>& rows) {
    const int64_t A = static_cast<int64_t>(acc.size());
    std::vector<int64_t> G;
    for (int64_t i : rows)
      if (A - ver[i] > kLazyDirect) G.push_back(i);
      else if (ver[i] < A) direct(i);
    for (size_t g0 = 0; g0 < G.size(); g0 += 4096) {
      const int64_t gb = std::min<int64_t>(4096, static_cast<int64_t>(G.size() - g0));
      int64_t vmin = A;
      for (int64_t q = 0; q < gb; ++q) vmin = std::min(vmin, ver[G[g0 + q]]);
      const auto adt = std::is_same_v<Acc, double> ? at::kDouble : at::kFloat;
      at::Tensor Xc = at::empty({gb, d}, at::TensorOptions().dtype(adt));
      Acc* xp = Xc.data_ptr<Acc>();
      std::vector<double> cn(gb);
      at::parallel_for(0, gb, 64, [&](int64_t q0, int64_t q1) {
        for (int64_t q = q0; q < q1; ++q) {
          cn[q] = centre_row<T, Acc>(row(G[g0 + q]), mu.data(), d, xp + q * d);
        }
      });
      const int64_t Ap = A - vmin;
      at::Tensor At = at::from_blob(ac.data() + vmin * d, {Ap, d}, at::TensorOptions().dtype(adt));
      at::Tensor Gm = at::mm(Xc, At.t());  // (gb, Ap)
      const Acc* gp = Gm.data_ptr<Acc>();
      at::parallel_for(0, gb, 64, [&](int64_t q0, int64_t q1) {
        std::vector<double> lo(Ap);
        for (int64_t q = q0; q < q1; ++q) {
          const int64_t i = G[g0 + q];
          const int64_t v0 = ver[i];
          const Acc* g = gp + q * Ap + (v0 - vmin);
          Acc cur = settle_row<T, Acc>(row(i), d, md[i], cn[q], A - v0, [&](int64_t a) { return g[a]; },
                                       [&](int64_t a) { return an[v0 + a]; },
                                       [&](int64_t a) { return arows.data() + (v0 + a) * d; }, kappa, lo.data());
          md[i] = cur;
          ver[i] = A;
        }
      });
    }
  };
  std::vector<int64_t> rows;
  auto refresh_all = [&]() {  // exact state: every unselected row up to date
    rows.clear();
    const int64_t A = static_cast<int64_t>(acc.size());
    for (int64_t i = 0; i < N; ++i)
      if (md[i] >= Acc(0) && ver[i] < A) rows.push_back(i);
    refresh(rows);
  };
  auto fill = [&]() {  // only exact duplicates of accepted rows are left: fill in index order
    for (int64_t i = 0; i < N && t < n; ++i)
      if (md[i] >= Acc(0)) {
        record(i, md[i]);
        ++s.filled;
      }
  };
  s.stale = true;  // the returned min_d2 holds upper bounds: not a state to resume from
  if (start >= 0) record(start, md[start]);
  int64_t blk = kLazyBlock;  // rows per block of the scan (adapted to the accept rate)
  int64_t fr = 0;            // rows below fr were brought up to date in a window this pass
  bool fresh = false;  // every unselected row is up to date
  while (t < n) {
    if (s.pos == 0) {
      Acc ub = Acc(-1);  // an upper bound of the largest min-distance (exact when fresh)
      for (int64_t i = 0; i < N; ++i) ub = std::max(ub, md[i]);
      if (!fresh && static_cast<double>(ub) <= s.tau * s.tau) {  // the decay decision needs exact values
        refresh_all();
        ub = Acc(-1);
        for (int64_t i = 0; i < N; ++i) ub = std::max(ub, md[i]);
      }
      if (static_cast<double>(ub) <= 0.0) {  // exact here (ub <= tau^2 refreshed every row)
        fill();
        break;
      }
      while (static_cast<double>(ub) <= s.tau * s.tau) s.tau *= alpha;
    }
    fresh = false;
    const double thr = s.tau * s.tau;
    bool accepted = false;
    const int64_t from = s.pos;
    for (int64_t b0 = s.pos, b1 = 0; b0 < N && !accepted; b0 = b1) {
      // rows brought up to date per block: about twice the rows the last accept needed (at a small
      // tau nearly every row is accepted, and refreshing 1024 rows per accept was most of the time),
      // doubling while no row is accepted; the decisions are on exact values whatever the block
      b1 = std::min(N, b0 + blk);
      blk = std::min(kLazyBlock, 2 * blk);
      // rows the scan has not reached before lag every accept: bring a window of them up to date in
      // one GEMM (a block of 16 rows would bring one new row per accept, a matrix-vector product)
      int64_t re = b1;
      if (b1 > fr) {
        re = std::min(N, std::max(b1, b0 + kLazyAhead));
        fr = re;
      }
      rows.clear();
      const int64_t A = static_cast<int64_t>(acc.size());
      for (int64_t i = b0; i < re; ++i)
        if (md[i] >= Acc(0) && static_cast<double>(md[i]) > thr && ver[i] < A) rows.push_back(i);
      refresh(rows);
      for (int64_t i = b0; i < b1; ++i) {
        if (md[i] < Acc(0) || !(static_cast<double>(md[i]) > thr)) continue;
        direct(i);  // the accepts made since the block's refresh
        if (static_cast<double>(md[i]) > thr) {
          record(i, md[i]);
          s.added = true;
          s.pos = i + 1;
          accepted = true;
          blk = std::max<int64_t>(kLazyMinBlock, std::min<int64_t>(kLazyBlock, 2 * (i + 1 - from)));
          break;
        }
      }
    }
    if (accepted) continue;
    // End of a full pass. One that accepted nothing happens only when a stale bound hid that no
    // row is above tau^2: the eager kernels would have decayed at its start -- same tau -- or,
    // with only duplicates left, filled without decaying.
    if (!s.added) {
      refresh_all();
      fresh = true;
      Acc best = Acc(-1);
      for (int64_t i = 0; i < N; ++i) best = std::max(best, md[i]);
      if (static_cast<double>(best) <= 0.0) {
        fill();
        break;
      }
    }
    if (every_pass || !s.added) s.tau *= alpha;
    s.pos = 0;
    s.added = false;
    fr = 0;
  }
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
      threshold_lazy<scalar_t, Acc_t>(x.data_ptr<scalar_t>(), N, d, m, n, start, alpha, every_pass, s,
                                      idx.data_ptr<int64_t>(), d2.data_ptr<Acc_t>(), tau_at.data_ptr<double>(),
                                      ord.defined() ? ord.data_ptr<int64_t>() : nullptr);
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
