// The runtime-dispatched clones of the row-distance block kernel (rowdist.h).
#include "cpu/rowdist.h"

namespace fastsel {
namespace cpu {

#define FASTSEL_DEFINE_BLOCK(T, Acc)                                                                            \
  FASTSEL_CLONES BlockResult<Acc> update_block(const T* x, int64_t d, const Acc* c, Acc* md, int64_t begin,      \
                                               int64_t end, double thr, int64_t from) {                          \
    return update_block_impl<T, Acc>(x, d, c, md, begin, end, thr, from);                                        \
  }                                                                                                              \
  FASTSEL_CLONES Acc row_d2_dispatch(const T* a, const Acc* c, int64_t d) { return row_d2<T, Acc>(a, c, d); }
FASTSEL_DEFINE_BLOCK(float, float)
FASTSEL_DEFINE_BLOCK(double, double)
FASTSEL_DEFINE_BLOCK(c10::Half, float)
FASTSEL_DEFINE_BLOCK(c10::BFloat16, float)
#undef FASTSEL_DEFINE_BLOCK

#define FASTSEL_DEFINE_LOWD(Acc)                                                                                \
  FASTSEL_CLONES void lowd_picks(const Acc* col, int64_t Np, int64_t d, Acc* md, int64_t n, int64_t first,      \
                                 int64_t* idx, Acc* d2) {                                                        \
    switch (d) {                                                                                                 \
      case 1: return lowd_picks_impl<1, Acc>(col, Np, md, n, first, idx, d2);                                    \
      case 2: return lowd_picks_impl<2, Acc>(col, Np, md, n, first, idx, d2);                                    \
      case 3: return lowd_picks_impl<3, Acc>(col, Np, md, n, first, idx, d2);                                    \
      case 4: return lowd_picks_impl<4, Acc>(col, Np, md, n, first, idx, d2);                                    \
      case 5: return lowd_picks_impl<5, Acc>(col, Np, md, n, first, idx, d2);                                    \
      case 6: return lowd_picks_impl<6, Acc>(col, Np, md, n, first, idx, d2);                                    \
      case 7: return lowd_picks_impl<7, Acc>(col, Np, md, n, first, idx, d2);                                    \
      case 8: return lowd_picks_impl<8, Acc>(col, Np, md, n, first, idx, d2);                                    \
      default: TORCH_CHECK(false, "lowd_picks: d must be in 1..8, got ", d);                                    \
    }                                                                                                            \
  }
FASTSEL_DEFINE_LOWD(float)
FASTSEL_DEFINE_LOWD(double)
#undef FASTSEL_DEFINE_LOWD

}  // namespace cpu
}  // namespace fastsel
