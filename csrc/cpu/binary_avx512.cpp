// AVX-512 with VPOPCNTDQ: popcount of 512 bits in one instruction; BinaryConnect adds x under
// each weight word's bits as masks.
#include <immintrin.h>

#include "binary.h"
#include "vec_avx512.h"

namespace prunq::cpu::avx512 {
namespace {

struct Bits {
  static constexpr int kWords = 16, kMR = 4, kNR = 4;
  using Reg = __m512i;
  using Count = __m512i;
  using Sum = __m512;
  static Reg load(const uint32_t* p) { return _mm512_loadu_si512(p); }
  static Reg load_partial(const uint32_t* p, int n) { return _mm512_maskz_loadu_epi32(__mmask16((1u << n) - 1), p); }
  static Reg valid_bits(int n, uint32_t last) {
    return _mm512_mask_set1_epi32(_mm512_maskz_set1_epi32(__mmask16((1u << n) - 1), -1), __mmask16(1u << (n - 1)),
                                  int(last));
  }
  static Reg and_(Reg a, Reg b) { return _mm512_and_si512(a, b); }
  static Count zero_count() { return _mm512_setzero_si512(); }
  static Count add_popcount_xor(Count c, Reg a, Reg b) {
    return _mm512_add_epi64(c, _mm512_popcnt_epi64(_mm512_xor_si512(a, b)));
  }
  static int64_t total(Count c) { return _mm512_reduce_add_epi64(c); }
  static uint32_t sign_word(const float* x) {
    const __m512 zero = _mm512_setzero_ps();
    return uint32_t(_mm512_cmp_ps_mask(_mm512_loadu_ps(x), zero, _CMP_GE_OQ)) |
           uint32_t(_mm512_cmp_ps_mask(_mm512_loadu_ps(x + 16), zero, _CMP_GE_OQ)) << 16;
  }
  static Sum zero_sum() { return _mm512_setzero_ps(); }
  static Sum add_where_set(Sum s, const float* x, uint32_t word) {
    s = _mm512_mask_add_ps(s, __mmask16(word), s, _mm512_loadu_ps(x));
    return _mm512_mask_add_ps(s, __mmask16(word >> 16), s, _mm512_loadu_ps(x + 16));
  }
  static float total(Sum s) { return _mm512_reduce_add_ps(s); }
};

}  // namespace
}  // namespace prunq::cpu::avx512

#define PRUNQ_ISA avx512
#include "binary_kernel.h"

namespace prunq::cpu {
void pack_bits_avx512(const void* x, DType dtype, int64_t m, int64_t k, int64_t words, uint32_t* bits, float* alpha,
                      int num_threads) {
  avx512::pack_bits(x, dtype, m, k, words, bits, alpha, num_threads);
}
void binary_gemm_avx512(const BinaryGemmArgs& args) { avx512::binary_gemm(args); }
void binary_linear_avx512(const BinaryLinearArgs& args) { avx512::binary_linear(args); }
}  // namespace prunq::cpu
