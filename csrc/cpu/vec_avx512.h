// Sixteen fp32 lanes in an AVX-512 register; tails use masked loads and stores. Include only
// from translation units compiled with -mavx512f -mavx512bw -mavx512vl -mavx512dq.
#pragma once
#include <immintrin.h>

#include "../common/dtypes.h"

namespace prunq::cpu::avx512 {

struct Vec {
  static constexpr int width = 16;
  __m512 v;

  static Vec zero() { return {_mm512_setzero_ps()}; }
  static Vec splat(float s) { return {_mm512_set1_ps(s)}; }

  static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static Vec load(const bf16* p) { return widen_bf16(_mm256_loadu_si256(cast(p))); }
  static Vec load(const f16* p) { return {_mm512_cvtph_ps(_mm256_loadu_si256(cast(p)))}; }
  // The first n (< width) elements; the rest read as zero.
  static Vec load(const float* p, int n) { return {_mm512_maskz_loadu_ps(mask(n), p)}; }
  static Vec load(const bf16* p, int n) {
    return widen_bf16(_mm256_maskz_loadu_epi16(mask(n), p));
  }
  static Vec load(const f16* p, int n) {
    return {_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mask(n), p))};
  }

  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store(bf16* p) const { _mm256_storeu_si256(cast(p), to_bf16()); }
  void store(f16* p) const { _mm256_storeu_si256(cast(p), to_f16()); }
  void store(float* p, int n) const { _mm512_mask_storeu_ps(p, mask(n), v); }
  void store(bf16* p, int n) const { _mm256_mask_storeu_epi16(p, mask(n), to_bf16()); }
  void store(f16* p, int n) const { _mm256_mask_storeu_epi16(p, mask(n), to_f16()); }

  float sum() const { return _mm512_reduce_add_ps(v); }
  float hmax() const {  // NaN if any lane is NaN
    return _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) ? __builtin_nanf("") : _mm512_reduce_max_ps(v);
  }
  // Rounds to nearest even and narrows the first n lanes to int8 (saturating).
  void store_int8(int8_t* p, int n) const {
    _mm_mask_storeu_epi8(p, mask(n), _mm512_cvtsepi32_epi8(_mm512_cvtps_epi32(v)));
  }

 private:
  static __mmask16 mask(int n) { return __mmask16((1u << n) - 1); }  // n <= 16
  template <class T> static __m256i* cast(T* p) { return reinterpret_cast<__m256i*>(p); }
  template <class T> static const __m256i* cast(const T* p) {
    return reinterpret_cast<const __m256i*>(p);
  }
  static Vec widen_bf16(__m256i h) {
    return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))};
  }
  // Round to nearest even; NaN becomes a quiet NaN.
  __m256i to_bf16() const {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(u, _mm512_set1_epi32(0x400000)));
    return _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
  }
  __m256i to_f16() const { return _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT); }
};

static inline Vec operator+(Vec a, Vec b) { return {_mm512_add_ps(a.v, b.v)}; }
static inline Vec operator-(Vec a, Vec b) { return {_mm512_sub_ps(a.v, b.v)}; }
static inline Vec operator*(Vec a, Vec b) { return {_mm512_mul_ps(a.v, b.v)}; }
static inline Vec fma(Vec a, Vec b, Vec c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
static inline Vec operator/(Vec a, Vec b) { return {_mm512_div_ps(a.v, b.v)}; }
static inline Vec abs(Vec a) { return {_mm512_abs_ps(a.v)}; }
static inline Vec clamp(Vec a, float lo, float hi) {
  return {_mm512_min_ps(_mm512_max_ps(a.v, _mm512_set1_ps(lo)), _mm512_set1_ps(hi))};
}
// A NaN in either operand gives NaN, so a NaN in a row shows in its maximum.
static inline Vec max(Vec a, Vec b) {
  return {_mm512_mask_mov_ps(_mm512_max_ps(a.v, b.v), _mm512_cmp_ps_mask(a.v, a.v, _CMP_UNORD_Q), a.v)};
}

}  // namespace prunq::cpu::avx512
