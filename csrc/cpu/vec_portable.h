// One fp32 lane: the portable path. Same interface as vec_avx2.h and vec_avx512.h, so a kernel
// template is written once and instantiated per instruction set.
#pragma once
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
};

static inline Vec operator+(Vec a, Vec b) { return {a.v + b.v}; }
static inline Vec operator-(Vec a, Vec b) { return {a.v - b.v}; }
static inline Vec operator*(Vec a, Vec b) { return {a.v * b.v}; }
static inline Vec fma(Vec a, Vec b, Vec c) { return {a.v * b.v + c.v}; }

}  // namespace prunq::cpu::portable
