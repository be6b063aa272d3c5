// The INT8 GEMM on the VNNI packing of w (pack_int8_vnni) for AVX2 when every weight lies in
// [-kNarrowWeightMax, kNarrowWeightMax] (8), as the 4-bit weights of int8:w4 modules do. vpmaddubsw multiplies x
// made unsigned (x + 128, at most 255) by w and adds each pair of products into an int16 lane: a
// lane then holds at most 2 * 255 * 8 = 4080, so the lanes of kGroupsInInt16 = 8 groups of 4 k
// add up in int16 without saturating (32640), and one vpmaddwd against ones per 8 groups widens
// them into int32. That is one multiply instruction and an eighth per 32 multiply-adds, where the
// exact path for all int8 weights (int8_gemm_madd_kernel.h) takes two. The products carry
// 128 * sum_k w[n, k], which the epilogue removes with colsum.
#include <algorithm>
#include <cstring>

#include "vec_avx2.h"
#define PRUNQ_ISA avx2
#include "gelu_kernel.h"
#include "int8_panel_loops.h"

namespace prunq::cpu::avx2 {
namespace {

constexpr int kGroupsInInt16 = 8;
static_assert(kGroupsInInt16 * 2 * 255 * kNarrowWeightMax <= 32767, "int16 sums must not saturate");
constexpr int kChannels = 8;  // per register: 8 channels x 4 k of w
constexpr int kRows = 4;  // a tile: 4 rows x 2 registers; 5 and 6 rows spilled sums to the stack (GCC 12)
constexpr int kRegs = 2, kRegsOneRow = 8;  // a row alone: the whole panel, 8 registers
constexpr int64_t kBlockGroups = 128;      // the block of a panel the row tiles share: 32 KB, in L1
constexpr int64_t kRowPanelBytes = 512 << 10;  // rows of x kept in L2 while the panels stream past
constexpr int64_t kPrefetchBytes = 4096;  // how far ahead the first tile of a panel asks for w

// Adds groups [g0, g1) of an MR x NR tile into `acc` (int32 per channel, row stride kVnniPanel);
// `first` stores instead of adding; `prefetch`: the tile is its panel's first.
template <int MR, int NR>
__attribute__((noinline)) void narrow_tile(const uint8_t* x, int64_t ldx, const int8_t* w, int64_t g0, int64_t g1,
                                           bool first, bool prefetch, int32_t* acc) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t c0 = g0; c0 == g0 || c0 < g1; c0 += kGroupsInInt16) {  // once for g0 == g1 (K = 0): zeros
    const int64_t c1 = std::min(g1, c0 + kGroupsInInt16);
    __m256i s[MR][NR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) s[i][j] = _mm256_setzero_si256();
    for (int64_t g = c0; g < c1; ++g) {
      const int8_t* wg = w + g * kVnniPanel * 4;
      if (prefetch)
        for (int line = 0; line < 4; ++line)
          _mm_prefetch(reinterpret_cast<const char*>(wg) + kPrefetchBytes + 64 * line, _MM_HINT_T0);
      __m256i wv[NR];
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) wv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + j * kChannels * 4));
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        int32_t four;
        std::memcpy(&four, x + i * ldx + 4 * g, 4);
        const __m256i xb = _mm256_set1_epi32(four);
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) s[i][j] = _mm256_add_epi16(s[i][j], _mm256_maddubs_epi16(xb, wv[j]));
      }
    }
    const bool store = first && c0 == g0;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) {
        __m256i* out = reinterpret_cast<__m256i*>(acc + i * kVnniPanel + j * kChannels);
        const __m256i wide = _mm256_madd_epi16(s[i][j], ones);
        _mm256_storeu_si256(out, store ? wide : _mm256_add_epi32(_mm256_loadu_si256(out), wide));
      }
  }
}

// y for rows [m0, m0 + rows) and the channels of panel p.
template <class O>
void narrow_epilogue(const int32_t* acc, int64_t m0, int64_t rows, int64_t p, const Int8GemmArgs& a) {
  const int64_t n0 = p * kVnniPanel;
  const int cols = int(std::min<int64_t>(kVnniPanel, a.n - n0));
  for (int64_t i = 0; i < rows; ++i) {
    O* out = static_cast<O*>(a.out) + (m0 + i) * a.n + n0;
    const Vec x_scale = Vec::splat(a.x_scale[m0 + i]);
    for (int j = 0; j < cols; j += Vec::width) {
      const __m256i shift = _mm256_slli_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.w_colsum + n0 + j)), 7);
      const __m256i sums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + i * kVnniPanel + j));
      const Vec dot{_mm256_cvtepi32_ps(_mm256_sub_epi32(sums, shift))};  // colsum is padded to whole panels
      const int n = std::min(Vec::width, cols - j);
      const Vec b = a.bias ? Vec::load(a.bias + n0 + j, n) : Vec::zero();
      const Vec y = activate(fma(dot * x_scale, Vec::load(a.w_scale + n0 + j, n), b), a.activation);
      if (n == Vec::width) y.store(out + j); else y.store(out + j, n);
    }
  }
}

template <class O>
void narrow_gemm_typed(const Int8GemmArgs& a) {
  const int64_t kp = vnni_padded_k(a.k), groups = kp / 4;
  const int64_t ldx = (kp + 63) / 64 * 64 + 64;  // rows in different L1 sets
  const AlignedRows<int8_t> x = padded_rows<int8_t>(a.x, a.m, a.k, kp, ldx, a.num_threads);
  const uint8_t* xu = reinterpret_cast<const uint8_t*>(x.get());
  parallel_for(a.m, a.num_threads, 1 + (int64_t(1) << 16) / kp, [&](int64_t b, int64_t e) {
    const __m256i flip = _mm256_set1_epi8(char(0x80));  // x + 128 as unsigned bytes
    for (int64_t i = b * ldx; i < e * ldx; i += 32) {
      __m256i* row = reinterpret_cast<__m256i*>(x.get() + i);
      _mm256_store_si256(row, _mm256_xor_si256(_mm256_load_si256(row), flip));
    }
  });
  const int64_t row_panel = std::max<int64_t>(kRows, kRowPanelBytes / ldx / kRows * kRows);
  const int64_t min_cells =  // as the int16 kernel: ~256K multiply-adds per thread before splitting pays
      std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, std::min<int64_t>(a.m, kRows) * kp * kVnniPanel));
  panel_loops<kRows>(a, groups, kBlockGroups, row_panel, kVnniPanel, min_cells,
                     [&](auto rows, int64_t r, const int8_t* panel, int64_t used, int64_t g, int64_t g_end,
                         bool first_rows, int32_t* acc) {
                       constexpr int NR = decltype(rows)::value == 1 ? kRegsOneRow : kRegs;
                       for (int64_t c = 0; c < used; c += NR * kChannels)
                         narrow_tile<rows, NR>(xu + r * ldx, ldx, panel + c * 4, g, g_end, g == 0,
                                               first_rows && c == 0, acc + c);
                     },
                     [&](const int32_t* acc, int64_t m0, int64_t rows, int64_t p) {
                       narrow_epilogue<O>(acc, m0, rows, p, a);
                     });
}

}  // namespace
}  // namespace prunq::cpu::avx2

namespace prunq::cpu {

void int8_gemm_narrow_avx2(const Int8GemmArgs& a) {
  switch (a.out_dtype) {
    case DType::f32: return avx2::narrow_gemm_typed<float>(a);
    case DType::bf16: return avx2::narrow_gemm_typed<bf16>(a);
    case DType::f16: return avx2::narrow_gemm_typed<f16>(a);
  }
}

}  // namespace prunq::cpu
