// The packed-panel INT8 GEMM of int8_gemm_madd_kernel.h on 512-bit registers, for CPUs with
// AVX-512BW but without VNNI (Intel Skylake-SP and -X): the same kernel as the AVX2 one, twice
// the width. Built without -mavx512vnni, so that nothing in it needs VNNI.
#include <cstring>

#include "vec_avx512.h"

namespace prunq::cpu::avx512 {
namespace {

// 8 channels x 4 k of w as int16 per register. Tiles of 6 rows x 4 registers keep 24
// accumulators, 4 of w, a broadcast of x and a product in the 32 zmm registers; a row alone
// takes the whole panel (8 registers, 64 channels).
struct Madd {
  using Reg = __m512i;
  static constexpr int kChannels = 8, kRows = 6, kRegs = 4, kRegsOneRow = 8;
  static Reg zero() { return _mm512_setzero_si512(); }
  static Reg load_w(const int8_t* p) {
    return _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static Reg broadcast_x(const int16_t* p) {
    int64_t four;
    std::memcpy(&four, p, 8);
    return _mm512_set1_epi64(four);
  }
  static Reg madd(Reg acc, Reg x, Reg w) { return _mm512_add_epi32(acc, _mm512_madd_epi16(x, w)); }
  static Reg load(const int32_t* p) { return _mm512_loadu_si512(p); }
  static void store(int32_t* p, Reg r) { _mm512_storeu_si512(p, r); }
  static __m512 fold(const int32_t* lanes) {
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const Reg lo = load(lanes), hi = load(lanes + 16);
    return _mm512_cvtepi32_ps(
        _mm512_add_epi32(_mm512_permutex2var_epi32(lo, even, hi), _mm512_permutex2var_epi32(lo, odd, hi)));
  }
};

}  // namespace
}  // namespace prunq::cpu::avx512

#define PRUNQ_ISA avx512
#include "gelu_kernel.h"
#include "int8_gemm_madd_kernel.h"

namespace prunq::cpu {

void int8_gemm_madd_avx512bw(const Int8GemmArgs& a) { avx512::madd_gemm(a); }

}  // namespace prunq::cpu
