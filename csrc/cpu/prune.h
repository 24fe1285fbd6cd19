// Exact pruning for multi-pick greedy: blocks of rows with a centre and radius bounds.
//
// After the first pick, a k-centre pass over a strided sample of the pool chooses centres until
// the clusters it finds are covered (sample_centres); when the sample shows cluster structure,
// every row is assigned to a centre, each cell sorted by distance to its centre and cut
// into blocks of consecutive rows (the centred copy of the pool is stored in that order). A block
// keeps its centre c (a row of the pool), and rmin <= |x_i - c| <= rmax over its rows, in
// float64. For a new pick p, the triangle inequality gives, for every row of the block,
//     |x_i - p| >= lb = max(|p - c| - rmax, rmin - |p - c|, 0),
// and per row |x_i - p| >= | |x_i - c| - |p - c| |. The kernel's computed squared distance
// (float32 or float64 difference form) is at least the exact one times (1 - eps), so when
// lb^2 (1 - eps) >= the block's largest min-distance, no row of the block can have its
// min-distance lowered by p: the pair is skipped without reading the rows. Every pair not
// skipped is settled exactly as before (GEMM bound, then the difference form), so the picks
// and the min-distance state stay bit-identical to the unpruned kernel.
#pragma once
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "cpu/multipick.h"
#include "cpu/rowdist.h"

namespace fastsel {
namespace cpu {

constexpr int64_t kBlockRows = 512;   // rows per block (a cell larger than this is cut by distance to its centre)
constexpr int64_t kDirectPicks = 2;   // a block with at most this many picks to settle: the difference form, no GEMM
constexpr int64_t kGroupRows = 4096;  // blocks sharing one GEMM: up to this many rows (the threads' unit of work)

struct Blocks {
  int64_t K = 0;                  // number of blocks
  std::vector<int64_t> begin;     // K + 1 offsets into perm
  std::vector<int32_t> cell;      // block -> index of its centre
  std::vector<double> rmin, rmax; // smallest / largest computed |x_i - c| over the block's rows
  std::vector<int64_t> perm;      // rows in block order
  std::vector<double> rd;         // computed |x_perm[j] - c|, by position
  std::vector<int32_t> bpos;      // block of each position
  std::vector<int64_t> ipos;      // position of each row
  int64_t U = 0;                  // number of centres
  std::vector<int64_t> ucen;      // centre rows (selected rows)
  double eps = 0;                 // |computed d^2 - exact d^2| <= eps * exact d^2 (kernel's difference form)
  bool built() const { return K > 0; }
};

// Distances from pool row p to every centre, as the kernel computes them (difference form).
template <typename T, typename Acc>
void pick_to_centres(const Blocks& B, const std::vector<Acc>& cenA, const T* x, int64_t d, int64_t p, double* out) {
  for (int64_t k = 0; k < B.U; ++k) out[k] = std::sqrt(static_cast<double>(row_d2_dispatch(x + p * d, cenA.data() + k * d, d)));
}

// Centres for the blocks, chosen before any pool update: a k-centre (farthest-point) pass over
// a strided sample of the pool, from the first pick, grown until the clusters it finds are all
// covered -- the count follows the data, not a constant. In high dimension a pool of C
// well-separated clusters keeps its covering radius near the clusters' spacing until every
// cluster holds a centre (k = C), then it drops to the clusters' own radius and stops falling:
// that is where the pass ends. At 64, 128, 256, ... centres it ends early when the sample shows no
// clusters: fewer than S / 64 rows (besides the centres) lie within a quarter of the first
// covering radius of a centre (i.i.d. Gaussian rows: none; far more clusters than the sample can
// show: about none), or the share they cover puts the cluster count past 1.5 Kmax -- then the
// blocks would not pay for themselves, and the pass costs what 64 centres cost. Kmax bounds the
// pass (S rows, Kmax centres: S Kmax d multiply-adds).
// ratio = the median sample row's distance to its nearest centre over the largest distance from
// the first centre: small when most rows sit in tight clusters (blocks will prune), near 1 when
// they do not. covered = whether the covering radius fell below a quarter of the first (every
// cluster the sample shows has a centre).
template <typename T, typename Acc>
std::vector<int64_t> sample_centres(const T* x, int64_t N, int64_t d, int64_t first, int64_t Kmax, double* ratio,
                                    bool* covered) {
  const int64_t S = std::min<int64_t>(N, std::max<int64_t>(2048, 4 * Kmax));
  std::vector<int64_t> rows(S);
  for (int64_t j = 0; j < S; ++j) rows[j] = j * N / S;
  std::vector<Acc> md(S, std::numeric_limits<Acc>::infinity());
  std::vector<int64_t> cen;
  std::vector<Acc> buf;
  int64_t cur = first;
  double r1 = 0, tight_d2 = 0;  // the first squared covering radius; a quarter of its distance, squared
  std::vector<double> rad;       // squared covering radius after each centre
  *covered = false;
  for (int64_t k = 0; k < Kmax; ++k) {
    cen.push_back(cur);
    const Acc* c = centre<T, Acc>(x + cur * d, d, buf);
    at::parallel_for(0, S, 512, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        Acc v = row_d2_dispatch(x + rows[j] * d, c, d);
        if (v < md[j]) md[j] = v;
      }
    });
    int64_t best = -1;
    Acc bv = Acc(-1);
    for (int64_t j = 0; j < S; ++j)
      if (md[j] > bv) {
        bv = md[j];
        best = j;
      }
    if (k == 0) {
      r1 = static_cast<double>(bv);
      tight_d2 = 0.0625 * r1;
    }
    if (!(bv > Acc(0))) {  // the sample is covered (duplicates)
      *covered = true;
      break;
    }
    rad.push_back(static_cast<double>(bv));
    // clusters found (covering radius under a quarter of the first) and the last 8 centres shrank
    // it by under 10 %: more centres would only split clusters whose rows are all alike
    if (k >= 16 && rad[k] < tight_d2 && rad[k] > 0.81 * rad[k - 8]) break;
    const int64_t kk = k + 1;
    if (kk >= 64 && (kk & (kk - 1)) == 0) {  // 64, 128, 256, ... centres: any clusters at all?
      int64_t tight = 0;
      for (int64_t j = 0; j < S; ++j) tight += md[j] > Acc(0) && static_cast<double>(md[j]) <= tight_d2;
      if (64 * tight < S) break;
      // kk centres cover about kk / C of the sample when the pool holds C clusters: when that
      // estimate of C is far past Kmax, the clusters will not all be covered -- stop here
      if (2 * kk * S > 3 * Kmax * (tight + kk)) break;
    }
    cur = rows[best];
  }
  // Clusters whose own radius is over a quarter of their spacing (blobs of spread 0.3-0.5 around
  // N(0, 1) centres in 1,024 dimensions: torch-quickfps's sets grid) never pass the quarter test
  // above, yet blocks on them prune 7 of 8 pairs: the pass ended with the covering radius under
  // half the first, so the sample's clusters hold a centre each -- covered too. (Without this,
  // such pools ran unpruned: 4-5x slower on that grid; bench check's "sets quickfps grid".)
  if (!rad.empty() && (rad.back() < tight_d2 || rad.back() < 0.25 * r1)) *covered = true;
  std::nth_element(md.begin(), md.begin() + S / 2, md.end());
  const double med = static_cast<double>(md[S / 2]);  // the median sample row's distance to its centre
  *ratio = r1 > 0 ? std::sqrt(std::max(med, 0.0) / r1) : 1.0;
  // Centre k was rad[k - 1] (squared) from the centres before it. One within twice the final
  // covering radius of them splits a cluster already found (in high dimension a blob's rows are
  // all about equally far apart, so k-centre keeps splitting blobs): it is dropped, and its rows
  // join their cluster's cell, whose new picks a candidate meets by one product (greedy_cpu.cpp).
  if (rad.size() == cen.size()) {
    const double fin = rad.back();
    std::vector<int64_t> kept{cen[0]};
    for (size_t k = 1; k < cen.size(); ++k)
      if (rad[k - 1] > 4 * fin) kept.push_back(cen[k]);
    cen.swap(kept);
  }
  return cen;
}

// Each row's nearest centre, by a GEMM on the rows as stored (float32, float64 for float64
// data): any assignment is valid -- the radii below are computed for the one made -- so its
// rounding only affects how well the blocks prune. |x - c|^2 = |x - m|^2 + |c - m|^2
// + 2 m.(c - m) - 2 x.(c - m), with m the centres' mean; the first term is the row's own.
// (Tried: two levels -- rows to the nearest of sqrt(K) top centres, then to the nearest centre of
// that top centre's group -- cost N 2 sqrt(K) d instead of N K d, but in high dimension a row's
// nearest top centre is often not its cluster centre's, and the strays left blocks that did not
// prune: pairs examined 8 % -> 31 % on 1,024 clusters.)
inline std::vector<int32_t> assign_rows(const at::Tensor& xt, const std::vector<int64_t>& cen) {
  const int64_t N = xt.size(0), K = static_cast<int64_t>(cen.size());
  const auto acc = xt.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  std::vector<int64_t> cv(cen);
  at::Tensor cc = xt.index_select(0, at::from_blob(cv.data(), {K}, at::kLong).clone()).to(acc);  // (K, d)
  at::Tensor m = cc.mean(0);
  at::Tensor cm = cc - m;
  at::Tensor k0 = (cm * cm).sum(1) + 2 * (cm * m).sum(1);
  at::Tensor cmt = cm.t().contiguous();
  std::vector<int32_t> out(N);
  for (int64_t r0 = 0; r0 < N; r0 += kRowBlock) {
    const int64_t rb = std::min(kRowBlock, N - r0);
    at::Tensor a = (k0.unsqueeze(0) - 2 * at::mm(xt.narrow(0, r0, rb).to(acc), cmt)).argmin(1).to(at::kInt).contiguous();
    std::copy(a.data_ptr<int32_t>(), a.data_ptr<int32_t>() + rb, out.begin() + r0);
  }
  return out;
}

// Group rows into blocks: cell by cell (cellof[i] indexes cen), each cell sorted by distance to
// its centre and cut into blocks of kBlockRows; cenA receives the centres in the accumulation
// dtype (exact copies of pool rows).
template <typename T, typename Acc>
Blocks build_blocks(const T* x, int64_t N, int64_t d, const std::vector<int32_t>& cellof,
                    const std::vector<int64_t>& cen, double u, std::vector<Acc>& cenA) {
  Blocks B;
  B.eps = gemm_kappa(d, u);  // the difference form's relative bound (the same constant)
  B.ucen = cen;
  B.U = static_cast<int64_t>(cen.size());
  cenA.resize(B.U * d);
  for (int64_t k = 0; k < B.U; ++k)
    for (int64_t j = 0; j < d; ++j) cenA[k * d + j] = static_cast<Acc>(x[B.ucen[k] * d + j]);
  std::vector<double> rdr(N);
  at::parallel_for(0, N, 256, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      rdr[i] = std::sqrt(static_cast<double>(row_d2_dispatch(x + i * d, cenA.data() + cellof[i] * d, d)));
  });
  B.perm.resize(N);
  std::iota(B.perm.begin(), B.perm.end(), int64_t(0));
  std::sort(B.perm.begin(), B.perm.end(), [&](int64_t a, int64_t b) {
    return cellof[a] < cellof[b] || (cellof[a] == cellof[b] && (rdr[a] < rdr[b] || (rdr[a] == rdr[b] && a < b)));
  });
  B.rd.resize(N);
  B.ipos.resize(N);
  B.bpos.resize(N);
  for (int64_t j = 0; j < N; ++j) {
    B.rd[j] = rdr[B.perm[j]];
    B.ipos[B.perm[j]] = j;
  }
  B.begin.push_back(0);
  for (int64_t j = 0; j < N;) {
    const int32_t c = cellof[B.perm[j]];
    int64_t e = j;
    while (e < N && cellof[B.perm[e]] == c) ++e;
    for (int64_t b = j; b < e; b += kBlockRows) {
      const int64_t be = std::min(e, b + kBlockRows);
      for (int64_t q = b; q < be; ++q) B.bpos[q] = static_cast<int32_t>(B.cell.size());
      B.begin.push_back(be);
      B.cell.push_back(c);
      B.rmin.push_back(B.rd[b]);
      B.rmax.push_back(B.rd[be - 1]);
    }
    j = e;
  }
  B.K = static_cast<int64_t>(B.cell.size());
  return B;
}

// The centred copy for the blocks' GEMMs, in block order: row j (pool row perm[j]) centred on
// its cell's centre, not on the pool mean, so the GEMM's error bound (kappa (|c_i| + |c_p|)^2)
// scales with the cell's radius instead of the pool's: in tight clusters almost no pair needs
// the difference form. A pick is centred on the same centre when a block meets it (update_pruned).
template <typename T, typename Acc>
Centred cell_centred_rows(const T* x, int64_t d, const Blocks& B, const std::vector<Acc>& cenA,
                          CentredStore* store = nullptr) {
  const int64_t N = static_cast<int64_t>(B.perm.size());
  const auto acc = std::is_same_v<Acc, double> ? at::kDouble : at::kFloat;
  at::Tensor xc = reuse(store ? &store->xc : nullptr, N, d, acc);
  at::Tensor cn = reuse(store ? &store->cn : nullptr, N, 1, at::kDouble).view({N});
  Acc* xp = xc.data_ptr<Acc>();
  double* cp = cn.data_ptr<double>();
  at::parallel_for(0, N, 256, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      cp[r] = centre_row<T, Acc>(x + B.perm[r] * d, cenA.data() + B.cell[B.bpos[r]] * d, d, xp + r * d);
  });
  return {xc, cn, at::Tensor(), std::is_same_v<Acc, double> ? 0x1p-53 : 0x1p-24};
}

// Computed distances r (row to centre) and q (pick to centre) are within a relative rel of the
// exact ones (|v - D^2| <= eps D^2 puts sqrt(v) within a relative 2 eps of D).
// Can a pick at computed distance q from block k's centre lower a min-distance <= m there?
inline bool block_may_change(const Blocks& B, int64_t k, double q, double m) {
  const double rel = 2 * B.eps;
  double lb = std::max(q * (1 - rel) - B.rmax[k] * (1 + rel), B.rmin[k] * (1 - rel) - q * (1 + rel));
  return !(lb > 0 && lb * lb * (1 - B.eps) >= m);
}

// ... and the row at position j, whose min-distance is m?
inline bool row_may_change(const Blocks& B, int64_t j, double q, double m) {
  const double r = B.rd[j];
  double lb = std::abs(r - q) - 2 * B.eps * (r + q);
  return !(lb > 0 && lb * lb * (1 - B.eps) >= m);
}

// Lower md[i] to min(md[i], d2(x_i, x_p)) over the picks P, pruned by the blocks. getC gives
// the cell-centred copy in block order (cell_centred_rows); dpc is (P, U): computed distances
// from each pick to each centre; cenA the centres. A block with few picks left by the bounds is
// settled in the difference form, one with more by a GEMM against its picks centred on its
// cell's centre, certified per pair (settle_row). Returns the pairs examined.
// Longer than ~80 lines on purpose: the per-block choice (skip / difference form / GEMM) shares the
// block's surviving picks and their centred copies, built once per block.
template <typename T, typename Acc>
int64_t update_pruned(const std::function<const Centred&()>& getC, const Blocks& B, const std::vector<Acc>& cenA,
                      const T* x, int64_t N, int64_t d, Acc* md, const std::vector<int64_t>& P,
                      const std::vector<double>& dpc) {
  const int64_t np = static_cast<int64_t>(P.size());
  if (np == 0) return 0;
  const int64_t U = B.U;
  // 1. per block: its largest min-distance and the picks that may lower one of them
  std::vector<std::vector<int32_t>> S(B.K);
  std::vector<int64_t> pairs_k(B.K, 0);
  at::parallel_for(0, B.K, 16, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t b = B.begin[k], e = B.begin[k + 1];
      Acc M = Acc(-1);
      for (int64_t j = b; j < e; ++j) M = std::max(M, md[B.perm[j]]);
      if (M < Acc(0)) continue;
      const int32_t c = B.cell[k];
      for (int64_t a = 0; a < np; ++a)
        if (block_may_change(B, k, dpc[a * U + c], static_cast<double>(M))) S[k].push_back(static_cast<int32_t>(a));
      pairs_k[k] = (e - b) * static_cast<int64_t>(S[k].size());
    }
  });
  const int64_t pairs = std::accumulate(pairs_k.begin(), pairs_k.end(), int64_t(0));
  std::vector<std::vector<Acc>> pbuf(np);
  std::vector<const Acc*> pexact(np);
  for (int64_t a = 0; a < np; ++a) pexact[a] = centre<T, Acc>(x + P[a] * d, d, pbuf[a]);
  if (2 * pairs > N * np && np <= 4) {  // most pairs left, few picks: the one-pick streaming kernel
    for (int64_t a = 0; a < np; ++a)
      update_all<T, Acc>(x, N, d, pexact[a], md, std::numeric_limits<double>::infinity(), N);
    return N * np;
  }
  // 2. the blocks' updates against their picks; the centred copy (for the GEMM) is built only
  // when a block has many picks to settle. Consecutive blocks of one cell with the same picks
  // (rows stored contiguously) share one GEMM.
  std::vector<int64_t> grp{0};  // groups of blocks: [grp[g], grp[g + 1])
  bool gemm = false;
  for (int64_t k = 0; k < B.K; ++k) {
    gemm = gemm || static_cast<int64_t>(S[k].size()) > kDirectPicks;
    if (k + 1 == B.K || B.cell[k + 1] != B.cell[k] || S[k + 1] != S[k] ||
        static_cast<int64_t>(S[k].size()) <= kDirectPicks || B.begin[k + 1] - B.begin[grp.back()] >= kGroupRows)
      grp.push_back(k + 1);
  }
  const Centred* Cp = gemm ? &getC() : nullptr;
  const double* cnp = gemm ? Cp->cn.data_ptr<double>() : nullptr;
  const double kappa = gemm ? gemm_kappa(d, Cp->u) : 0.0;  // settle_row's bound
  const auto adt = std::is_same_v<Acc, double> ? at::kDouble : at::kFloat;
  const int64_t ng = static_cast<int64_t>(grp.size()) - 1;
  at::parallel_for(0, ng, 1, [&](int64_t g0, int64_t g1) {
    std::vector<double> lo, pn;
    at::Tensor pkeep, gkeep;  // the chunk's pick and GEMM buffers, reused group after group
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t k = grp[g];
      const std::vector<int32_t>& Sk = S[k];
      const int64_t ns = static_cast<int64_t>(Sk.size());
      if (ns == 0) continue;
      const int64_t b = B.begin[k], e = B.begin[grp[g + 1]];
      const int32_t c = B.cell[k];
      if (ns <= kDirectPicks) {  // few picks: the difference form directly, pruned row by row
        for (int64_t j = b; j < e; ++j) {
          const int64_t i = B.perm[j];
          Acc cur = md[i];
          if (cur < Acc(0)) continue;
          for (int32_t a : Sk) {
            if (!row_may_change(B, j, dpc[a * U + c], static_cast<double>(cur))) continue;
            Acc v = row_d2_dispatch(x + i * d, pexact[a], d);
            if (v < cur) cur = v;
          }
          md[i] = cur;
        }
        continue;
      }
      // more picks: one GEMM of the group's rows against them, all centred on the cell's centre
      at::Tensor pc = reuse(&pkeep, ns, d, adt);
      Acc* pp = pc.data_ptr<Acc>();
      pn.resize(ns);
      for (int64_t s = 0; s < ns; ++s) pn[s] = centre_row<T, Acc>(x + P[Sk[s]] * d, cenA.data() + c * d, d, pp + s * d);
      at::Tensor G = reuse(&gkeep, e - b, ns, adt);
      if (ns <= kSkinnyPicks)
        skinny_dots(Cp->xc.data_ptr<Acc>() + b * d, d, e - b, pp, ns, d, G.data_ptr<Acc>());
      else
        at::mm_out(G, Cp->xc.narrow(0, b, e - b), pc.t());  // (rows, ns)
      const Acc* gp = G.data_ptr<Acc>();
      lo.resize(ns);
      for (int64_t j = b; j < e; ++j) {
        const int64_t i = B.perm[j];
        Acc cur = md[i];
        if (cur < Acc(0)) continue;
        const Acc* gr = gp + (j - b) * ns;
        md[i] = settle_row<T, Acc>(x + i * d, d, cur, cnp[j], ns, [&](int64_t s) { return gr[s]; },
                                   [&](int64_t s) { return pn[s]; }, [&](int64_t s) { return pexact[Sk[s]]; },
                                   kappa, lo.data());
      }
    }
  });
  return pairs;
}

}  // namespace cpu
}  // namespace fastsel
