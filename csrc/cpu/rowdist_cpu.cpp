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

}  // namespace cpu
}  // namespace fastsel
