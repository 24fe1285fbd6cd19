// CPU kernels of fastsel::greedy and fastsel::greedy_sets (schemas and contract: csrc/ops.cpp).
//
// single: one pick per pass -- mark the pick selected, stream the pool once to
//   lower every min-distance against it and find the next arg-max in the same pass
//   (d <= 8: the vectorised column kernel, rowdist.h lowd_picks).
// multi: exact multi-pick passes (the argument: csrc/ops.cpp, greedy) -- candidates
//   resolved lazily, the pool updated by certified GEMMs (multipick.h), pruned by
//   blocks when the pool is clustered (prune.h; there a candidate meets its cell's new
//   picks by one certified skinny product, dots_cpu.cpp).
// sets: many pools, a thread each; the last pass's state update is skipped (the state
//   is not returned) and the centred copy's storage is reused set after set.
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <functional>
#include <numeric>
#include <optional>
#include <string>
#include <type_traits>

#include "cpu/multipick.h"
#include "cpu/prune.h"
#include "cpu/rowdist.h"
#include "utils.h"

namespace fastsel {
namespace cpu {

namespace {
constexpr int64_t kPruneCells = 512;     // pruning: at most this many centres (cells; and n / 4) ...
constexpr double kPruneRatio = 0.5;      // ... used when the sample's rows sit this close to them
constexpr int64_t kPruneMinPicks = 512;  // ... for selections of at least this many picks
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
  record_greedy_stats(n, n);
}

// Low-dimensional pools (d <= 8, e.g. point clouds): the rows transposed to columns (padded to
// whole vectors with selected-looking rows) and handed to the vectorised column kernel
// (rowdist.h, lowd_picks: the same distances, bit for bit, as every other kernel).
template <typename T, typename Acc>
static bool try_greedy_lowd(const T* x, int64_t N, int64_t d, Acc* md, int64_t n, int64_t first, int64_t* idx,
                            Acc* d2) {
  if (d < 1 || d > 8) return false;
  constexpr int64_t W = kLowdW<Acc>;
  const int64_t Np = (N + W - 1) / W * W;
  std::vector<Acc> col(static_cast<size_t>(d * Np), Acc(0)), mdp(static_cast<size_t>(Np), Acc(-1));
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < d; ++j) col[j * Np + i] = static_cast<Acc>(x[i * d + j]);
  std::copy(md, md + N, mdp.begin());
  lowd_picks(col.data(), Np, d, mdp.data(), n, first, idx, d2);
  std::copy(mdp.begin(), mdp.begin() + N, md);
  record_greedy_stats(n, n);
  return true;
}

// (value desc, index asc): the order in which greedy prefers rows.
template <typename Acc> struct Before {
  const Acc* v;
  bool operator()(int64_t a, int64_t b) const { return v[a] > v[b] || (v[a] == v[b] && a < b); }
};

// 1. candidates of a pass: the top M unselected rows in greedy's order, their values, and (theta,
// itheta), the next row in that order (bounded: some unselected row is not a candidate).
template <typename Acc>
static bool take_candidates(const Acc* md, int64_t N, int64_t M, std::vector<int64_t>& rows, std::vector<Acc>& vals,
                            Acc& theta, int64_t& itheta) {
  rows.clear();
  for (int64_t i = 0; i < N; ++i)
    if (md[i] >= Acc(0)) rows.push_back(i);
  const int64_t R = static_cast<int64_t>(rows.size());
  const int64_t m = std::min(M, R);
  const bool bounded = R > M;
  theta = Acc(-1);
  itheta = -1;
  if (bounded) {
    std::nth_element(rows.begin(), rows.begin() + M, rows.end(), Before<Acc>{md});
    theta = md[rows[M]];
    itheta = rows[M];
  }
  rows.resize(m);
  vals.resize(m);
  for (int64_t a = 0; a < m; ++a) vals[a] = md[rows[a]];
  return bounded;
}

// The picks of one pass, kept in the forms a stale candidate is brought up to date with: each pick
// in the accumulation dtype (pcen); with blocks, its distances to every centre (dpc, pick-major);
// once the cell-centred copy exists, each cell's picks centred on its centre in one contiguous run
// (pc, norms pcn, pass numbers ps), so that a candidate meets its own cell's new picks by one skinny
// product certified per pick (settle_row) instead of one difference form per pick.
template <typename Acc> struct PassPicks {
  std::vector<int64_t> P;
  std::vector<std::vector<Acc>> pbuf;
  std::vector<const Acc*> pcen;
  std::vector<double> dpc;
  std::vector<std::vector<Acc>> pc;
  std::vector<std::vector<double>> pcn;
  std::vector<std::vector<int64_t>> ps;
  std::vector<int32_t> pcell;

  void reset(int64_t U, bool cells) {
    P.clear();
    dpc.clear();
    pcen.clear();
    pcell.clear();
    if (!cells) return;
    pc.resize(U);
    pcn.resize(U);
    ps.resize(U);
    for (int64_t c = 0; c < U; ++c) {
      pc[c].clear();
      pcn[c].clear();
      ps[c].clear();
    }
  }

  template <typename T>
  void add(int64_t p, const T* x, int64_t d, const Blocks& B, const std::vector<Acc>& cenA, const Centred* Cc) {
    P.push_back(p);
    pbuf.resize(std::max(pbuf.size(), P.size()));
    pcen.push_back(centre<T, Acc>(x + p * d, d, pbuf[P.size() - 1]));
    if (!B.built()) return;
    dpc.resize(P.size() * B.U);
    pick_to_centres<T, Acc>(B, cenA, x, d, p, dpc.data() + (P.size() - 1) * B.U);
    if (!Cc) return;
    const int64_t jp = B.ipos[p];
    const int32_t cp = B.cell[B.bpos[jp]];
    pcell.push_back(cp);
    const Acc* row = Cc->xc.data_ptr<Acc>() + jp * d;
    pc[cp].insert(pc[cp].end(), row, row + d);
    pcn[cp].push_back(Cc->cn.data_ptr<double>()[jp]);
    ps[cp].push_back(static_cast<int64_t>(P.size()) - 1);
  }

  // candidate row i (value cur, an upper bound) against picks [from, P.size()) of the pass
  template <typename T>
  Acc lower(const T* x, int64_t d, int64_t i, Acc cur, int64_t from, const Blocks& B, const Centred* Cc, double kappa,
            std::vector<Acc>& gbuf, std::vector<double>& lo) const {
    const int64_t np_now = static_cast<int64_t>(P.size());
    const int64_t j = B.built() ? B.ipos[i] : -1;
    const int32_t cj = j >= 0 ? B.cell[B.bpos[j]] : -1;
    if (Cc) {  // the own cell's picks from `from` on, by one product
      const std::vector<int64_t>& q = ps[cj];
      const int64_t s0 = std::lower_bound(q.begin(), q.end(), from) - q.begin();
      const int64_t ns = static_cast<int64_t>(q.size()) - s0;
      if (ns > 0) {
        gbuf.resize(ns);
        lo.resize(ns);
        skinny_dots(Cc->xc.data_ptr<Acc>() + j * d, d, 1, pc[cj].data() + s0 * d, ns, d, gbuf.data());
        const double* pn = pcn[cj].data() + s0;
        const int64_t* pq = q.data() + s0;
        cur = settle_row<T, Acc>(x + i * d, d, cur, Cc->cn.data_ptr<double>()[j], ns,
                                 [&](int64_t r) { return gbuf[r]; }, [&](int64_t r) { return pn[r]; },
                                 [&](int64_t r) { return pcen[pq[r]]; }, kappa, lo.data());
      }
    }
    for (int64_t s = from; s < np_now; ++s) {
      if (Cc && pcell[s] == cj) continue;  // settled above
      // a pick that provably cannot bring the candidate closer is skipped
      if (j >= 0 && !row_may_change(B, j, dpc[s * B.U + cj], static_cast<double>(cur))) continue;
      const Acc v = row_d2_dispatch(x + i * d, pcen[s], d);
      if (v < cur) cur = v;
    }
    return cur;
  }
};

// Pruning blocks, when a sample shows cluster structure (else an empty Blocks).
template <typename T, typename Acc>
static Blocks prune_blocks(const at::Tensor& xt, const T* x, int64_t N, int64_t d, int64_t first, int64_t npicks,
                           double u, std::vector<Acc>& cenA) {
  double ratio = 1;
  bool covered = false;
  const int64_t K = std::max<int64_t>(64, std::min<int64_t>(kPruneCells, npicks / 4)) + 16;  // + 16: to see the fall
  std::vector<int64_t> cen = sample_centres<T, Acc>(x, N, d, first >= 0 ? first : 0, K, &ratio, &covered);
  if (covered && ratio <= kPruneRatio && cen.size() >= 2) return build_blocks<T, Acc>(x, N, d, assign_rows(xt, cen), cen, u, cenA);
  return Blocks();
}

// Multi-pick greedy: passes of (1) candidates, (2) picks resolved lazily on a heap, (3) the pool
// update, (4) the candidate count adapted. Longer than ~80 lines on purpose: the phases share the
// pass's heap, picks and buffers, which split functions would each take as a dozen arguments.
template <typename T, typename Acc>
static void greedy_multi(const at::Tensor& xt, const T* x, int64_t N, int64_t d, Acc* md, int64_t n, int64_t first,
                         int64_t* idx, Acc* d2, bool prune, bool keep_state, CentredStore* store) {
  std::vector<Acc> buf;
  int64_t t = 0;
  if (first >= 0) {  // the first pick is given: apply it with one ordinary pass
    idx[t] = first;
    d2[t] = md[first];
    ++t;
    apply_pick<T, Acc>(x, N, d, md, first, buf);
    record_greedy_stats(1, 0);
  }
  if (t == n) return;

  std::vector<Acc> cenA;
  const double u = std::is_same_v<Acc, double> ? 0x1p-53 : 0x1p-24;  // the accumulation dtype's unit roundoff
  Blocks B = (prune && n - t >= kPruneMinPicks) ? prune_blocks<T, Acc>(xt, x, N, d, first, n - t, u, cenA) : Blocks();
  // the centred copy: on the pool mean; with blocks, in block order, each row on its cell's centre
  // (built only if a pass needs the GEMM: clustered pools often never do)
  std::optional<Centred> Copt;
  std::function<const Centred&()> getC = [&]() -> const Centred& {
    if (!Copt)
      Copt = B.built() ? cell_centred_rows<T, Acc>(x, d, B, cenA, store) : centred_rows<T, Acc>(x, N, d, xt.options(), store);
    return *Copt;
  };
  if (!B.built()) getC();

  int64_t M = 256;
  std::vector<int64_t> rows, heap, last;  // candidates; their heap; picks of the pass each has seen
  std::vector<Acc> vals, gbuf;
  std::vector<double> lo;
  PassPicks<Acc> pass;
  rows.reserve(N);
  while (t < n) {
    Acc theta;
    int64_t itheta;
    const bool bounded = take_candidates<Acc>(md, N, M, rows, vals, theta, itheta);
    const int64_t m = static_cast<int64_t>(rows.size());
    // 2. resolve picks among the candidates, exactly as the one-pick loop would, lazily: a heap
    // in greedy's order on values that are upper bounds (min-distances only fall); the top is
    // brought up to date against the pass's picks made since its last visit, and taken once it
    // is up to date and still on top -- then no other candidate can beat it.
    const Centred* Cc = (B.built() && Copt) ? &*Copt : nullptr;  // the cell-centred copy, if built
    const double kappa = Cc ? gemm_kappa(d, Cc->u) : 0.0;          // settle_row's bound
    pass.reset(B.U, Cc != nullptr);
    last.assign(m, 0);
    auto after = [&](int64_t a, int64_t b) { return vals[a] < vals[b] || (vals[a] == vals[b] && rows[a] > rows[b]); };
    heap.resize(m);
    std::iota(heap.begin(), heap.end(), int64_t(0));
    std::make_heap(heap.begin(), heap.end(), after);
    while (t < n && !heap.empty()) {
      const int64_t a = heap.front();
      const int64_t np_now = static_cast<int64_t>(pass.P.size());
      std::pop_heap(heap.begin(), heap.end(), after);
      if (last[a] < np_now) {  // stale: lower it against the picks it has not seen, then re-queue
        vals[a] = pass.lower(x, d, rows[a], vals[a], last[a], B, Cc, kappa, gbuf, lo);
        last[a] = np_now;
        std::push_heap(heap.begin(), heap.end(), after);
        continue;
      }
      if (bounded && !(vals[a] > theta || (vals[a] == theta && rows[a] < itheta))) break;
      heap.pop_back();
      idx[t] = rows[a];
      d2[t] = vals[a];
      ++t;
      pass.add(rows[a], x, d, B, cenA, Cc);
    }
    record_greedy_stats(1, 0);
    // 3. pool update against every pick of the pass (after the last pass only when the caller
    // keeps the state)
    const std::vector<int64_t>& P = pass.P;
    const int64_t np = static_cast<int64_t>(P.size());
    for (int64_t p : P) md[p] = Acc(-1);
    if (t == n && !keep_state) {
      record_greedy_stats(0, np);
      break;
    }
    int64_t pairs = N * np;
    if (B.built())
      pairs = update_pruned<T, Acc>(getC, B, cenA, x, N, d, md, P, pass.dpc);
    else
      update_against<T, Acc>(getC(), x, N, d, md, P);
    record_greedy_pairs(pairs, N * np);
    record_greedy_stats(0, np);
    // 4. adapt the candidate count to how many picks a pass yields
    if (4 * np >= M && M < 8192) M *= 2;
    else if (16 * np < M && M > 32) M /= 2;
  }
}

// keep_state false: the returned min-distances may miss the last pass's picks (callers that drop
// them: the sets kernel); store: storage for the centred copy, reused between calls.
static std::tuple<at::Tensor, at::Tensor, at::Tensor> greedy_run(const at::Tensor& x_, int64_t n, int64_t start,
                                                                 const std::optional<at::Tensor>& min_d2,
                                                                 c10::string_view mode_, bool keep_state,
                                                                 CentredStore* store) {
  reset_greedy_stats();  // first: fastsel.ops._watched reads the pick counter while this runs
  check_pool(x_, "x");
  TORCH_CHECK(x_.device().is_cpu(), "x must be a CPU tensor");
  const std::string mode(mode_);
  check_greedy_mode(mode, true);
  const int64_t N = x_.size(0), d = x_.size(1);
  at::Tensor x = x_.contiguous();
  at::Tensor md = initial_state(x, min_d2, start);
  check_unselected(md, n);
  auto idx = at::empty({n}, x.options().dtype(at::kLong));
  auto d2 = at::empty({n}, md.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "fastsel_greedy_cpu", [&] {
    using Acc_t = typename Acc<scalar_t>::type;
    Acc_t* m = md.data_ptr<Acc_t>();
    int64_t first = start;
    if (first >= 0) {
      TORCH_CHECK(first < N && m[first] >= Acc_t(0), "start ", first, " is out of range or already selected");
    }
    const bool multi = greedy_multi_pick(mode, N, n);
    if (multi) {
      const bool prune = mode != "multi-noprune";
      greedy_multi<scalar_t, Acc_t>(x, x.data_ptr<scalar_t>(), N, d, m, n, first, idx.data_ptr<int64_t>(),
                                    d2.data_ptr<Acc_t>(), prune, keep_state, store);
    } else {
      if (first < 0) first = scan_state<Acc_t>(m, N, std::numeric_limits<double>::infinity(), N).best_i;
      // low d, small pools (a thread's share of cache): the column kernel, one thread per call
      const bool lowd = d <= 8 && N <= (int64_t(1) << 16) &&
                        try_greedy_lowd<scalar_t, Acc_t>(x.data_ptr<scalar_t>(), N, d, m, n, first,
                                                          idx.data_ptr<int64_t>(), d2.data_ptr<Acc_t>());
      if (!lowd)
        greedy_single<scalar_t, Acc_t>(x.data_ptr<scalar_t>(), N, d, m, n, first, idx.data_ptr<int64_t>(),
                                       d2.data_ptr<Acc_t>());
    }
  });
  return {idx, d2, md};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> greedy_cpu(const at::Tensor& x_, int64_t n, int64_t start,
                                                          const std::optional<at::Tensor>& min_d2,
                                                          c10::string_view mode_) {
  return greedy_run(x_, n, start, min_d2, mode_, true, nullptr);
}

// Independent sets (rows ptr[b] .. ptr[b+1] of x): n[b] picks from local start[b] each, every
// set exactly as greedy_cpu alone would pick it. Many sets: in parallel, one thread per set
// (small sets read their rows once per pick from cache); few sets: one after another, each
// with every thread.
std::tuple<at::Tensor, at::Tensor> greedy_sets_cpu(const at::Tensor& x_, const at::Tensor& ptr_,
                                                   const at::Tensor& n_, const at::Tensor& start_, int64_t total,
                                                   c10::string_view mode_) {
  check_pool(x_, "x");
  TORCH_CHECK(x_.device().is_cpu(), "x must be a CPU tensor");
  const std::vector<int64_t> off = check_sets_args(x_, ptr_, n_, start_, total);
  const int64_t B = ptr_.size(0) - 1;
  const std::string mode(mode_);
  at::Tensor x = x_.contiguous(), ptr = ptr_.contiguous(), nn = n_.contiguous(), st = start_.contiguous();
  const int64_t* P = ptr.data_ptr<int64_t>();
  const int64_t* nv = nn.data_ptr<int64_t>();
  const int64_t* sv = st.data_ptr<int64_t>();
  auto idx = at::empty({total}, x.options().dtype(at::kLong));
  auto d2 = at::empty({total}, x.options().dtype(x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat));
  auto one = [&](int64_t b, CentredStore* store) {
    if (nv[b] == 0) return;
    auto r = greedy_run(x.narrow(0, P[b], P[b + 1] - P[b]), nv[b], sv[b], std::nullopt, mode, false, store);
    idx.narrow(0, off[b], nv[b]).copy_(std::get<0>(r) + P[b]);
    d2.narrow(0, off[b], nv[b]).copy_(std::get<1>(r));
  };
  const int64_t nt = at::get_num_threads();
  if (B >= 2 * nt) {
    // each thread takes the next set when done with one (sets differ in cost)
    std::atomic<int64_t> next{0};
    at::parallel_for(0, nt, 1, [&](int64_t, int64_t) {
      CentredStore store;  // one per thread's run of sets
      for (int64_t b = next++; b < B; b = next++) one(b, &store);
    });
  } else {
    CentredStore store;
    for (int64_t b = 0; b < B; ++b) one(b, &store);
  }
  return {idx, d2};
}

}  // namespace cpu
}  // namespace fastsel

TORCH_LIBRARY_IMPL(fastsel, CPU, m) {
  m.impl("greedy", &fastsel::cpu::greedy_cpu);
  m.impl("greedy_sets", &fastsel::cpu::greedy_sets_cpu);
}

