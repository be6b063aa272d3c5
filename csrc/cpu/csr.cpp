#include "csr.h"

#include <algorithm>

#include "../common/cpu_features.h"
#include "vec_portable.h"

#define PRUNQ_ISA portable
#include "csr_kernel.h"

namespace prunq::cpu {

void csr_linear_portable(const CsrArgs& a) { portable::csr_linear(a); }

bool csr_valid(const int32_t* crow, int64_t n, const int32_t* col, int64_t count, int64_t k) {
  if (crow[0] != 0 || crow[n] != count) return false;
  for (int64_t r = 0; r < n; ++r)
    if (crow[r + 1] < crow[r] || crow[r + 1] > count) return false;
  // Branch-free passes over all columns, which the compiler vectorises (the check runs on every op
  // call): none out of range (a negative column is a large unsigned one), and every place where a
  // column does not exceed the one before is the first of a row.
  const uint32_t limit = uint32_t(std::min<int64_t>(k, int64_t(1) << 31));
  int32_t out_of_range = 0;
  for (int64_t j = 0; j < count; ++j) out_of_range |= int32_t(uint32_t(col[j]) >= limit);
  int64_t descents = 0, row_starts = 0;
  for (int64_t j = 1; j < count; ++j) descents += col[j] <= col[j - 1];
  for (int64_t r = 0; r < n; ++r)
    if (crow[r] > 0 && crow[r] < crow[r + 1]) row_starts += col[crow[r]] <= col[crow[r] - 1];
  return !out_of_range && descents == row_starts;
}

void csr_linear(const CsrArgs& a) {
#if PRUNQ_X86
  if (active_isa() == Isa::avx512) return csr_linear_avx512(a);
  if (active_isa() == Isa::avx2) return csr_linear_avx2(a);
#endif
  csr_linear_portable(a);
}

}  // namespace prunq::cpu
