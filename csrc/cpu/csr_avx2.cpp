#include "vec_avx2.h"
#define PRUNQ_ISA avx2
#include "csr_kernel.h"

namespace prunq::cpu {
void csr_linear_avx2(const CsrArgs& a) { avx2::csr_linear(a); }
}  // namespace prunq::cpu
