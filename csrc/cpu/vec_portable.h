// One fp32 lane: the portable path. Same interface as vec_avx2.h and vec_avx512.h, so a kernel
// template is written once and instantiated per instruction set.
#pragma once
#include <cmath>

#include "../common/dtypes.h"

namespace prunq::cpu::portable {

struct Vec {
  static constexpr int width = 1;
  float v;

  static Vec zero() { return {0.f}; }
  static Vec splat(float s) { return {s}; }
  template <class T> static Vec load(const T* p) { return {to_float(*p)}; }
  template <class T> static Vec load(const T* p, int) { return load(p); }
  template <class T> void store(T* p) const { *p = from_float<T>(v); }
  template <class T> void store(T* p, int) const { store(p); }
  float sum() const { return v; }
  float hmax() const { return v; }
  // Rounds to nearest even and narrows to int8 (saturating).
  void store_int8(int8_t* p, int) const {
    const float r = std::nearbyint(v);  // NaN narrows to -128, as the x86 conversions give
    *p = int8_t(r > 127.f ? 127 : (r >= -128.f ? int(r) : -128));
  }
};

static inline Vec operator+(Vec a, Vec b) { return {a.v + b.v}; }
static inline Vec operator-(Vec a, Vec b) { return {a.v - b.v}; }
static inline Vec operator*(Vec a, Vec b) { return {a.v * b.v}; }
static inline Vec fma(Vec a, Vec b, Vec c) { return {a.v * b.v + c.v}; }
static inline Vec abs(Vec a) { return {std::fabs(a.v)}; }
// A NaN in either operand gives NaN, so a NaN in a row shows in its maximum.
static inline Vec max(Vec a, Vec b) { return {a.v != a.v || a.v > b.v ? a.v : b.v}; }

}  // namespace prunq::cpu::portable
