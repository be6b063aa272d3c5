#include "csr.h"

#include "../common/cpu_features.h"
#include "vec_portable.h"

#define PRUNQ_ISA portable
#include "csr_kernel.h"

namespace prunq::cpu {

void csr_linear_portable(const CsrArgs& a) { portable::csr_linear(a); }

bool csr_valid(const int32_t* crow, int64_t n, const int32_t* col, int64_t count, int64_t k) {
  if (crow[0] != 0 || crow[n] != count) return false;
  for (int64_t r = 0; r < n; ++r) {
    if (crow[r + 1] < crow[r] || crow[r + 1] > count) return false;
    int64_t previous = -1;
    for (int32_t j = crow[r]; j < crow[r + 1]; ++j) {
      if (col[j] <= previous || col[j] >= k) return false;
      previous = col[j];
    }
  }
  return true;
}

void csr_linear(const CsrArgs& a) {
#if PRUNQ_X86
  if (active_isa() == Isa::avx512) return csr_linear_avx512(a);
  if (active_isa() == Isa::avx2) return csr_linear_avx2(a);
#endif
  csr_linear_portable(a);
}

}  // namespace prunq::cpu
