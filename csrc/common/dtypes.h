// Storage types the kernels read and write, and their scalar conversions to and from fp32.
// bf16 and fp16 are carried as raw 16-bit patterns so the portable build needs no compiler
// support for half-precision arithmetic.
#pragma once
#include <cstdint>
#include <cstring>

namespace prunq {

// Codes shared with the Python layer (prunq/_native.py).
enum class DType : int { f32 = 0, bf16 = 1, f16 = 2 };

struct bf16 { uint16_t bits; };
struct f16 { uint16_t bits; };

static inline float bits_to_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
static inline uint32_t float_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

static inline float to_float(float v) { return v; }
static inline float to_float(int8_t v) { return float(v); }  // int8 weight values, before their scale
static inline float to_float(bf16 v) { return bits_to_float(uint32_t(v.bits) << 16); }

static inline float to_float(f16 v) {
  const uint32_t sign = uint32_t(v.bits & 0x8000) << 16;
  const uint32_t exp = (v.bits >> 10) & 0x1f;
  uint32_t mant = v.bits & 0x3ff;
  if (exp == 0x1f) return bits_to_float(sign | 0x7f800000u | (mant << 13));  // inf, nan
  if (exp != 0) return bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return bits_to_float(sign);
  // Subnormal: value = mant * 2^-24.
  float f = float(mant) * bits_to_float(0x33800000u);
  return sign ? -f : f;
}

template <class T> static inline T from_float(float v);

template <> inline float from_float<float>(float v) { return v; }

// Round to nearest even; NaN stays a quiet NaN.
template <> inline bf16 from_float<bf16>(float v) {
  uint32_t u = float_to_bits(v);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{uint16_t((u >> 16) | 0x40)};
  u += 0x7fffu + ((u >> 16) & 1);
  return bf16{uint16_t(u >> 16)};
}

// Round to nearest even, overflow to inf, subnormals kept.
template <> inline f16 from_float<f16>(float v) {
  const uint32_t u = float_to_bits(v);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return f16{uint16_t(sign | 0x7e00)};
  if (a >= 0x477ff000u) return f16{uint16_t(sign | 0x7c00)};  // rounds to >= 65520: inf
  if (a < 0x38800000u) {  // below the smallest normal half: round to a multiple of 2^-24
    const float scaled = bits_to_float(a) * bits_to_float(0x4b800000u);  // * 2^24
    // Adding 2^23 rounds to an integer with the FPU's round-to-nearest-even.
    const uint32_t m = float_to_bits(scaled + 8388608.0f) - 0x4b000000u;
    return f16{uint16_t(sign | m)};
  }
  uint32_t r = a + 0xfffu + ((a >> 13) & 1) - (112u << 23);
  return f16{uint16_t(sign | (r >> 13))};
}

}  // namespace prunq
