// The INT8 GEMM family written once: per-token quantization against the Vec interface, and the
// GEMM drivers (tiling, threads, epilogue) around a per-instruction-set `Dot` class that computes
// 4 x 4 tiles of dot products along K:
//   Dot::int8<MR>(x_rows[4], w_rows[4], k, int32_t acc[4][4])
//   Dot::wo<MR>(x_rows[4], w_rows[4], k, float acc[4][4])     (x_rows of type T)
// where rows [0, MR) of x are computed (MR <= 4: a tile at the bottom edge, or M < 4, computes only
// the rows it has).
// Included by each instruction-set translation unit after its vec header and its Dot, with
// PRUNQ_ISA naming that namespace (see layernorm_kernel.h for why).
#include <algorithm>
#include <cmath>
#include <vector>

#include "../common/parallel.h"
#include "int8_gemm.h"
#include "padded_rows.h"

namespace prunq::cpu::PRUNQ_ISA {

namespace {

constexpr int kTile = 4;
// Rows of x kept hot in L2 while tiles of w stream past them.
constexpr int64_t kRowPanelBytes = 256 << 10;

// x[i, i + n) as fp32, times channel_scale[i, i + n) when there is one (n <= Vec::width).
template <class T>
inline Vec load_scaled(const T* x, const float* channel_scale, int64_t i, int n) {
  const Vec v = n == Vec::width ? Vec::load(x + i) : Vec::load(x + i, n);
  if (!channel_scale) return v;
  return v * (n == Vec::width ? Vec::load(channel_scale + i) : Vec::load(channel_scale + i, n));
}

template <class T>
void quantize_rows(const QuantizeArgs& a) {
  const auto* x = static_cast<const T*>(a.x);
  const int64_t k = a.cols;
  parallel_for(a.rows, a.num_threads, 1 + (int64_t(1) << 14) / std::max<int64_t>(k, 1),
               [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const T* xr = x + row * k;
      int8_t* qr = a.q + row * k;
      Vec peak = Vec::zero();
      for (int64_t i = 0; i < k; i += Vec::width) {
        const int n = int(std::min<int64_t>(Vec::width, k - i));
        peak = max(peak, abs(load_scaled(xr, a.channel_scale, i, n)));
      }
      const float absmax = peak.hmax();
      a.scale[row] = absmax / 127.f;
      if (!std::isfinite(absmax)) {  // inf or NaN in the row: q = 0, and the scale carries it on
        std::fill(qr, qr + k, int8_t(0));
        continue;
      }
      const Vec inv = Vec::splat(absmax > 0.f ? 127.f / absmax : 0.f);
      for (int64_t i = 0; i < k; i += Vec::width) {
        const int n = int(std::min<int64_t>(Vec::width, k - i));
        (load_scaled(xr, a.channel_scale, i, n) * inv).store_int8(qr + i, n);
      }
    }
  });
}

template <class T> inline void store_out(void* out, int64_t i, float v) {
  static_cast<T*>(out)[i] = from_float<T>(v);
}

// Calls tile(m0, n0, rows, cols) over 4 x 4 tiles: threads split N; each thread walks panels of
// rows of x (small enough to stay in L2) and, inside a panel, its tiles of w.
template <class F>
void for_each_tile(int64_t m, int64_t n, int64_t row_bytes, int num_threads, F&& tile) {
  const int64_t n_tiles = (n + kTile - 1) / kTile;
  const int64_t panel = std::max<int64_t>(kTile, kRowPanelBytes / std::max<int64_t>(row_bytes, 1) / kTile * kTile);
  // At least ~64 K-long dot products per thread before splitting pays.
  const int64_t min_tiles = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, m * row_bytes));
  parallel_for(n_tiles, num_threads, min_tiles, [&](int64_t t_begin, int64_t t_end) {
    for (int64_t m0 = 0; m0 < m; m0 += panel) {
      const int64_t m1 = std::min(m, m0 + panel);
      for (int64_t t = t_begin; t < t_end; ++t) {
        const int64_t n0 = t * kTile;
        const int cols = int(std::min<int64_t>(kTile, n - n0));
        for (int64_t r = m0; r < m1; r += kTile) tile(r, n0, int(std::min<int64_t>(kTile, m1 - r)), cols);
      }
    }
  });
}

// Row pointers of a tile; missing rows repeat the first (computed, never stored).
template <class T> inline void tile_rows(const T* base, int64_t first, int count, int64_t stride, const T* rows[kTile]) {
  for (int i = 0; i < kTile; ++i) rows[i] = base + (first + (i < count ? i : 0)) * stride;
}

template <class O>
void int8_gemm_typed(const Int8GemmArgs& a) {
  std::vector<int32_t> row_sums;  // sum_k x[m, k], for a Dot whose products carry 128 * that
  if constexpr (Dot::kBiasedW) {
    row_sums.resize(a.m);
    parallel_for(a.m, a.num_threads, 1 + (int64_t(1) << 16) / std::max<int64_t>(a.k, 1), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        int32_t s = 0;
        for (int64_t i = 0; i < a.k; ++i) s += a.x[r * a.k + i];
        row_sums[r] = s;
      }
    });
  }
  for_each_tile(a.m, a.n, a.k, a.num_threads, [&](int64_t m0, int64_t n0, int rows, int cols) {
    const int8_t* xr[kTile];
    const int8_t* wr[kTile];
    tile_rows(a.x, m0, rows, a.k, xr);
    tile_rows(a.w, n0, cols, a.k, wr);
    int32_t acc[kTile][kTile];
    with_rows<kTile>(rows, [&](auto mr) { Dot::template int8<mr>(xr, wr, a.k, acc); });
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j) {
        const int32_t dot = Dot::kBiasedW ? acc[i][j] - 128 * row_sums[m0 + i] : acc[i][j];
        const float y = float(dot) * a.x_scale[m0 + i] * a.w_scale[n0 + j] + (a.bias ? a.bias[n0 + j] : 0.f);
        store_out<O>(a.out, (m0 + i) * a.n + n0 + j, activate(y, a.activation));
      }
  });
}

template <class T>
void weight_only_typed(const WeightOnlyArgs& a) {
  const auto* x = static_cast<const T*>(a.x);
  for_each_tile(a.m, a.n, a.k * int64_t(sizeof(T)), a.num_threads, [&](int64_t m0, int64_t n0, int rows, int cols) {
    const T* xr[kTile];
    const int8_t* wr[kTile];
    tile_rows(x, m0, rows, a.k, xr);
    tile_rows(a.w, n0, cols, a.k, wr);
    float acc[kTile][kTile];
    with_rows<kTile>(rows, [&](auto mr) { Dot::template wo<mr>(xr, wr, a.k, acc); });
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j)
        store_out<T>(a.out, (m0 + i) * a.n + n0 + j,
                     acc[i][j] * a.w_scale[n0 + j] + (a.bias ? a.bias[n0 + j] : 0.f));
  });
}

}  // namespace

inline void quantize_per_token(const QuantizeArgs& a) {
  switch (a.dtype) {
    case DType::f32: return quantize_rows<float>(a);
    case DType::bf16: return quantize_rows<bf16>(a);
    case DType::f16: return quantize_rows<f16>(a);
  }
}

inline void int8_gemm(const Int8GemmArgs& a) {
  switch (a.out_dtype) {
    case DType::f32: return int8_gemm_typed<float>(a);
    case DType::bf16: return int8_gemm_typed<bf16>(a);
    case DType::f16: return int8_gemm_typed<f16>(a);
  }
}

inline void int8_weight_only_gemm(const WeightOnlyArgs& a) {
  switch (a.dtype) {
    case DType::f32: return weight_only_typed<float>(a);
    case DType::bf16: return weight_only_typed<bf16>(a);
    case DType::f16: return weight_only_typed<f16>(a);
  }
}

}  // namespace prunq::cpu::PRUNQ_ISA
