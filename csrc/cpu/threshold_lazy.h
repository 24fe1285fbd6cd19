// The threshold filter's lazy CPU scan (mode "lazy"; auto picks it on the CPU) and the recorder of
// accepts that every CPU threshold kernel fills. Included by threshold_decay_cpu.cpp only.
//
// lazy: each row's min-distance is brought up to date against the accepts since its last visit
// only when the scan reaches it (rows whose possibly stale value is already <= tau^2 are skipped:
// values only fall), in blocks of rows by a certified GEMM, then against the accepts made inside
// the block in the difference form. A pass that stops early reads only the rows it scanned. The
// decisions (accept, decay, fill) are made on exact values, so picks, distances and tau are those
// of the eager kernels; the returned min_d2 holds upper bounds for rows not brought up to date.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
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

constexpr int64_t kLazyBlock = 1024;   // rows per block of the scan, at most
constexpr int64_t kLazyMinBlock = 16;  // and at least
constexpr int64_t kLazyAhead = 256;    // rows not reached before are brought up to date this many at a time
constexpr int64_t kLazyDirect = 8;     // a row lagging this few accepts or fewer: the difference form
constexpr int64_t kLazyGemmRows = 4096;  // rows per certified GEMM of a refresh

// Scan position i reads row ord[i] (a permuted scan without a permuted copy); everything else
// (md, ver, the outputs) is indexed by scan position.
template <typename T, typename Acc> class LazyScan {
 public:
  LazyScan(const T* x, int64_t N, int64_t d, Acc* md, int64_t start, ThresholdState& s, int64_t* idx, Acc* d2,
           double* tau_at, const int64_t* ord)
      : x_(x), ord_(ord), N_(N), d_(d), md_(md), s_(s), out_{idx, d2, tau_at, md}, mu_(d), ver_(N, 0),
        kappa_(gemm_kappa(d, std::is_same_v<Acc, double> ? 0x1p-53 : 0x1p-24)) {
    // GEMMs on rows centred by a fixed row (any fixed vector keeps the bound valid)
    for (int64_t j = 0; j < d; ++j) mu_[j] = static_cast<Acc>(row(start >= 0 ? start : 0)[j]);
  }

  // Algorithm 2 until n rows are accepted (or only duplicates of accepted rows are left: filled).
  void run(int64_t n, int64_t start, double alpha, bool every_pass) {
    n_ = n;
    s_.stale = true;  // the returned min_d2 holds upper bounds: not a state to resume from
    if (start >= 0) record(start, md_[start]);
    while (out_.t < n_) {
      if (s_.pos == 0 && !begin_pass(alpha)) return;
      fresh_ = false;
      if (accept_next()) continue;
      if (!end_pass(alpha, every_pass)) return;
    }
  }

 private:
  const T* row(int64_t i) const { return x_ + (ord_ ? ord_[i] : i) * d_; }

  Acc max_md() const {  // an upper bound of the largest min-distance (exact when every row is up to date)
    Acc ub = Acc(-1);
    for (int64_t i = 0; i < N_; ++i) ub = std::max(ub, md_[i]);
    return ub;
  }

  void record(int64_t i, Acc v) {
    out_.add(i, v, s_.tau);
    acc_.push_back(i);
    for (int64_t j = 0; j < d_; ++j) arows_.push_back(static_cast<Acc>(row(i)[j]));
    ac_.resize(ac_.size() + d_);
    an_.push_back(centre_row<T, Acc>(row(i), mu_.data(), d_, ac_.data() + ac_.size() - d_));
    record_greedy_stats(0, 1);
  }

  // Row i against accepts ver[i] .. A-1, difference form.
  void direct(int64_t i) {
    const int64_t A = static_cast<int64_t>(acc_.size());
    Acc cur = md_[i];
    for (int64_t a = ver_[i]; a < A; ++a) {
      Acc v = row_d2_dispatch(row(i), arows_.data() + a * d_, d_);
      if (v < cur) cur = v;
    }
    md_[i] = cur;
    ver_[i] = A;
  }

  // Bring rows (unselected) up to date: a certified GEMM for the ones lagging many accepts.
  void refresh(const std::vector<int64_t>& rows) {
    const int64_t A = static_cast<int64_t>(acc_.size());
    std::vector<int64_t> G;
    for (int64_t i : rows)
      if (A - ver_[i] > kLazyDirect) G.push_back(i);
      else if (ver_[i] < A) direct(i);
    for (size_t g0 = 0; g0 < G.size(); g0 += kLazyGemmRows)
      refresh_gemm(G.data() + g0, std::min<int64_t>(kLazyGemmRows, static_cast<int64_t>(G.size() - g0)));
  }

  // Rows G[0 .. gb) against the accepts each lags, by one GEMM of the centred rows against the
  // centred accepts from the oldest lag on, every pair certified (settle_row).
  void refresh_gemm(const int64_t* G, int64_t gb) {
    const int64_t A = static_cast<int64_t>(acc_.size());
    int64_t vmin = A;
    for (int64_t q = 0; q < gb; ++q) vmin = std::min(vmin, ver_[G[q]]);
    const auto adt = std::is_same_v<Acc, double> ? at::kDouble : at::kFloat;
    at::Tensor Xc = at::empty({gb, d_}, at::TensorOptions().dtype(adt));
    Acc* xp = Xc.data_ptr<Acc>();
    std::vector<double> cn(gb);
    at::parallel_for(0, gb, 64, [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q) cn[q] = centre_row<T, Acc>(row(G[q]), mu_.data(), d_, xp + q * d_);
    });
    const int64_t Ap = A - vmin;
    at::Tensor At = at::from_blob(ac_.data() + vmin * d_, {Ap, d_}, at::TensorOptions().dtype(adt));
    at::Tensor Gm = at::mm(Xc, At.t());  // (gb, Ap)
    const Acc* gp = Gm.data_ptr<Acc>();
    at::parallel_for(0, gb, 64, [&](int64_t q0, int64_t q1) {
      std::vector<double> lo(Ap);
      for (int64_t q = q0; q < q1; ++q) {
        const int64_t i = G[q];
        const int64_t v0 = ver_[i];
        const Acc* g = gp + q * Ap + (v0 - vmin);
        md_[i] = settle_row<T, Acc>(row(i), d_, md_[i], cn[q], A - v0, [&](int64_t a) { return g[a]; },
                                    [&](int64_t a) { return an_[v0 + a]; },
                                    [&](int64_t a) { return arows_.data() + (v0 + a) * d_; }, kappa_, lo.data());
        ver_[i] = A;
      }
    });
  }

  void refresh_all() {  // exact state: every unselected row up to date
    rows_.clear();
    const int64_t A = static_cast<int64_t>(acc_.size());
    for (int64_t i = 0; i < N_; ++i)
      if (md_[i] >= Acc(0) && ver_[i] < A) rows_.push_back(i);
    refresh(rows_);
  }

  void fill() {  // only exact duplicates of accepted rows are left: fill in index order
    for (int64_t i = 0; i < N_ && out_.t < n_; ++i)
      if (md_[i] >= Acc(0)) {
        record(i, md_[i]);
        ++s_.filled;
      }
  }

  // A pass begins: decay tau until some row is above tau^2 (decided on exact values). Returns
  // false when only duplicates were left (filled).
  bool begin_pass(double alpha) {
    Acc ub = max_md();
    if (!fresh_ && static_cast<double>(ub) <= s_.tau * s_.tau) {  // the decay decision needs exact values
      refresh_all();
      ub = max_md();
    }
    if (static_cast<double>(ub) <= 0.0) {  // exact here (ub <= tau^2 refreshed every row)
      fill();
      return false;
    }
    while (static_cast<double>(ub) <= s_.tau * s_.tau) s_.tau *= alpha;
    return true;
  }

  // Scan from s.pos for the first row above tau^2 and accept it. Returns false at the pass's end.
  bool accept_next() {
    const double thr = s_.tau * s_.tau;
    const int64_t from = s_.pos;
    for (int64_t b0 = s_.pos, b1 = 0; b0 < N_; b0 = b1) {
      // rows brought up to date per block: about twice the rows the last accept needed (at a small
      // tau nearly every row is accepted, and refreshing 1024 rows per accept was most of the time),
      // doubling while no row is accepted; the decisions are on exact values whatever the block
      b1 = std::min(N_, b0 + blk_);
      blk_ = std::min(kLazyBlock, 2 * blk_);
      refresh_window(b0, b1, thr);
      for (int64_t i = b0; i < b1; ++i) {
        if (md_[i] < Acc(0) || !(static_cast<double>(md_[i]) > thr)) continue;
        direct(i);  // the accepts made since the block's refresh
        if (static_cast<double>(md_[i]) > thr) {
          record(i, md_[i]);
          s_.added = true;
          s_.pos = i + 1;
          blk_ = std::max<int64_t>(kLazyMinBlock, std::min<int64_t>(kLazyBlock, 2 * (i + 1 - from)));
          return true;
        }
      }
    }
    return false;
  }

  // Bring the block [b0, b1) up to date, and, when it reaches rows the scan has not reached before
  // (they lag every accept), a window of kLazyAhead of them in one GEMM (a block of 16 rows would
  // bring one new row per accept, a matrix-vector product).
  void refresh_window(int64_t b0, int64_t b1, double thr) {
    int64_t re = b1;
    if (b1 > fr_) {
      re = std::min(N_, std::max(b1, b0 + kLazyAhead));
      fr_ = re;
    }
    rows_.clear();
    const int64_t A = static_cast<int64_t>(acc_.size());
    for (int64_t i = b0; i < re; ++i)
      if (md_[i] >= Acc(0) && static_cast<double>(md_[i]) > thr && ver_[i] < A) rows_.push_back(i);
    refresh(rows_);
  }

  // End of a full pass. One that accepted nothing happens only when a stale bound hid that no row
  // is above tau^2: the eager kernels would have decayed at its start -- same tau -- or, with only
  // duplicates left, filled without decaying. Returns false when filled.
  bool end_pass(double alpha, bool every_pass) {
    if (!s_.added) {
      refresh_all();
      fresh_ = true;
      if (static_cast<double>(max_md()) <= 0.0) {
        fill();
        return false;
      }
    }
    if (every_pass || !s_.added) s_.tau *= alpha;
    s_.pos = 0;
    s_.added = false;
    fr_ = 0;
    return true;
  }

  const T* x_;
  const int64_t* ord_;
  int64_t N_, d_;
  Acc* md_;
  ThresholdState& s_;
  Accepted<Acc> out_;
  std::vector<Acc> mu_;        // the fixed centre of the GEMMs
  std::vector<int64_t> acc_;   // accepts of this call, in order
  std::vector<Acc> arows_;     // (A, d) their rows in the accumulation dtype
  std::vector<Acc> ac_;        // (A, d) centred
  std::vector<double> an_;     // norms of the centred accepts
  std::vector<int64_t> ver_;   // accepts applied to md[i]
  std::vector<int64_t> rows_;  // scratch: rows to refresh
  double kappa_;
  int64_t n_ = 0;
  int64_t blk_ = kLazyBlock;  // rows per block of the scan (adapted to the accept rate)
  int64_t fr_ = 0;            // rows below fr were brought up to date in a window this pass
  bool fresh_ = false;        // every unselected row is up to date
};

}  // namespace cpu
}  // namespace fastsel
