// AVX2: a chunk is 8 values (4 groups, 16 k of x). x is arranged so that each 128-bit lane of
// the chunk's two registers of x holds one group: [group 0 | group 2] and [group 1 | group 3]; an
// in-lane vpermilps then picks every value's x by its 2-bit position as it stands in meta, and one
// blend joins the two.
#include <cstring>

#include "sparse24.h"
#include "vec_avx2.h"

namespace prunq::cpu::avx2 {
namespace {

struct Gather {
  using Reg = __m256;
  static constexpr int kChains = 4;
  static constexpr int kValues = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  // Swaps the second and third quarters of each whole chunk of a row of x (see above).
  static void arrange(float* x, int64_t kp) {
    for (int64_t c = 0; c + 2 * kValues <= kp; c += 2 * kValues) {
      const __m128 second = _mm_loadu_ps(x + c + 4);
      _mm_storeu_ps(x + c + 4, _mm_loadu_ps(x + c + 8));
      _mm_storeu_ps(x + c + 8, second);
    }
  }
  // Lane i: value i's position in bits 0-1 (the 2 bits at 2i of the chunk's two meta bytes; the
  // bits above are ignored by vpermilps).
  static __m256i positions(const uint8_t* meta) {
    uint16_t bits;
    std::memcpy(&bits, meta, 2);
    return _mm256_srlv_epi32(_mm256_set1_epi16(short(bits)), _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14));
  }
  static Reg pick(const float* x, __m256i pos) {
    const __m256 even = _mm256_permutevar_ps(_mm256_loadu_ps(x), pos);     // groups 0 and 2
    const __m256 odd = _mm256_permutevar_ps(_mm256_loadu_ps(x + 8), pos);  // groups 1 and 3
    return _mm256_blend_ps(even, odd, 0xCC);
  }
  static Reg load_values(const float* v) { return _mm256_loadu_ps(v); }
  static Reg load_values(const bf16* v) { return Vec::load(v).v; }
  static Reg load_values(const f16* v) { return Vec::load(v).v; }
  static Reg load_values(const int8_t* v) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(v))));
  }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static float sum(Reg r) { return Vec{r}.sum(); }
};

}  // namespace
}  // namespace prunq::cpu::avx2

#define PRUNQ_ISA avx2
#include "sparse24_kernel.h"

namespace prunq::cpu {
void sparse24_linear_avx2(const Sparse24Args& a) { avx2::sparse24_linear(a); }
}  // namespace prunq::cpu
