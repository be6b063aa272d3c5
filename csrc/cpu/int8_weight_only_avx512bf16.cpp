// The weight-only GEMM for bf16 activations with vdpbf16ps (AVX512_BF16): w is dequantized to
// bf16, which is exact for int8, and each instruction does 32 multiply-adds with fp32
// accumulation, twice the rate of fp32 FMA.
#include "vec_avx512.h"
#include "int8_weight_only_avx512.h"

namespace prunq::cpu::avx512 {
namespace {

struct Bf16Lanes {
  using W = bf16;
  static constexpr int kWidth = 32;

  static void widen(const bf16* x, int64_t k, bf16* dst) {
    for (int64_t i = 0; i < k; i += kWidth) {
      const int64_t n = std::min<int64_t>(kWidth, k - i);
      const __mmask32 m = n == kWidth ? ~__mmask32(0) : (__mmask32(1) << n) - 1;
      _mm512_store_si512(dst + i, _mm512_maskz_loadu_epi16(m, x + i));
    }
  }
  static void dequantize(const int8_t* w, int64_t k, int64_t i, bf16* dst) {
    const int n = int(std::min<int64_t>(kWidth, k - i));
    const __m512 lo = int8_to_f32(w + i, std::min(n, 16)), hi = int8_to_f32(w + i + 16, std::max(n - 16, 0));
    _mm512_store_si512(dst + i, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
  static __m512 dot(__m512 acc, __m512i x, __m512i w) { return _mm512_dpbf16_ps(acc, (__m512bh)x, (__m512bh)w); }
};

}  // namespace
}  // namespace prunq::cpu::avx512

namespace prunq::cpu {

void int8_weight_only_gemm_avx512bf16(const WeightOnlyArgs& a) {
  avx512::weight_only_strips<avx512::Bf16Lanes, bf16>(a);
}

}  // namespace prunq::cpu
