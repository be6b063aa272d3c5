#include "vec_avx512.h"
#define PRUNQ_ISA avx512
#include "csr_kernel.h"

namespace prunq::cpu {
void csr_linear_avx512(const CsrArgs& a) { avx512::csr_linear(a); }
}  // namespace prunq::cpu
