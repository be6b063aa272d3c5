// The weight-only GEMM for bf16 activations on the VNNI packing of w (pack_int8_vnni), which
// modules make once: panels of 64 channels, and in a panel, for each group of 4 k, 4 lines of
// 16 channels x 4 k. vdpbf16ps multiplies pairs of bf16, so a line converts to two registers:
// `lo` holds channels 0-7 and `hi` 8-15, dword 2c + p holding channel c's k pair p (k 4g + 2p and
// 4g + 2p + 1). Against a row's four values of the group broadcast as one qword, lane 2c + p of an
// accumulator collects channel c's products of parity p; the epilogue adds the two. Unlike the
// kernel on plain w, a register tile here covers 16 channels per accumulator and needs no
// reduction along K, and x is read 8 bytes per row and group rather than a register per row.
#include <algorithm>
#include <cstring>

#include "int8_gemm.h"
#include "padded_rows.h"
#include "vec_avx512.h"

namespace prunq::cpu::avx512 {
namespace {

constexpr int kLineChannels = 16;
constexpr int64_t kGroupBytes = kVnniPanel * 4;

struct Line {
  __m512bh lo, hi;
};

inline Line convert_line(const int8_t* p) {
  auto quarter = [p](int q) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * q))));
  };
  return {_mm512_cvtne2ps_pbh(quarter(1), quarter(0)), _mm512_cvtne2ps_pbh(quarter(3), quarter(2))};
}

// Channel sums of a line from its lo and hi accumulators: lanes 2c and 2c + 1 added.
inline __m512 fold(__m512 lo, __m512 hi) {
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
  return _mm512_add_ps(_mm512_permutex2var_ps(lo, even, hi), _mm512_permutex2var_ps(lo, odd, hi));
}

// sums[i][16 l + c] = sum_k x[i, k] * w[line l, channel c] for MR rows of x (row stride ldx, K
// padded to 4 * groups) and NL lines of a panel starting at `w`. Prefetches the 64-byte lines
// [0, prefetch_lines) from `prefetch`, spread over the loop. Not inlined: inlined into the driver,
// a 12-row tile of this kind had its accumulators stored to the stack on every group (GCC 12).
template <int MR, int NL>
__attribute__((noinline)) void line_tile(const bf16* x, int64_t ldx, const int8_t* w, int64_t groups,
                                         float sums[][NL * kLineChannels], const int8_t* prefetch,
                                         int64_t prefetch_lines) {
  __m512 c[MR][2 * NL];
  for (auto& row : c)
    for (auto& v : row) v = _mm512_setzero_ps();
  const int64_t lines_per_group = groups ? (prefetch_lines + groups - 1) / groups : 0;
  int64_t line = 0;
  for (int64_t g = 0; g < groups; ++g) {
    for (int64_t i = 0; i < lines_per_group && line < prefetch_lines; ++i, ++line)
      _mm_prefetch(reinterpret_cast<const char*>(prefetch + line * 64), _MM_HINT_T1);
    Line l[NL];
    for (int j = 0; j < NL; ++j) l[j] = convert_line(w + g * kGroupBytes + j * 64);
    for (int i = 0; i < MR; ++i) {
      int64_t group_of_x;  // x[i, 4g .. 4g + 3]
      std::memcpy(&group_of_x, x + i * ldx + 4 * g, 8);
      const __m512bh xv = (__m512bh)_mm512_set1_epi64(group_of_x);
      for (int j = 0; j < NL; ++j) {
        c[i][2 * j] = _mm512_dpbf16_ps(c[i][2 * j], xv, l[j].lo);
        c[i][2 * j + 1] = _mm512_dpbf16_ps(c[i][2 * j + 1], xv, l[j].hi);
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NL; ++j) _mm512_storeu_ps(sums[i] + j * kLineChannels, fold(c[i][2 * j], c[i][2 * j + 1]));
}

template <int kTileRows, int kTileLines>
void weight_only_packed(const WeightOnlyArgs& a) {
  constexpr int kTileChannels = kTileLines * kLineChannels;
  const int64_t kp = vnni_padded_k(a.k), groups = kp / 4;
  const int64_t ldx = kp + 32;  // one cache line past a multiple of 64 bytes: rows in different L1 sets
  const AlignedRows<bf16> xp = padded_rows<bf16>(static_cast<const bf16*>(a.x), a.m, a.k, kp, ldx, a.num_threads);
  auto* out = static_cast<bf16*>(a.out);
  const int64_t panels = vnni_padded_n(a.n) / kVnniPanel;
  const int64_t panel_bytes = kVnniPanel * kp;
  const int64_t min_panels = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, a.m * kp * kVnniPanel));
  parallel_for(panels, a.num_threads, min_panels, [&](int64_t p_begin, int64_t p_end) {
    for (int64_t p = p_begin; p < p_end; ++p) {
      const int8_t* panel = a.w + p * panel_bytes;
      const int64_t n0 = p * kVnniPanel;
      const int line_sets = int((std::min<int64_t>(kVnniPanel, a.n - n0) + kTileChannels - 1) / kTileChannels);
      const int64_t next_lines = p + 1 < p_end ? panel_bytes / 64 : 0;
      const int64_t tiles = (a.m + kTileRows - 1) / kTileRows * line_sets;
      const int64_t lines_per_tile = (next_lines + tiles - 1) / std::max<int64_t>(tiles, 1);
      int64_t tile = 0;
      for (int64_t r = 0; r < a.m; r += kTileRows) {
        const int rows = int(std::min<int64_t>(kTileRows, a.m - r));
        for (int s = 0; s < line_sets; ++s) {
          alignas(64) float sums[kTileRows][kTileChannels];
          const int64_t first_line = std::min(next_lines, tile++ * lines_per_tile);
          const int64_t lines = std::min(next_lines - first_line, lines_per_tile);
          with_rows<kTileRows>(rows, [&](auto mr) {
            line_tile<mr, kTileLines>(xp.get() + r * ldx, ldx, panel + s * kTileLines * 64, groups, sums,
                                     panel + panel_bytes + first_line * 64, lines);
          });
          const int64_t c0 = n0 + s * kTileChannels;
          for (int j = 0; j < kTileChannels && c0 + j < a.n; j += Vec::width) {
            const int n = int(std::min<int64_t>(Vec::width, a.n - c0 - j));
            const Vec scale = Vec::load(a.w_scale + c0 + j, n);
            const Vec bias = a.bias ? Vec::load(a.bias + c0 + j, n) : Vec::zero();
            for (int i = 0; i < rows; ++i) fma(Vec::load(sums[i] + j), scale, bias).store(out + (r + i) * a.n + c0 + j, n);
          }
        }
      }
    }
  });
}


}  // namespace
}  // namespace prunq::cpu::avx512

namespace prunq::cpu {

// Tiles of 12 rows and one line convert each weight half as often as tiles of 6 rows and two
// lines, but their remainder tiles are short chains of dot products; they are used from two full
// tiles of rows on (measured on a Zen 5: 2% to 10% faster from M = 64 on, 13% to 15% slower at M = 4 and 16).
void int8_weight_only_packed_avx512bf16(const WeightOnlyArgs& a) {
  if (a.m >= 24) return avx512::weight_only_packed<12, 1>(a);
  avx512::weight_only_packed<6, 2>(a);
}

}  // namespace prunq::cpu
