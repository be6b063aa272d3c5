#include "vec_avx2.h"
// The CPUs this path is for have AVX2 and not AVX-512. On one of them (AMD Zen 3), the gathers
// the compiler made of csr_dot's loads of x were 1.4x to 2.1x slower than scalar loads (1 to 3
// rows, fp32 values). GCC's attribute; other compilers ignore it.
#if defined(__GNUC__) && !defined(__clang__)
#define PRUNQ_CSR_DOT_ATTRIBUTES __attribute__((optimize("no-tree-vectorize")))
#endif
#define PRUNQ_ISA avx2
#include "csr_kernel.h"

namespace prunq::cpu {
void csr_linear_avx2(const CsrArgs& a) { avx2::csr_linear(a); }
}  // namespace prunq::cpu
