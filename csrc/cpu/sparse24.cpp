#include "sparse24.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "../common/cpu_features.h"
#include "vec_portable.h"

namespace prunq::cpu::portable {
namespace {

// The portable Gather: eight lanes in an array the compiler may vectorise.
struct Gather {
  static constexpr int kValues = 8;
  static constexpr int kChains = 1;  // its lanes are independent sums already
  using Reg = std::array<float, kValues>;
  using Positions = std::array<int, kValues>;
  static Reg zero() { return {}; }
  static void arrange(float*, int64_t) {}  // x as it lies
  static Positions positions(const uint8_t* meta) {
    Positions pos;
    for (int i = 0; i < kValues; ++i) pos[i] = 4 * (i / 2) + ((meta[i / 4] >> (2 * (i % 4))) & 3);
    return pos;
  }
  static Reg pick(const float* x, const Positions& pos) {
    Reg r;
    for (int i = 0; i < kValues; ++i) r[i] = x[pos[i]];
    return r;
  }
  template <class T> static Reg load_values(const T* v) {
    Reg r;
    for (int i = 0; i < kValues; ++i) r[i] = to_float(v[i]);
    return r;
  }
  static Reg load_values(const int8_t* v) {
    Reg r;
    for (int i = 0; i < kValues; ++i) r[i] = float(v[i]);
    return r;
  }
  static Reg fma(const Reg& a, const Reg& b, Reg c) {
    for (int i = 0; i < kValues; ++i) c[i] += a[i] * b[i];
    return c;
  }
  static Reg add(Reg a, const Reg& b) {
    for (int i = 0; i < kValues; ++i) a[i] += b[i];
    return a;
  }
  static float sum(const Reg& r) {
    float s = 0.f;
    for (float v : r) s += v;
    return s;
  }
};

}  // namespace
}  // namespace prunq::cpu::portable

#define PRUNQ_ISA portable
#include "sparse24_kernel.h"

namespace prunq::cpu {

void sparse24_linear_portable(const Sparse24Args& a) { portable::sparse24_linear(a); }

int64_t sparse24_first_bad_group(const uint8_t* meta, int64_t bytes) {
  // Blocks are checked branch-free, so that the compiler vectorises it (the check runs on every op
  // call); only a block holding a bad group is searched for it.
  constexpr int64_t kBlock = 1024;
  for (int64_t start = 0; start < bytes; start += kBlock) {
    const int64_t end = std::min(bytes, start + kBlock);
    uint8_t bad = 0;
    for (int64_t i = start; i < end; ++i) {
      const uint8_t b = meta[i];
      bad |= uint8_t((b & 3) >= ((b >> 2) & 3)) | uint8_t(((b >> 4) & 3) >= (b >> 6));
    }
    if (!bad) continue;
    for (int64_t i = start; i < end; ++i)
      for (int g = 0; g < 2; ++g) {
        const int code = (meta[i] >> (4 * g)) & 0xF;
        if ((code & 3) >= (code >> 2)) return 2 * i + g;
      }
  }
  return -1;
}

void sparse24_linear(const Sparse24Args& a) {
#if PRUNQ_X86
  if (active_isa() == Isa::avx512 && has_avx512_bf16() && sparse24_linear_avx512bf16(a)) return;
  if (active_isa() == Isa::avx512) return sparse24_linear_avx512(a);
  if (active_isa() == Isa::avx2) return sparse24_linear_avx2(a);
#endif
  sparse24_linear_portable(a);
}

}  // namespace prunq::cpu
