// 2:4 GEMM for many rows of bf16 x on vdpbf16ps (AVX512_BF16): the multiply-add of dense bf16
// GEMMs, two products per fp32 lane. Lanes are rows of x; a lane's pair is the two x that a 2:4
// group's kept values meet. Which two depends on the group's positions (one of six pairs), so the
// panel holds, for each group of four k, all six pairs of x of every row of the tile,
// interleaved as vdpbf16ps wants them; a channel's two kept values of the group, adjacent in
// memory, are broadcast as one 32-bit word against the pair its positions pick. One instruction
// covers a group of 16 rows where the fp32 panel kernel spends two FMAs.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "../common/parallel.h"
#include "padded_rows.h"
#include "sparse_tile_output.h"
#include "sparse24.h"

namespace prunq::cpu {
namespace {

// The six position pairs (first < second) in the order of the panel, and each 4-bit group code's
// place among them (codes with first >= second cannot occur in a checked packing).
constexpr int kPairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
constexpr int8_t kPairOfCode[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0, 2, 4, 5, 0};
constexpr int64_t kPanelBytes = 24 << 10;  // a K block of the panel: half of a 48 KB L1

// The channel's kept pair of group g as two bf16 in one 32-bit word: bf16 values as they lie in
// memory; int8 values through a table (every int8 is exact in bf16).
inline uint32_t value_pair(const bf16* v, int64_t g) {
  uint32_t pair;
  std::memcpy(&pair, v + 2 * g, 4);
  return pair;
}
// The bf16 bits of an int8 value v = m * 2^e (m in 1..128 held in 8 bits, so exact). constexpr:
// a table filled at load time would run code of this AVX-512 file on every CPU.
constexpr uint16_t int8_as_bf16_bits(int v) {
  if (v == 0) return 0;
  const unsigned magnitude = unsigned(v < 0 ? -v : v);
  int e = 0;
  while (magnitude >> (e + 1)) ++e;
  const unsigned fraction = ((magnitude << 7) >> e) & 0x7F;
  return uint16_t((v < 0 ? 0x8000u : 0u) | unsigned(127 + e) << 7 | fraction);
}
static_assert(int8_as_bf16_bits(1) == 0x3F80 && int8_as_bf16_bits(-3) == 0xC040 &&
              int8_as_bf16_bits(-128) == 0xC300 && int8_as_bf16_bits(127) == 0x42FE);
constexpr std::array<uint16_t, 256> kInt8AsBf16 = [] {
  std::array<uint16_t, 256> table{};
  for (int i = 0; i < 256; ++i) table[i] = int8_as_bf16_bits(int8_t(i));
  return table;
}();
inline uint32_t value_pair(const int8_t* v, int64_t g) {
  return uint32_t(kInt8AsBf16[uint8_t(v[2 * g])]) | uint32_t(kInt8AsBf16[uint8_t(v[2 * g + 1])]) << 16;
}

template <int R, class V>
void bf16_tiles(const Sparse24Args& a, const bf16* x, int64_t kp) {
  constexpr int tile = 16 * R;
  const int64_t groups = kp / 4;
  const int64_t block = std::max<int64_t>(2, kPanelBytes / (6 * tile * 4) / 2 * 2);  // groups per K block
  const auto* values = static_cast<const V*>(a.values);
  auto* out = static_cast<bf16*>(a.out);
  parallel_for(a.n, a.num_threads, 16, [&](int64_t n0, int64_t n1) {
    std::vector<uint32_t> panel(size_t(block * 6 * tile));
    std::vector<float> sums(size_t((n1 - n0) * tile));
    for (int64_t r0 = 0; r0 < a.m; r0 += tile) {
      const int rows = int(std::min<int64_t>(tile, a.m - r0));
      for (int64_t g0 = 0; g0 < groups; g0 += block) {
        const int64_t g1 = std::min(groups, g0 + block);
        for (int i = 0; i < tile; ++i) {  // rows past the last repeat it; their sums are not written
          const bf16* row = x + (r0 + std::min(i, rows - 1)) * kp;
          for (int64_t g = g0; g < g1; ++g)
            for (int p = 0; p < 6; ++p)
              panel[((g - g0) * 6 + p) * tile + i] =
                  uint32_t(row[4 * g + kPairs[p][0]].bits) | uint32_t(row[4 * g + kPairs[p][1]].bits) << 16;
        }
        for (int64_t n = n0; n < n1; ++n) {
          if (n + 2 < n1) {  // the channel after next: its values and positions come from L3 or memory
            const auto* ahead = reinterpret_cast<const char*>(values + (n + 2) * (kp / 2) + 2 * g0);
            for (int64_t b = 0; b < (g1 - g0) * 2 * int64_t(sizeof(V)); b += 64) __builtin_prefetch(ahead + b);
            __builtin_prefetch(a.meta + (n + 2) * (kp / 8) + g0 / 2);
          }
          const V* v = values + n * (kp / 2);
          const uint8_t* meta = a.meta + n * (kp / 8);
          float* s = sums.data() + (n - n0) * tile;
          __m512 acc[R], acc2[R];
          for (int r = 0; r < R; ++r) {
            acc[r] = g0 == 0 ? _mm512_setzero_ps() : _mm512_loadu_ps(s + 16 * r);
            acc2[r] = _mm512_setzero_ps();
          }
          int64_t g = g0;
          for (; g + 2 <= g1; g += 2) {  // two groups (one meta byte) a step, two accumulator sets
            const int code = meta[g / 2];
            const __m512bh w0 = (__m512bh)_mm512_set1_epi32(int(value_pair(v, g)));
            const __m512bh w1 = (__m512bh)_mm512_set1_epi32(int(value_pair(v, g + 1)));
            const uint32_t* p0 = panel.data() + ((g - g0) * 6 + kPairOfCode[code & 0xF]) * tile;
            const uint32_t* p1 = panel.data() + ((g + 1 - g0) * 6 + kPairOfCode[code >> 4]) * tile;
            for (int r = 0; r < R; ++r) {
              acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_loadu_si512(p0 + 16 * r), w0);
              acc2[r] = _mm512_dpbf16_ps(acc2[r], (__m512bh)_mm512_loadu_si512(p1 + 16 * r), w1);
            }
          }
          for (int r = 0; r < R; ++r) _mm512_storeu_ps(s + 16 * r, _mm512_add_ps(acc[r], acc2[r]));
        }
      }
      write_tile(sums.data(), tile, rows, n1 - n0, a.w_scale ? a.w_scale + n0 : nullptr, a.bias ? a.bias + n0 : nullptr,
                 out + r0 * a.n + n0, a.n);
    }
  });
}

template <class V>
void bf16_rows(const Sparse24Args& a) {
  const int64_t kp = (a.k + 7) / 8 * 8;
  const AlignedRows<bf16> x = padded_rows<bf16>(static_cast<const bf16*>(a.x), a.m, a.k, kp, kp, a.num_threads);
  if (a.m <= 16) return bf16_tiles<1, V>(a, x.get(), kp);
  if (a.m <= 32) return bf16_tiles<2, V>(a, x.get(), kp);
  bf16_tiles<4, V>(a, x.get(), kp);
}

}  // namespace

bool sparse24_linear_avx512bf16(const Sparse24Args& a) {
  if (a.dtype != DType::bf16 || a.m < 16) return false;
  if (a.value_type == Values::bf16) return bf16_rows<bf16>(a), true;
  if (a.value_type == Values::i8) return bf16_rows<int8_t>(a), true;
  return false;
}

}  // namespace prunq::cpu
