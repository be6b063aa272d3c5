// AVX2: popcount by nibble table (vpshufb), counted per byte over up to 31 steps (8 at most each)
// before vpsadbw sums the bytes; BinaryConnect
// multiplies x by the 0/1 floats of each weight byte, looked up in a 256-entry table.
#include <immintrin.h>

#include <array>

#include "binary.h"
#include "vec_avx2.h"

namespace prunq::cpu::avx2 {
namespace {

using ByteTable = std::array<std::array<float, 8>, 256>;
// constexpr, so that no code of this AVX2 file runs at load time on a CPU without AVX2.
alignas(32) constexpr ByteTable kBitsAsFloats = [] {
  ByteTable t{};
  for (int byte = 0; byte < 256; ++byte)
    for (int i = 0; i < 8; ++i) t[byte][i] = float((byte >> i) & 1);
  return t;
}();

struct Bits {
  static constexpr int kWords = 8, kMR = 2, kNR = 4;
  static constexpr int64_t kStepsPerCount = 31;  // byte counts: 31 x 8 < 256
  using Reg = __m256i;
  using Count = __m256i;
  using Sum = __m256;
  static Reg load(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static Reg load_partial(const uint32_t* p, int n) {
    return _mm256_maskload_epi32(reinterpret_cast<const int*>(p), lanes_below(n));
  }
  static Reg valid_bits(int n, uint32_t last) {
    return _mm256_blendv_epi8(lanes_below(n), _mm256_set1_epi32(int(last)),
                              _mm256_cmpeq_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(n - 1)));
  }
  static Reg and_(Reg a, Reg b) { return _mm256_and_si256(a, b); }
  static Count zero_count() { return _mm256_setzero_si256(); }
  static Count add_popcount_xor(Count c, Reg a, Reg b) {
    const __m256i nibble_counts = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                                   0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i differ = _mm256_xor_si256(a, b);
    const __m256i counts = _mm256_add_epi8(
        _mm256_shuffle_epi8(nibble_counts, _mm256_and_si256(differ, low)),
        _mm256_shuffle_epi8(nibble_counts, _mm256_and_si256(_mm256_srli_epi16(differ, 4), low)));
    return _mm256_add_epi8(c, counts);
  }
  static int64_t total(Count c) {
    alignas(32) int64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_sad_epu8(c, _mm256_setzero_si256()));
    return lanes[0] + lanes[1] + lanes[2] + lanes[3];
  }
  static uint32_t sign_word(const float* x) {
    uint32_t word = 0;
    for (int q = 0; q < 4; ++q)
      word |= uint32_t(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + 8 * q), _mm256_setzero_ps(), _CMP_GE_OQ)))
              << (8 * q);
    return word;
  }
  static Sum zero_sum() { return _mm256_setzero_ps(); }
  static Sum add_where_set(Sum s, const float* x, uint32_t word) {
    for (int q = 0; q < 4; ++q)
      s = _mm256_fmadd_ps(_mm256_loadu_ps(x + 8 * q), _mm256_load_ps(kBitsAsFloats[(word >> (8 * q)) & 0xff].data()), s);
    return s;
  }
  static float total(Sum s) { return Vec{s}.sum(); }
  static bool many_rows_gemm(const BinaryGemmArgs&) { return false; }
  static bool table_connect(const BinaryLinearArgs&) { return false; }

 private:
  static __m256i lanes_below(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
};

}  // namespace
}  // namespace prunq::cpu::avx2

#define PRUNQ_ISA avx2
#include "binary_kernel.h"

namespace prunq::cpu {
void pack_bits_avx2(const void* x, DType dtype, int64_t m, int64_t k, int64_t words, uint32_t* bits, float* alpha,
                    int num_threads) {
  avx2::pack_bits(x, dtype, m, k, words, bits, alpha, num_threads);
}
void binary_gemm_avx2(const BinaryGemmArgs& args) { avx2::binary_gemm(args); }
void binary_linear_avx2(const BinaryLinearArgs& args) { avx2::binary_linear(args); }
}  // namespace prunq::cpu
