// The INT8 GEMM for narrow (4-bit) packed weights of int8_gemm_narrow_kernel.h on AVX2.
#include "vec_avx2.h"

namespace prunq::cpu::avx2 {
namespace {

// 8 channels x 4 k of w per register. Tiles of 4 rows x 2 registers (8 int16 sums); at 5 and 6
// rows GCC 12 kept sums on the stack. A row alone takes the whole panel (8 registers).
struct Narrow {
  using Reg = __m256i;
  static constexpr int kChannels = 8, kRows = 4, kRegs = 2, kRegsOneRow = 8;
  static Reg zero() { return _mm256_setzero_si256(); }
  static Reg load_w(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static Reg broadcast_x(int32_t four) { return _mm256_set1_epi32(four); }
  static Reg add_products(Reg s, Reg x, Reg w) { return _mm256_add_epi16(s, _mm256_maddubs_epi16(x, w)); }
  static Reg widen(Reg s) { return _mm256_madd_epi16(s, _mm256_set1_epi16(1)); }
  static Reg load(const int32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(int32_t* p, Reg r) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), r); }
  static Reg add(Reg a, Reg b) { return _mm256_add_epi32(a, b); }
  static Vec dot(const int32_t* sums, const int32_t* colsum) {
    return {_mm256_cvtepi32_ps(_mm256_sub_epi32(load(sums), _mm256_slli_epi32(load(colsum), 7)))};
  }
};

}  // namespace
}  // namespace prunq::cpu::avx2

#define PRUNQ_ISA avx2
#include "gelu_kernel.h"
#include "int8_gemm_narrow_kernel.h"

namespace prunq::cpu {

void int8_gemm_narrow_avx2(const Int8GemmArgs& a) { avx2::narrow_gemm(a); }

}  // namespace prunq::cpu
