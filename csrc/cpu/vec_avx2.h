// Eight fp32 lanes in an AVX2 register (with FMA and F16C). Include only from translation units
// compiled with -mavx2 -mfma -mf16c.
#pragma once
#include <immintrin.h>

#include "../common/dtypes.h"

namespace prunq::cpu::avx2 {

struct Vec {
  static constexpr int width = 8;
  __m256 v;

  static Vec zero() { return {_mm256_setzero_ps()}; }
  static Vec splat(float s) { return {_mm256_set1_ps(s)}; }

  static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static Vec load(const bf16* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return {_mm256_castsi256_ps(_mm256_slli_epi32(w, 16))};
  }
  static Vec load(const f16* p) {
    return {_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)))};
  }
  // The first n (< width) elements; the rest read as zero.
  template <class T> static Vec load(const T* p, int n) {
    T buf[width] = {};
    std::memcpy(buf, p, sizeof(T) * n);
    return load(buf);
  }

  void store(float* p) const { _mm256_storeu_ps(p, v); }
  void store(bf16* p) const {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), to_bf16());
  }
  void store(f16* p) const {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  template <class T> void store(T* p, int n) const {
    T buf[width];
    store(buf);
    std::memcpy(p, buf, sizeof(T) * n);
  }

  float hmax() const {  // NaN if any lane is NaN
    if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q))) return __builtin_nanf("");
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // Rounds to nearest even and narrows the first n lanes to int8 (saturating).
  void store_int8(int8_t* p, int n) const {
    const __m128i lo = _mm256_castsi256_si128(_mm256_cvtps_epi32(v));
    const __m128i hi = _mm256_extracti128_si256(_mm256_cvtps_epi32(v), 1);
    const __m128i bytes = _mm_packs_epi16(_mm_packs_epi32(lo, hi), _mm_setzero_si128());
    if (n == width) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(p), bytes);
    } else {
      int8_t buf[16];
      _mm_storeu_si128(reinterpret_cast<__m128i*>(buf), bytes);
      std::memcpy(p, buf, n);
    }
  }

  float sum() const {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

 private:
  // Round to nearest even; NaN becomes a quiet NaN.
  __m128i to_bf16() const {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    r = _mm256_blendv_epi8(r, _mm256_or_si256(u, _mm256_set1_epi32(0x400000)), nan);
    r = _mm256_srli_epi32(r, 16);
    // Pack 8 x u32 (each < 2^16) into 8 x u16.
    const __m128i lo = _mm256_castsi256_si128(r), hi = _mm256_extracti128_si256(r, 1);
    return _mm_packus_epi32(lo, hi);
  }
};

static inline Vec operator+(Vec a, Vec b) { return {_mm256_add_ps(a.v, b.v)}; }
static inline Vec operator-(Vec a, Vec b) { return {_mm256_sub_ps(a.v, b.v)}; }
static inline Vec operator*(Vec a, Vec b) { return {_mm256_mul_ps(a.v, b.v)}; }
static inline Vec fma(Vec a, Vec b, Vec c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
static inline Vec operator/(Vec a, Vec b) { return {_mm256_div_ps(a.v, b.v)}; }
static inline Vec abs(Vec a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.f), a.v)}; }
static inline Vec clamp(Vec a, float lo, float hi) {
  return {_mm256_min_ps(_mm256_max_ps(a.v, _mm256_set1_ps(lo)), _mm256_set1_ps(hi))};
}
// A NaN in either operand gives NaN, so a NaN in a row shows in its maximum.
static inline Vec max(Vec a, Vec b) {
  return {_mm256_blendv_ps(_mm256_max_ps(a.v, b.v), a.v, _mm256_cmp_ps(a.v, a.v, _CMP_UNORD_Q))};
}

}  // namespace prunq::cpu::avx2
