// The loop nest of the INT8 GEMMs on the VNNI packing of w (pack_int8_vnni) without VNNI: the
// grid of row tiles x panels split among threads (parallel_for_2d); each thread's rows in row
// panels that stay in L2 while the panels stream past; per panel, K in blocks of block_groups
// groups (a block of the panel the row tiles share stays in L1), row tiles of up to MR rows. A row
// panel's sums wait in `acc` (lanes int32 per row) until the panel's epilogue.
//   tiles(rows, r, panel, used, g, g_end, first_rows, acc_rows)  adds groups [g, g_end) of rows
//       [r, r + rows) (rows a std::integral_constant) and the `used` channels of `panel` into
//       acc_rows (g == 0: from zero; g == g_end happens once, for K = 0); first_rows: the row
//       panel's first tile
//   epilogue(acc, m0, rows, p)  y for rows [m0, m0 + rows) and the channels of panel p
// panel_epilogue writes y from the channel sums. Included by an instruction set's kernel after its
// vec header and gelu_kernel.h, with PRUNQ_ISA naming its namespace.
#pragma once
#include <algorithm>
#include <vector>

#include "../common/parallel.h"
#include "int8_gemm.h"
#include "padded_rows.h"

namespace prunq::cpu::PRUNQ_ISA {
namespace {

template <int MR, class Tiles, class Epilogue>
void panel_loops(const Int8GemmArgs& a, int64_t groups, int64_t block_groups, int64_t row_panel, int64_t lanes,
                 int64_t min_cells, Tiles&& tiles, Epilogue&& epilogue) {
  const int64_t panels = vnni_padded_n(a.n) / kVnniPanel;
  parallel_for_2d(a.m, MR, panels, a.num_threads, min_cells, [&](int64_t r_begin, int64_t r_end, int64_t p_begin,
                                                                 int64_t p_end) {
    std::vector<int32_t> acc(size_t(std::min(r_end - r_begin, row_panel)) * lanes);
    for (int64_t m0 = r_begin; m0 < r_end; m0 += row_panel) {
      const int64_t m1 = std::min(r_end, m0 + row_panel);
      for (int64_t p = p_begin; p < p_end; ++p) {
        const int8_t* panel = a.w + p * kVnniPanel * groups * 4;
        const int64_t used = std::min<int64_t>(kVnniPanel, a.n - p * kVnniPanel);
        for (int64_t g = 0; g == 0 || g < groups; g += block_groups) {  // once for K = 0: zero sums
          const int64_t g_end = std::min(groups, g + block_groups);
          for (int64_t r = m0; r < m1; r += MR)
            with_rows<MR>(int(std::min<int64_t>(MR, m1 - r)), [&](auto rows) {
              tiles(rows, r, panel, used, g, g_end, r == m0, acc.data() + (r - m0) * lanes);
            });
        }
        epilogue(acc.data(), m0, m1 - m0, p);
      }
    }
  });
}

// y = activation(dot * x_scale * w_scale + bias) for rows [m0, m0 + rows) and the channels of panel
// p, dot(i, j) giving the sums of the panel's channels [j, j + Vec::width) for row m0 + i as fp32
// (channels past the panel's last are computed and not stored).
template <class O, class Dot>
void panel_epilogue(const Int8GemmArgs& a, int64_t m0, int64_t rows, int64_t p, Dot&& dot) {
  const int64_t n0 = p * kVnniPanel;
  const int cols = int(std::min<int64_t>(kVnniPanel, a.n - n0));
  for (int64_t i = 0; i < rows; ++i) {
    O* out = static_cast<O*>(a.out) + (m0 + i) * a.n + n0;
    const Vec x_scale = Vec::splat(a.x_scale[m0 + i]);
    for (int j = 0; j < cols; j += Vec::width) {
      const Vec d = dot(i, j);
      if (cols - j >= Vec::width) {  // whole registers: a partial load or store goes through a buffer
        const Vec b = a.bias ? Vec::load(a.bias + n0 + j) : Vec::zero();
        activate(fma(d * x_scale, Vec::load(a.w_scale + n0 + j), b), a.activation).store(out + j);
      } else {
        const int n = cols - j;
        const Vec b = a.bias ? Vec::load(a.bias + n0 + j, n) : Vec::zero();
        activate(fma(d * x_scale, Vec::load(a.w_scale + n0 + j, n), b), a.activation).store(out + j, n);
      }
    }
  }
}

}  // namespace
}  // namespace prunq::cpu::PRUNQ_ISA
