// The weight-only GEMM on AVX-512 with fp32 FMA: x of any dtype widened to fp32, w to fp32. bf16
// activations go to the vdpbf16ps kernel instead where the CPU has AVX512_BF16.
#include "../common/cpu_features.h"
#include "vec_avx512.h"
#include "int8_weight_only_avx512.h"

namespace prunq::cpu::avx512 {
namespace {

struct F32Lanes {
  using W = float;
  static constexpr int kWidth = 16;

  template <class T>
  static void widen(const T* x, int64_t k, float* dst) {
    for (int64_t i = 0; i < k; i += kWidth) {
      const int n = int(std::min<int64_t>(kWidth, k - i));
      (n == kWidth ? Vec::load(x + i) : Vec::load(x + i, n)).store(dst + i);  // the tail reads zeros
    }
  }
  static void dequantize(const int8_t* w, int64_t k, int64_t i, float* dst) {
    _mm512_store_ps(dst + i, int8_to_f32(w + i, int(std::min<int64_t>(kWidth, k - i))));
  }
  static __m512 dot(__m512 acc, __m512i x, __m512i w) {
    return _mm512_fmadd_ps(_mm512_castsi512_ps(x), _mm512_castsi512_ps(w), acc);
  }
};

}  // namespace
}  // namespace prunq::cpu::avx512

namespace prunq::cpu {

void int8_weight_only_gemm_avx512(const WeightOnlyArgs& a) {
  switch (a.dtype) {
    case DType::f32: return avx512::weight_only_strips<avx512::F32Lanes, float>(a);
    case DType::bf16:
      if (has_avx512_bf16()) return int8_weight_only_gemm_avx512bf16(a);
      return avx512::weight_only_strips<avx512::F32Lanes, bf16>(a);
    case DType::f16: return avx512::weight_only_strips<avx512::F32Lanes, f16>(a);
  }
}

}  // namespace prunq::cpu
