// The CSR GEMM written once over the Vec of an instruction set: rows of x in tiles of
// kTileRows = 2 * Vec::width, each tile transposed into a K-major panel (panel[k] holds x[rows, k]),
// and for each output channel every non-zero weight broadcast against its panel row: two FMAs
// per non-zero cover the whole tile, and a skipped weight costs nothing. Threads take ranges of
// output channels holding equal numbers of non-zeros. Included after an instruction set's vec
// header with PRUNQ_ISA naming its namespace.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "../common/parallel.h"
#include "csr.h"
#include "padded_rows.h"

namespace prunq::cpu::PRUNQ_ISA {
namespace {

constexpr int kTileRows = 2 * Vec::width;

// panel[kk * kTileRows + i] = x[r0 + i, kk] as fp32, zero for rows past `rows`.
template <class T>
void transpose_tile(const T* x, int64_t k, int64_t r0, int rows, float* panel) {
  for (int64_t kk = 0; kk < k; ++kk) {
    float* dst = panel + kk * kTileRows;
    for (int i = 0; i < rows; ++i) dst[i] = to_float(x[(r0 + i) * k + kk]);
    for (int i = rows; i < kTileRows; ++i) dst[i] = 0.f;
  }
}

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

template <class T, class V>
void csr_few_rows(const CsrArgs& a, const std::vector<int64_t>& starts, int parts) {
  const auto* x = static_cast<const T*>(a.x);
  const auto* values = static_cast<const V*>(a.values);
  parallel_for(parts, parts, 1, [&](int64_t p_begin, int64_t p_end) {
    std::vector<float> row(size_t(a.k));
    for (int64_t r = 0; r < a.m; ++r) {
      for (int64_t i = 0; i < a.k; ++i) row[i] = to_float(x[r * a.k + i]);
      for (int64_t n = starts[p_begin]; n < starts[p_end]; ++n) {
        float sums[4] = {0.f, 0.f, 0.f, 0.f};
        int32_t j = a.crow[n];
        for (; j + 4 <= a.crow[n + 1]; j += 4)
          for (int u = 0; u < 4; ++u) sums[u] += to_float(values[j + u]) * row[a.col[j + u]];
        for (; j < a.crow[n + 1]; ++j) sums[0] += to_float(values[j]) * row[a.col[j]];
        const float dot = (sums[0] + sums[1]) + (sums[2] + sums[3]);
        static_cast<T*>(a.out)[r * a.n + n] =
            from_float<T>(dot * (a.w_scale ? a.w_scale[n] : 1.f) + (a.bias ? a.bias[n] : 0.f));
      }
    }
  });
}

template <class T, class V>
void csr_typed(const CsrArgs& a) {
  const auto* x = static_cast<const T*>(a.x);
  const auto* values = static_cast<const V*>(a.values);
  // At least ~64K multiply-adds of the tile per thread before splitting pays.
  const int64_t work = std::max<int64_t>(1, int64_t(a.crow[a.n]) * kTileRows);
  const int parts = int(std::max<int64_t>(1, std::min<int64_t>(a.num_threads, work >> 16)));
  const std::vector<int64_t> starts = balanced_starts(a.crow, a.n, parts);
  if (a.m < kPanelFromRows) return csr_few_rows<T, V>(a, starts, parts);
  parallel_for(parts, parts, 1, [&](int64_t p_begin, int64_t p_end) {
    AlignedRows<float> panel(
        static_cast<float*>(std::aligned_alloc(64, std::max<size_t>(64, (size_t(a.k) * kTileRows * 4 + 63) / 64 * 64))));
    alignas(64) float tile[kTileRows];
    for (int64_t part = p_begin; part < p_end; ++part) {
      for (int64_t r0 = 0; r0 < a.m; r0 += kTileRows) {
        const int rows = int(std::min<int64_t>(kTileRows, a.m - r0));
        transpose_tile(x, a.k, r0, rows, panel.get());
        for (int64_t n = starts[part]; n < starts[part + 1]; ++n) {
          Vec acc0 = Vec::zero(), acc1 = Vec::zero();
          for (int32_t j = a.crow[n]; j < a.crow[n + 1]; ++j) {
            const Vec w = Vec::splat(to_float(values[j]));
            const float* xs = panel.get() + int64_t(a.col[j]) * kTileRows;
            acc0 = fma(w, Vec::load(xs), acc0);
            acc1 = fma(w, Vec::load(xs + Vec::width), acc1);
          }
          acc0.store(tile);
          acc1.store(tile + Vec::width);
          const float scale = a.w_scale ? a.w_scale[n] : 1.f, bias = a.bias ? a.bias[n] : 0.f;
          for (int i = 0; i < rows; ++i) static_cast<T*>(a.out)[(r0 + i) * a.n + n] = from_float<T>(tile[i] * scale + bias);
        }
      }
    }
  });
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
