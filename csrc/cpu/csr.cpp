#include "csr.h"

#include "../common/cpu_features.h"
#include "vec_portable.h"

#define PRUNQ_ISA portable
#include "csr_kernel.h"

namespace prunq::cpu {

void csr_linear_portable(const CsrArgs& a) { portable::csr_linear(a); }

void csr_linear(const CsrArgs& a) {
#if PRUNQ_X86
  if (active_isa() == Isa::avx512) return csr_linear_avx512(a);
  if (active_isa() == Isa::avx2) return csr_linear_avx2(a);
#endif
  csr_linear_portable(a);
}

}  // namespace prunq::cpu
