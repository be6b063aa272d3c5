// AVX-512: a chunk is 16 values (8 groups, 32 k of x); vpermt2ps picks each value's x from the
// chunk's 32 floats in one instruction.
#include <cstring>

#include "sparse24.h"
#include "vec_avx512.h"

namespace prunq::cpu::avx512 {
namespace {

struct Gather {
  using Reg = __m512;
  static constexpr int kChains = 4;
  static constexpr int kValues = 16;
  static Reg zero() { return _mm512_setzero_ps(); }
  static void arrange(float*, int64_t) {}  // x as it lies
  // Lane i: value i's position (2 bits at 2i of the chunk's four meta bytes) plus its group's
  // first k: the index of its x within the chunk.
  static __m512i positions(const uint8_t* meta) {
    uint32_t bits;
    std::memcpy(&bits, meta, 4);
    const __m512i shift = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i first = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
    return _mm512_add_epi32(_mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(int(bits)), shift),
                                             _mm512_set1_epi32(3)), first);
  }
  static Reg pick(const float* x, __m512i pos) {
    return _mm512_permutex2var_ps(_mm512_loadu_ps(x), pos, _mm512_loadu_ps(x + 16));
  }
  static Reg load_values(const float* v) { return _mm512_loadu_ps(v); }
  static Reg load_values(const bf16* v) { return Vec::load(v).v; }
  static Reg load_values(const f16* v) { return Vec::load(v).v; }
  static Reg load_values(const int8_t* v) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(v))));
  }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static float sum(Reg r) { return _mm512_reduce_add_ps(r); }
};

}  // namespace
}  // namespace prunq::cpu::avx512

#define PRUNQ_ISA avx512
#include "sparse24_kernel.h"

namespace prunq::cpu {
void sparse24_linear_avx512(const Sparse24Args& a) { avx512::sparse24_linear(a); }
}  // namespace prunq::cpu
