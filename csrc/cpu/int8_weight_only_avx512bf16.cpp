// The weight-only GEMM for bf16 activations on vdpbf16ps (AVX512_BF16): each instruction does 32
// multiply-adds of bf16 pairs into fp32, twice the rate of fp32 FMA, and int8 is exact in bf16.
//
// Threads split N into strips of 4 output channels. Each strip of w is dequantized once into a
// small bf16 buffer (4 x K) and then meets every row of x, so converting int8 costs once per
// weight and row panel, not once per row tile. A 6 x 4 register tile runs along K over rows of x
// and the strip, and reduces its 24 accumulators at the end. While a strip is multiplied, the
// next one is prefetched into L2. x is copied into rows padded with zeros to a multiple of 32,
// as the strip is, so the loop has no tail.
#include <algorithm>
#include <cstdlib>
#include <memory>

#include "../common/parallel.h"
#include "int8_gemm.h"
#include "vec_avx512.h"

namespace prunq::cpu::avx512 {
namespace {

constexpr int kLanes = 32;  // bf16 per register
constexpr int kStripCols = 4;
constexpr int kMaxTileRows = 6;  // 24 accumulators, 4 w registers, 1 x register
// Rows of x kept hot in L2 while the strips of w pass.
constexpr int64_t kRowPanelBytes = 512 << 10;

inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  auto half = [](__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  };
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(half(a), half(b)), _mm256_hadd_ps(half(c), half(d)));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Sixteen int8 weights from p (the first n when n < 16, the rest zero), as fp32.
inline __m512 int8_to_f32(const int8_t* p, int n) {
  const __m128i bytes = n >= 16 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                                : _mm_maskz_loadu_epi8(__mmask16((1u << n) - 1), p);
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
}

// One row of k int8 weights as bf16, zero-padded to kp.
void dequantize_row(const int8_t* w, int64_t k, int64_t kp, bf16* dst) {
  for (int64_t i = 0; i < kp; i += kLanes) {
    const int n = int(std::min<int64_t>(kLanes, k - i));
    const __m512 lo = int8_to_f32(w + i, std::min(n, 16)), hi = int8_to_f32(w + i + 16, std::max(n - 16, 0));
    _mm512_store_si512(dst + i, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
}

// One row of k bf16 activations, zero-padded to kp.
void copy_row(const bf16* x, int64_t k, int64_t kp, bf16* dst) {
  for (int64_t i = 0; i < kp; i += kLanes) {
    const int64_t n = std::min<int64_t>(kLanes, k - i);
    const __mmask32 m = n == kLanes ? ~__mmask32(0) : (__mmask32(1) << n) - 1;
    _mm512_store_si512(dst + i, _mm512_maskz_loadu_epi16(m, x + i));
  }
}

// `next` is the next strip of int8 w (4 x K bytes). Each step brings into L2 the 4 x 32 bytes of
// it that the dequantization of the next strip will read at the same point of K, so one pass
// covers it all. For the last strip this asks for a few bytes past w, which a prefetch may do.
template <int MR>
void strip_tile(const bf16* x, int64_t ldx, const bf16* strip, int64_t kp, const int8_t* next,
                float acc[MR][kStripCols]) {
  __m512 c[MR][kStripCols];
  for (auto& row : c)
    for (auto& v : row) v = _mm512_setzero_ps();
  for (int64_t kk = 0; kk < kp; kk += kLanes) {
    for (int line = 0; line < kLanes * kStripCols; line += 64)
      _mm_prefetch(reinterpret_cast<const char*>(next) + kk * kStripCols + line, _MM_HINT_T1);
    __m512bh w[kStripCols];
    for (int j = 0; j < kStripCols; ++j) w[j] = (__m512bh)_mm512_load_si512(strip + j * kp + kk);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = (__m512bh)_mm512_load_si512(x + i * ldx + kk);
      for (int j = 0; j < kStripCols; ++j) c[i][j] = _mm512_dpbf16_ps(c[i][j], xv, w[j]);
    }
  }
  for (int i = 0; i < MR; ++i) _mm_store_ps(acc[i], reduce4(c[i][0], c[i][1], c[i][2], c[i][3]));
}

template <int MR = kMaxTileRows>
void strip_tile_rows(int rows, const bf16* x, int64_t ldx, const bf16* strip, int64_t kp, const int8_t* next,
                     float acc[kMaxTileRows][kStripCols]) {
  if constexpr (MR > 1) {
    if (rows < MR) return strip_tile_rows<MR - 1>(rows, x, ldx, strip, kp, next, acc);
  }
  strip_tile<MR>(x, ldx, strip, kp, next, acc);
}

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
std::unique_ptr<bf16[], FreeDeleter> aligned_bf16(int64_t count) {
  const size_t bytes = std::max<size_t>(64, (size_t(count) * sizeof(bf16) + 63) / 64 * 64);
  return std::unique_ptr<bf16[], FreeDeleter>(static_cast<bf16*>(std::aligned_alloc(64, bytes)));
}

void weight_only_bf16(const WeightOnlyArgs& a) {
  const int64_t kp = (a.k + kLanes - 1) / kLanes * kLanes;
  // One cache line more than a multiple of 64 bytes, so the rows of a tile use different L1 sets.
  const int64_t ldx = kp + 32;
  auto xp = aligned_bf16(a.m * ldx);
  const auto* x = static_cast<const bf16*>(a.x);
  parallel_for(a.m, a.num_threads, 1 + (int64_t(1) << 16) / std::max<int64_t>(kp, 1), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) copy_row(x + r * a.k, a.k, kp, xp.get() + r * ldx);
  });
  const int64_t strips = (a.n + kStripCols - 1) / kStripCols;
  const int64_t row_panel =
      std::max<int64_t>(kMaxTileRows, kRowPanelBytes / (ldx * int64_t(sizeof(bf16))) / kMaxTileRows * kMaxTileRows);
  // At least ~64 K multiply-adds per thread before splitting pays.
  const int64_t min_strips = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, a.m * kp * kStripCols));
  parallel_for(strips, a.num_threads, min_strips, [&](int64_t s_begin, int64_t s_end) {
    auto strip = aligned_bf16(kStripCols * kp);
    for (int64_t m0 = 0; m0 < a.m; m0 += row_panel) {
      const int64_t m1 = std::min(a.m, m0 + row_panel);
      for (int64_t s = s_begin; s < s_end; ++s) {
        const int64_t n0 = s * kStripCols;
        const int cols = int(std::min<int64_t>(kStripCols, a.n - n0));
        for (int j = 0; j < kStripCols; ++j)  // missing channels repeat the first (computed, never stored)
          dequantize_row(a.w + (n0 + (j < cols ? j : 0)) * a.k, a.k, kp, strip.get() + j * kp);
        const int8_t* next = a.w + std::min(s + 1, strips - 1) * kStripCols * a.k;
        // The epilogue on the strip's channels at once, in the low lanes of a Vec.
        const Vec scale = Vec::load(a.w_scale + n0, cols);
        const Vec bias = a.bias ? Vec::load(a.bias + n0, cols) : Vec::zero();
        for (int64_t r = m0; r < m1; r += kMaxTileRows) {
          const int rows = int(std::min<int64_t>(kMaxTileRows, m1 - r));
          alignas(16) float acc[kMaxTileRows][kStripCols];
          strip_tile_rows(rows, xp.get() + r * ldx, ldx, strip.get(), kp, next, acc);
          for (int i = 0; i < rows; ++i)
            fma(Vec{_mm512_castps128_ps512(_mm_load_ps(acc[i]))}, scale, bias)
                .store(static_cast<bf16*>(a.out) + (r + i) * a.n + n0, cols);
        }
      }
    }
  });
}

}  // namespace
}  // namespace prunq::cpu::avx512

namespace prunq::cpu {

void int8_weight_only_gemm_avx512bf16(const WeightOnlyArgs& a) { avx512::weight_only_bf16(a); }

}  // namespace prunq::cpu
