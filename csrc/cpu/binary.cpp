#include "binary.h"

#include <algorithm>
#include <cstring>

#include "../common/parallel.h"

#include "../common/cpu_features.h"
#include "vec_portable.h"

namespace prunq::cpu::portable {
namespace {

// The portable Bits: 64-bit words and scalar sums.
struct Bits {
  static constexpr int kWords = 2, kMR = 2, kNR = 4;
  static constexpr int64_t kStepsPerCount = int64_t(1) << 40;
  using Reg = uint64_t;
  using Count = int64_t;
  using Sum = float;
  static Reg load(const uint32_t* p) {
    Reg r;
    std::memcpy(&r, p, sizeof r);
    return r;
  }
  static Reg load_partial(const uint32_t* p, int n) { return n == 1 ? Reg(*p) : load(p); }
  static Reg valid_bits(int n, uint32_t last) { return n == 1 ? Reg(last) : Reg(last) << 32 | 0xffffffffu; }
  static Reg and_(Reg a, Reg b) { return a & b; }
  static Count zero_count() { return 0; }
  static Count add_popcount_xor(Count c, Reg a, Reg b) { return c + __builtin_popcountll(a ^ b); }
  static int64_t total(Count c) { return c; }
  static uint32_t sign_word(const float* x) {
    uint32_t word = 0;
    for (int i = 0; i < 32; ++i) word |= uint32_t(x[i] >= 0.f) << i;
    return word;
  }
  static Sum zero_sum() { return 0.f; }
  static Sum add_where_set(Sum s, const float* x, uint32_t word) {
    for (int i = 0; i < 32; ++i) s += x[i] * float((word >> i) & 1);
    return s;
  }
  static float total(Sum s) { return s; }
  static bool many_rows_gemm(const BinaryGemmArgs&) { return false; }
  static bool table_connect(const BinaryLinearArgs&) { return false; }
};

}  // namespace
}  // namespace prunq::cpu::portable

#define PRUNQ_ISA portable
#include "binary_kernel.h"

namespace prunq::cpu {

void pack_bits_portable(const void* x, DType dtype, int64_t m, int64_t k, int64_t words, uint32_t* bits, float* alpha,
                        int num_threads) {
  portable::pack_bits(x, dtype, m, k, words, bits, alpha, num_threads);
}
void binary_gemm_portable(const BinaryGemmArgs& args) { portable::binary_gemm(args); }
void binary_linear_portable(const BinaryLinearArgs& args) { portable::binary_linear(args); }

// The AVX-512 kernels need VPOPCNTDQ; AVX-512 CPUs without it (Skylake-SP) take the AVX2 ones.
#if PRUNQ_X86
#define PRUNQ_BINARY_DISPATCH(name, ...)                                                      \
  if (active_isa() == Isa::avx512 && has_avx512_vpopcntdq()) return name##_avx512(__VA_ARGS__); \
  if (active_isa() != Isa::portable) return name##_avx2(__VA_ARGS__);                          \
  return name##_portable(__VA_ARGS__);
#else
#define PRUNQ_BINARY_DISPATCH(name, ...) return name##_portable(__VA_ARGS__);
#endif

void pack_bits(const void* x, DType dtype, int64_t m, int64_t k, int64_t words, uint32_t* bits, float* alpha,
               int num_threads) {
  PRUNQ_BINARY_DISPATCH(pack_bits, x, dtype, m, k, words, bits, alpha, num_threads)
}
void binary_gemm(const BinaryGemmArgs& args) { PRUNQ_BINARY_DISPATCH(binary_gemm, args) }

void binary_columns(const uint32_t* b, int64_t n, int64_t words, uint32_t* columns, int num_threads) {
  parallel_for(columns_width(n) / 16, num_threads, 8, [&](int64_t g0, int64_t g1) {
    for (int64_t g = g0; g < g1; ++g) {
      uint32_t* group = columns + g * words * 16;
      for (int c = 0; c < 16; ++c) {
        const int64_t j = 16 * g + c;
        for (int64_t w = 0; w < words; ++w) group[w * 16 + c] = j < n ? b[j * words + w] : 0u;
      }
    }
  });
}
void binary_linear(const BinaryLinearArgs& args) { PRUNQ_BINARY_DISPATCH(binary_linear, args) }

}  // namespace prunq::cpu
