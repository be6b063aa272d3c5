// AVX2: a chunk is 8 values (4 groups, 16 k of x). Each value's x is picked by vpermps from the
// 8 floats of its half of the chunk, the two halves blended.
#include <cstring>

#include "sparse24.h"
#include "vec_avx2.h"

namespace prunq::cpu::avx2 {
namespace {

struct Gather {
  using Reg = __m256;
  static constexpr int kValues = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  // Lane i: value i's position (2 bits at 2i of the chunk's two meta bytes), plus 4 for the
  // odd groups: the index of its x within its half of the chunk.
  static __m256i positions(const uint8_t* meta) {
    uint16_t bits;
    std::memcpy(&bits, meta, 2);
    const __m256i shifted = _mm256_srlv_epi32(_mm256_set1_epi32(bits), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
    return _mm256_add_epi32(_mm256_and_si256(shifted, _mm256_set1_epi32(3)), _mm256_setr_epi32(0, 0, 4, 4, 0, 0, 4, 4));
  }
  static Reg pick(const float* x, __m256i pos) {
    const __m256 lo = _mm256_permutevar8x32_ps(_mm256_loadu_ps(x), pos);
    const __m256 hi = _mm256_permutevar8x32_ps(_mm256_loadu_ps(x + 8), pos);
    return _mm256_blend_ps(lo, hi, 0xF0);
  }
  static Reg load_values(const float* v) { return _mm256_loadu_ps(v); }
  static Reg load_values(const bf16* v) { return Vec::load(v).v; }
  static Reg load_values(const f16* v) { return Vec::load(v).v; }
  static Reg load_values(const int8_t* v) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v))));
  }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static float sum(Reg r) { return Vec{r}.sum(); }
};

}  // namespace
}  // namespace prunq::cpu::avx2

#define PRUNQ_ISA avx2
#include "sparse24_kernel.h"

namespace prunq::cpu {
void sparse24_linear_avx2(const Sparse24Args& a) { avx2::sparse24_linear(a); }
}  // namespace prunq::cpu
