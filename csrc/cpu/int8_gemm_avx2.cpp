// AVX2 has no 8-bit dot-product instruction that is exact for the whole int8 range
// (vpmaddubsw saturates), so both operands are widened to 16 bits and multiplied with vpmaddwd:
// in 4 x 4 tiles of dot products on plain w, and in the packed-panel kernel
// (int8_gemm_madd_kernel.h) on the VNNI packing of w. Packed 4-bit weights, which cannot
// saturate it, take vpmaddubsw (int8_gemm_narrow_avx2.cpp).
#include <cstring>

#include "vec_avx2.h"

namespace prunq::cpu::avx2 {
namespace {

// Sums of the 8 lanes of each of a, b, c, d, as 4 lanes.
inline __m128i reduce4(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

inline __m256i widen16(const int8_t* p) {
  return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

struct Dot {
  static constexpr bool kBiasedW = false;

  template <int MR>
  static void int8(const int8_t* const* x, const int8_t* const* w, int64_t k, int32_t acc[4][4]) {
    __m256i c[MR][4];
    for (auto& row : c)
      for (auto& v : row) v = _mm256_setzero_si256();
    int64_t kk = 0;
    for (; kk + 16 <= k; kk += 16) {
      const __m256i w0 = widen16(w[0] + kk), w1 = widen16(w[1] + kk), w2 = widen16(w[2] + kk),
                    w3 = widen16(w[3] + kk);
      for (int i = 0; i < MR; ++i) {
        const __m256i xv = widen16(x[i] + kk);
        c[i][0] = _mm256_add_epi32(c[i][0], _mm256_madd_epi16(xv, w0));
        c[i][1] = _mm256_add_epi32(c[i][1], _mm256_madd_epi16(xv, w1));
        c[i][2] = _mm256_add_epi32(c[i][2], _mm256_madd_epi16(xv, w2));
        c[i][3] = _mm256_add_epi32(c[i][3], _mm256_madd_epi16(xv, w3));
      }
    }
    for (int i = 0; i < MR; ++i) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(acc[i]), reduce4(c[i][0], c[i][1], c[i][2], c[i][3]));
      for (int j = 0; j < 4; ++j)
        for (int64_t t = kk; t < k; ++t) acc[i][j] += int32_t(x[i][t]) * int32_t(w[j][t]);
    }
  }

  template <int MR, class T>
  static void wo(const T* const* x, const int8_t* const* w, int64_t k, float acc[4][4]) {
    __m256 c[MR][4];
    for (auto& row : c)
      for (auto& v : row) v = _mm256_setzero_ps();
    int64_t kk = 0;
    for (; kk + 8 <= k; kk += 8) {
      __m256 wv[4];
      for (int j = 0; j < 4; ++j)
        wv[j] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(w[j] + kk))));
      for (int i = 0; i < MR; ++i) {
        const __m256 xv = Vec::load(x[i] + kk).v;
        for (int j = 0; j < 4; ++j) c[i][j] = _mm256_fmadd_ps(xv, wv[j], c[i][j]);
      }
    }
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < 4; ++j) {
        float s = Vec{c[i][j]}.sum();
        for (int64_t t = kk; t < k; ++t) s += to_float(x[i][t]) * float(w[j][t]);
        acc[i][j] = s;
      }
  }
};


// The packed-panel kernel's registers: 4 channels x 4 k of w as int16. Tiles of 6 rows x 2
// registers keep 12 accumulators, 2 of w, a broadcast of x and a product in the 16 ymm registers
// (measured against 4 and 5 rows on a Zen 5: 5% to 8% faster from 16 rows on); a row alone takes
// 8 registers (32 channels: two whole lines of w per group).
struct Madd {
  using Reg = __m256i;
  static constexpr int kChannels = 4, kRows = 6, kRegs = 2, kRegsOneRow = 8;
  static Reg zero() { return _mm256_setzero_si256(); }
  static Reg load_w(const int8_t* p) {
    return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static Reg broadcast_x(const int16_t* p) {
    int64_t four;
    std::memcpy(&four, p, 8);
    return _mm256_set1_epi64x(four);
  }
  static Reg madd(Reg acc, Reg x, Reg w) { return _mm256_add_epi32(acc, _mm256_madd_epi16(x, w)); }
  static Reg load(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(int32_t* p, Reg r) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), r); }
  // hadd gives channels 0 1 4 5 2 3 6 7 (it adds within 128-bit halves); the permute orders them.
  static __m256 fold(const int32_t* lanes) {
    const __m256i sums = _mm256_hadd_epi32(load(lanes), load(lanes + 8));
    return _mm256_cvtepi32_ps(_mm256_permute4x64_epi64(sums, 0xD8));
  }
};

}  // namespace
}  // namespace prunq::cpu::avx2

#define PRUNQ_ISA avx2
#include "int8_gemm_kernel.h"
#include "gelu_kernel.h"
#include "int8_gemm_madd_kernel.h"

namespace prunq::cpu {

void quantize_per_token_avx2(const QuantizeArgs& a) { avx2::quantize_per_token(a); }
void int8_gemm_avx2(const Int8GemmArgs& a) {
  if (a.w_colsum) return avx2::madd_gemm(a);
  avx2::int8_gemm(a);
}
void int8_weight_only_gemm_avx2(const WeightOnlyArgs& a) { avx2::int8_weight_only_gemm(a); }

}  // namespace prunq::cpu
