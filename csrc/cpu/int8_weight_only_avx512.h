// The AVX-512 weight-only GEMM, written once around a `Lanes` policy that says what the dot
// products run on:
//   Lanes::W                          element type of both operands in registers (float, bf16)
//   Lanes::kWidth                     elements of W per 512-bit register
//   Lanes::widen(const T* x, k, W*)   one row of x, as W
//   Lanes::dequantize(const int8_t* w, k, i, W* dst)   w[i, i + kWidth) of a row of k int8 weights
//                                     to dst[i, ...) as W (exact: |w| <= 128)
//   Lanes::dot(__m512 acc, __m512i x, __m512i w)  acc += products of one register's worth
// Rows and the buffers are padded with zeros to a multiple of kWidth, so the loop has no tail.
//
// Threads split N into strips of 4 output channels. Each strip of w is dequantized once into a
// small buffer (4 x K) and then meets every row of x, so the conversion of int8 is paid once per
// weight and row panel, not once per row tile; the 6 x 4 register tile reads x and the strip
// along K and reduces each of its 24 accumulators at the end.
#include <algorithm>
#include <memory>
#include <vector>

#include "../common/parallel.h"
#include "int8_gemm.h"

namespace prunq::cpu::avx512 {
namespace {

constexpr int kStripCols = 4;
constexpr int kMaxTileRows = 6;  // 24 accumulators, 4 w registers, 1 x register
// Rows of x (as W) kept hot in L2 while the strips of w pass.
constexpr int64_t kRowPanelBytes = 512 << 10;

inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  auto half = [](__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  };
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(half(a), half(b)), _mm256_hadd_ps(half(c), half(d)));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// `next` is the next strip of int8 w (4 x K bytes). Each step brings the 4 x kWidth bytes of it
// that it will convert into L2, so one pass over K covers it all and the dequantization of the
// next strip reads from L2 rather than waiting on memory.
template <class Lanes, int MR>
void strip_tile(const typename Lanes::W* x, int64_t ldx, const typename Lanes::W* strip, int64_t kp,
                const int8_t* next, float acc[MR][kStripCols]) {
  __m512 c[MR][kStripCols];
  for (auto& row : c)
    for (auto& v : row) v = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < kp; kk += Lanes::kWidth) {
    for (int line = 0; line < Lanes::kWidth * kStripCols; line += 64)
      _mm_prefetch(reinterpret_cast<const char*>(next) + kk * kStripCols + line, _MM_HINT_T1);
    __m512i w[kStripCols];
    for (int j = 0; j < kStripCols; ++j) w[j] = _mm512_load_si512(strip + j * kp + kk);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m512i xv = _mm512_load_si512(x + i * ldx + kk);
      for (int j = 0; j < kStripCols; ++j) c[i][j] = Lanes::dot(c[i][j], xv, w[j]);
    }
  }
  for (int i = 0; i < MR; ++i) _mm_storeu_ps(acc[i], reduce4(c[i][0], c[i][1], c[i][2], c[i][3]));
}

template <class Lanes, int MR = kMaxTileRows>
void strip_tile_rows(int rows, const typename Lanes::W* x, int64_t ldx, const typename Lanes::W* strip, int64_t kp,
                     const int8_t* next, float acc[kMaxTileRows][kStripCols]) {
  if constexpr (MR > 1) {
    if (rows < MR) return strip_tile_rows<Lanes, MR - 1>(rows, x, ldx, strip, kp, next, acc);
  }
  strip_tile<Lanes, MR>(x, ldx, strip, kp, next, acc);
}

template <class T> inline void store_out(void* out, int64_t i, float v) { static_cast<T*>(out)[i] = from_float<T>(v); }

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};
template <class W> std::unique_ptr<W[], AlignedFree> aligned_buffer(int64_t count) {
  const size_t bytes = (size_t(count) * sizeof(W) + 63) / 64 * 64;
  return std::unique_ptr<W[], AlignedFree>(static_cast<W*>(std::aligned_alloc(64, std::max<size_t>(bytes, 64))));
}

template <class Lanes, class T>
void weight_only_strips(const WeightOnlyArgs& a) {
  using W = typename Lanes::W;
  const int64_t kp = (a.k + Lanes::kWidth - 1) / Lanes::kWidth * Lanes::kWidth;
  // One cache line more than a multiple of 64 bytes, so the rows of a tile use different L1 sets.
  const int64_t ldx = kp + 64 / int64_t(sizeof(W));
  auto xw = aligned_buffer<W>(a.m * ldx);
  const auto* x = static_cast<const T*>(a.x);
  parallel_for(a.m, a.num_threads, 1 + (int64_t(1) << 16) / std::max<int64_t>(kp, 1), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) Lanes::widen(x + r * a.k, a.k, xw.get() + r * ldx);
  });
  const int64_t strips = (a.n + kStripCols - 1) / kStripCols;
  const int64_t row_panel = std::max<int64_t>(
      kMaxTileRows, kRowPanelBytes / (ldx * int64_t(sizeof(W))) / kMaxTileRows * kMaxTileRows);
  // At least ~64 K multiply-adds per thread before splitting pays.
  const int64_t min_strips = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, a.m * kp * kStripCols));
  parallel_for(strips, a.num_threads, min_strips, [&](int64_t s_begin, int64_t s_end) {
    auto strip = aligned_buffer<W>(kStripCols * kp);
    for (int64_t m0 = 0; m0 < a.m; m0 += row_panel) {
      const int64_t m1 = std::min(a.m, m0 + row_panel);
      for (int64_t s = s_begin; s < s_end; ++s) {
        const int64_t n0 = s * kStripCols;
        const int cols = int(std::min<int64_t>(kStripCols, a.n - n0));
        for (int j = 0; j < kStripCols; ++j) {  // missing channels repeat the first (computed, never stored)
          const int8_t* row = a.w + (n0 + (j < cols ? j : 0)) * a.k;
          for (int64_t kk = 0; kk < kp; kk += Lanes::kWidth) Lanes::dequantize(row, a.k, kk, strip.get() + j * kp);
        }
        const int8_t* next = a.w + std::min(s + 1, strips - 1) * kStripCols * a.k;
        for (int64_t r = m0; r < m1; r += kMaxTileRows) {
          const int rows = int(std::min<int64_t>(kMaxTileRows, m1 - r));
          float acc[kMaxTileRows][kStripCols];
          strip_tile_rows<Lanes>(rows, xw.get() + r * ldx, ldx, strip.get(), kp, next, acc);
          for (int i = 0; i < rows; ++i)
            for (int j = 0; j < cols; ++j)
              store_out<T>(a.out, (r + i) * a.n + n0 + j,
                           acc[i][j] * a.w_scale[n0 + j] + (a.bias ? a.bias[n0 + j] : 0.f));
        }
      }
    }
  });
}

// Sixteen int8 weights from p (the first n when n < 16; the rest zero), as fp32.
inline __m512 int8_to_f32(const int8_t* p, int n) {
  const __m128i bytes = n >= 16 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                                : _mm_maskz_loadu_epi8(__mmask16((1u << n) - 1), p);
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
}

}  // namespace
}  // namespace prunq::cpu::avx512
