// AVX2: a chunk is 8 values (4 groups, 16 k of x). x is arranged so that each 128-bit lane of
// the chunk's two registers of x holds one group: [group 0 | group 2] and [group 1 | group 3]; an
// in-lane byte shuffle then picks every value's x by its 2-bit position, and one blend joins the
// two. The shuffle's control comes from a table of the 256 meta bytes: vpshufb, not vpermilps on
// positions shifted out of meta, because AMD Zen 1 runs variable vpermilps and vpsrlvd at a
// fraction of vpshufb's rate (the chunk took 1.6x to 2x as long there; measured in RESULTS).
#include <array>

#include "sparse24.h"
#include "vec_avx2.h"

namespace prunq::cpu::avx2 {
namespace {

// kPickBytes[b]: the byte indices within a 128-bit lane of the 4 floats that meta byte b's four
// 2-bit positions select (one per value: value i's float starts at byte 4 * position i).
constexpr std::array<std::array<uint8_t, 16>, 256> pick_bytes() {
  std::array<std::array<uint8_t, 16>, 256> table{};
  for (int b = 0; b < 256; ++b)
    for (int i = 0; i < 4; ++i)
      for (int byte = 0; byte < 4; ++byte) table[b][4 * i + byte] = uint8_t(4 * ((b >> (2 * i)) & 3) + byte);
  return table;
}
alignas(64) constexpr auto kPickBytes = pick_bytes();

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
  // The byte shuffle for the chunk's two meta bytes: values 0-3 in the low lane, 4-7 in the high.
  static __m256i positions(const uint8_t* meta) {
    return _mm256_loadu2_m128i(reinterpret_cast<const __m128i*>(kPickBytes[meta[1]].data()),
                               reinterpret_cast<const __m128i*>(kPickBytes[meta[0]].data()));
  }
  static Reg pick(const float* x, __m256i bytes) {
    const __m256i even = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)), bytes);
    const __m256i odd = _mm256_shuffle_epi8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 8)), bytes);
    return _mm256_blend_ps(_mm256_castsi256_ps(even), _mm256_castsi256_ps(odd), 0xCC);  // groups 0, 1 | 2, 3
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
