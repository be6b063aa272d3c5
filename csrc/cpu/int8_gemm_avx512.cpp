// AVX-512 VNNI: vpdpbusd multiplies unsigned bytes by signed bytes, 4 per 32-bit lane. w is made
// unsigned by flipping its sign bit (w + 128) and x stays signed, so each dot product comes out
// as sum(x * w) + 128 * sum(x); the driver subtracts 128 * sum(x) per row (kBiasedW). Keeping x
// as the signed side puts the correction on the activations (M x K, cheap) rather than on the
// weights, and is exact over the whole int8 range.
#include "vec_avx512.h"

namespace prunq::cpu::avx512 {
namespace {

// Sums of the 16 lanes of each of a, b, c, d, as 4 lanes.
inline __m128i reduce4(__m512i a, __m512i b, __m512i c, __m512i d) {
  auto half = [](__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  };
  const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(half(a), half(b)), _mm256_hadd_epi32(half(c), half(d)));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

struct Dot {
  static constexpr bool kBiasedW = true;  // int8() returns sum(x * w) + 128 * sum(x)

  static void int8(const int8_t* const* x, const int8_t* const* w, int64_t k, int32_t acc[4][4]) {
    const __m512i flip = _mm512_set1_epi8(char(0x80));
    __m512i c[4][4];
    for (auto& row : c)
      for (auto& v : row) v = _mm512_setzero_si512();
    auto step = [&](int64_t kk, __mmask64 m) {
      __m512i wv[4];
      for (int j = 0; j < 4; ++j) wv[j] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, w[j] + kk), flip);
      for (int i = 0; i < 4; ++i) {
        const __m512i xv = _mm512_maskz_loadu_epi8(m, x[i] + kk);
        for (int j = 0; j < 4; ++j) c[i][j] = _mm512_dpbusd_epi32(c[i][j], wv[j], xv);
      }
    };
    int64_t kk = 0;
    for (; kk + 64 <= k; kk += 64) step(kk, ~__mmask64(0));
    if (kk < k) step(kk, (__mmask64(1) << (k - kk)) - 1);  // zero x in the tail adds nothing
    for (int i = 0; i < 4; ++i)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(acc[i]), reduce4(c[i][0], c[i][1], c[i][2], c[i][3]));
  }

  template <class T>
  static void wo(const T* const* x, const int8_t* const* w, int64_t k, float acc[4][4]) {
    __m512 c[4][4];
    for (auto& row : c)
      for (auto& v : row) v = _mm512_setzero_ps();
    auto step = [&](int64_t kk, int n) {
      const __mmask16 m = __mmask16((1u << n) - 1);
      __m512 wv[4];
      for (int j = 0; j < 4; ++j) wv[j] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, w[j] + kk)));
      for (int i = 0; i < 4; ++i) {
        const __m512 xv = (n == 16 ? Vec::load(x[i] + kk) : Vec::load(x[i] + kk, n)).v;
        for (int j = 0; j < 4; ++j) c[i][j] = _mm512_fmadd_ps(xv, wv[j], c[i][j]);
      }
    };
    int64_t kk = 0;
    for (; kk + 16 <= k; kk += 16) step(kk, 16);
    if (kk < k) step(kk, int(k - kk));
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_reduce_add_ps(c[i][j]);
  }
};

}  // namespace
}  // namespace prunq::cpu::avx512

#define PRUNQ_ISA avx512
#include "int8_gemm_kernel.h"

namespace prunq::cpu {

void quantize_per_token_avx512(const QuantizeArgs& a) { avx512::quantize_per_token(a); }
void int8_gemm_avx512(const Int8GemmArgs& a) { avx512::int8_gemm(a); }
void int8_weight_only_gemm_avx512(const WeightOnlyArgs& a) { avx512::int8_weight_only_gemm(a); }

}  // namespace prunq::cpu
