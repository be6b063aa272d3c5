// The CSR GEMM written once over the Vec of an instruction set. For a few rows of x, each row's dot
// products directly; from kPanelFromRows rows, the panel kernel (panel_kernel.h): rows of x
// transposed into K-major panels, each non-zero broadcast against its panel row, so a skipped
// weight costs nothing. Threads take ranges of output channels holding equal numbers of
// non-zeros. Included after an instruction set's vec header with PRUNQ_ISA naming its namespace.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "../common/parallel.h"
#include "csr.h"
#include "panel_kernel.h"

namespace prunq::cpu::PRUNQ_ISA {
namespace {

// The first channel of each of `parts` ranges holding about equal numbers of non-zeros.
std::vector<int64_t> balanced_starts(const int32_t* crow, int64_t n, int parts) {
  std::vector<int64_t> starts(size_t(parts) + 1, n);
  const int64_t nnz = crow[n];
  for (int p = 0; p < parts; ++p)
    starts[p] = std::lower_bound(crow, crow + n, int32_t(nnz * p / parts)) - crow;
  starts[0] = 0;
  return starts;
}

// For a few rows of x a panel would be mostly padding: each row's dot products are summed
// directly, four partial sums to hide the FMA latency.
constexpr int64_t kPanelFromRows = 4;

// An instruction set's file may define PRUNQ_CSR_DOT_ATTRIBUTES to keep the compiler from turning
// csr_dot's loads of x into vector gathers where they are slower than scalar loads.
#ifndef PRUNQ_CSR_DOT_ATTRIBUTES
#define PRUNQ_CSR_DOT_ATTRIBUTES
#endif

// The dot product of the non-zeros [begin, end) of a row of W with row, a row of x.
template <class V>
PRUNQ_CSR_DOT_ATTRIBUTES float csr_dot(const V* values, const int32_t* col, int32_t begin, int32_t end,
                                       const float* row) {
  float sums[4] = {0.f, 0.f, 0.f, 0.f};
  int32_t j = begin;
  for (; j + 4 <= end; j += 4)
    for (int u = 0; u < 4; ++u) sums[u] += to_float(values[j + u]) * row[col[j + u]];
  for (; j < end; ++j) sums[0] += to_float(values[j]) * row[col[j]];
  return (sums[0] + sums[1]) + (sums[2] + sums[3]);
}

template <class T, class V>
void csr_few_rows(const CsrArgs& a, const std::vector<int64_t>& starts, int parts) {
  const auto* x = static_cast<const T*>(a.x);
  const auto* values = static_cast<const V*>(a.values);
  parallel_for(parts, parts, 1, [&](int64_t p_begin, int64_t p_end) {
    std::vector<float> row(size_t(a.k));
    for (int64_t r = 0; r < a.m; ++r) {
      for (int64_t i = 0; i < a.k; ++i) row[i] = to_float(x[r * a.k + i]);
      for (int64_t n = starts[p_begin]; n < starts[p_end]; ++n) {
        const float dot = csr_dot(values, a.col, a.crow[n], a.crow[n + 1], row.data());
        static_cast<T*>(a.out)[r * a.n + n] =
            from_float<T>(dot * (a.w_scale ? a.w_scale[n] : 1.f) + (a.bias ? a.bias[n] : 0.f));
      }
    }
  });
}

// The non-zeros of each channel, for the panel kernel.
template <class V>
struct CsrRows {
  const int32_t* crow;
  const int32_t* cols;
  const V* values;
  struct Row {
    const int32_t* cols;
    const V* values;
    int64_t count;
    int64_t end(int64_t j, int64_t k_end) const {
      while (j < count && cols[j] < k_end) ++j;
      return j;
    }
    int64_t col(int64_t j) const { return cols[j]; }
    float value(int64_t j) const { return to_float(values[j]); }
    void prefetch(int64_t j, int64_t) const {
      __builtin_prefetch(cols + j);
      __builtin_prefetch(values + j);
    }
  };
  Row row(int64_t n) const { return {cols + crow[n], values + crow[n], int64_t(crow[n + 1]) - crow[n]}; }
};

template <class T, class V>
void csr_typed(const CsrArgs& a) {
  const auto* x = static_cast<const T*>(a.x);
  const auto* values = static_cast<const V*>(a.values);
  // At least ~64K multiply-adds of a 32-row tile per thread before splitting pays (a one-row
  // call over a 384 x 1536 weight at 90% sparsity splits; one over 384 x 384 does not).
  const int64_t work = std::max<int64_t>(1, int64_t(a.crow[a.n]) * 32);
  const int parts = int(std::max<int64_t>(1, std::min<int64_t>(a.num_threads, work >> 16)));
  const std::vector<int64_t> starts = balanced_starts(a.crow, a.n, parts);
  if (a.m < kPanelFromRows) return csr_few_rows<T, V>(a, starts, parts);
  panel_linear(x, a.k, a.m, a.k, a.k, CsrRows<V>{a.crow, a.col, values}, starts,
               double(a.crow[a.n]) / double(std::max<int64_t>(1, a.n * a.k)), a.w_scale, a.bias,
               static_cast<T*>(a.out), a.n);
}

template <class T>
void csr_values(const CsrArgs& a) {
  switch (a.value_type) {
    case Values::f32: return csr_typed<T, float>(a);
    case Values::bf16: return csr_typed<T, bf16>(a);
    case Values::f16: return csr_typed<T, f16>(a);
    case Values::i8: return csr_typed<T, int8_t>(a);
  }
}

}  // namespace

inline void csr_linear(const CsrArgs& a) {
  switch (a.dtype) {
    case DType::f32: return csr_values<float>(a);
    case DType::bf16: return csr_values<bf16>(a);
    case DType::f16: return csr_values<f16>(a);
  }
}

}  // namespace prunq::cpu::PRUNQ_ISA
