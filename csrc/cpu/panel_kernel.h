// Sparse weight x dense activations for many rows of x, vectorised over those rows: a tile of
// kVecs * Vec::width rows is transposed into a K-major panel (panel[k] holds x[rows, k] as fp32),
// and every non-zero weight of an output channel is broadcast against its panel row, kVecs FMAs
// covering the whole tile; a skipped weight costs nothing. K is walked in blocks (panel_block),
// partial sums parked per channel between blocks. Shared by the CSR and 2:4 kernels, which
// differ only in how a channel lists its non-zeros (a `Rows` type):
//   auto row = rows.row(n);                   the non-zeros of channel n, numbered from 0
//   int64_t row.end(j, k_end);                the first non-zero from j whose column >= k_end
//   int64_t row.col(j);  float row.value(j);
//   row.prefetch(j, k_span);                  asks for the non-zeros from j over k_span columns
// Included by an instruction set's kernel header after its vec header, with PRUNQ_ISA naming
// its namespace.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../common/parallel.h"
#include "padded_rows.h"
#include "sparse_tile_output.h"

namespace prunq::cpu::PRUNQ_ISA {
namespace {

constexpr int64_t kL1PanelBytes = 24 << 10;    // a K block of the panel in half of a 48 KB L1
constexpr int64_t kWholePanelBytes = 256 << 10;  // up to this, the panel may stay whole, in L2
constexpr int64_t kNonzerosPerBlock = 48;        // enough per channel to pay for parking its sums

// The K block. Whole (each channel's non-zeros then stream in order) where the panel fits in L2
// and either one vector of rows makes the call bound by reading W, or W is so sparse that the
// panel's L2 bandwidth suffices; else the larger of an L1-sized block and one holding
// kNonzerosPerBlock of an average channel's non-zeros. (Measured on Zen 5: L1 blocks make 2:4 at
// 128 and more rows 1.3x to 1.9x faster; a whole panel makes 16 rows 1.3x to 1.9x faster.)
inline int64_t panel_block(int64_t kp, int tile, double density) {
  if (kp * tile * 4 <= kWholePanelBytes && (tile == Vec::width || density < 0.25)) return kp;
  const int64_t l1 = kL1PanelBytes / (tile * 4);
  const int64_t enough = int64_t(kNonzerosPerBlock / std::max(density, 1e-6));
  return std::min(kp, std::max<int64_t>(8, std::max(l1, enough) / 8 * 8));
}

// panel[kk * tile + i] = x[r0 + i, k0 + kk] as fp32 for kk < k1 - k0; zero for rows past `rows`
// and columns past k (the 2:4 packing pads K with zero weights).
template <class T>
void transpose_block(const T* x, int64_t ldx, int64_t k, int64_t r0, int rows, int tile, int64_t k0, int64_t k1,
                     float* panel) {
  for (int64_t kk = k0; kk < k1; ++kk) {
    float* dst = panel + (kk - k0) * tile;
    if (kk < k) {
      for (int i = 0; i < rows; ++i) dst[i] = to_float(x[(r0 + i) * ldx + kk]);
    } else {
      std::fill(dst, dst + rows, 0.f);
    }
    std::fill(dst + rows, dst + tile, 0.f);
  }
}

// acc[v] += the channel's non-zeros j in [j, end) times their panel rows. kSets partial sums per
// vector keep eight FMA chains in flight, enough to cover the FMA latency.
template <int kVecs, class Row>
void accumulate(const Row& row, int64_t j, int64_t end, const float* panel, int64_t k0, Vec acc[kVecs]) {
  constexpr int tile = kVecs * Vec::width;
  constexpr int kSets = 8 / kVecs;
  Vec part[kSets][kVecs];
  for (int v = 0; v < kVecs; ++v) part[0][v] = acc[v];
  for (int s = 1; s < kSets; ++s)
    for (int v = 0; v < kVecs; ++v) part[s][v] = Vec::zero();
  for (; j + kSets <= end; j += kSets) {
#pragma GCC unroll 8
    for (int s = 0; s < kSets; ++s) {
      const Vec w = Vec::splat(row.value(j + s));
      const float* xs = panel + (row.col(j + s) - k0) * tile;
#pragma GCC unroll 8
      for (int v = 0; v < kVecs; ++v) part[s][v] = fma(w, Vec::load(xs + v * Vec::width), part[s][v]);
    }
  }
  for (; j < end; ++j) {
    const Vec w = Vec::splat(row.value(j));
    const float* xs = panel + (row.col(j) - k0) * tile;
    for (int v = 0; v < kVecs; ++v) part[0][v] = fma(w, Vec::load(xs + v * Vec::width), part[0][v]);
  }
  for (int s = 1; s < kSets; ++s)
    for (int v = 0; v < kVecs; ++v) part[0][v] = part[0][v] + part[s][v];
  for (int v = 0; v < kVecs; ++v) acc[v] = part[0][v];
}

// out[r, n] = (x[r] . W[n]) * w_scale[n] + bias[n] for the channels [starts[p], starts[p + 1]) of
// each part p, a part per thread; x [m, k] with row stride ldx, K padded to kp (a multiple of 8);
// density: the fraction of W's kp columns that hold non-zeros.
template <int kVecs, class T, class Rows>
void panel_linear_tiles(const T* x, int64_t ldx, int64_t m, int64_t k, int64_t kp, const Rows& rows,
                        const std::vector<int64_t>& starts, double density, const float* w_scale, const float* bias,
                        T* out, int64_t n_total) {
  constexpr int tile = kVecs * Vec::width;
  const int64_t block = panel_block(kp, tile, density);
  const int parts = int(starts.size()) - 1;
  parallel_for(parts, parts, 1, [&](int64_t p_begin, int64_t p_end) {
    const int64_t n0 = starts[p_begin], channels = starts[p_end] - n0;
    AlignedRows<float> panel(static_cast<float*>(std::aligned_alloc(64, size_t(block) * tile * 4)));
    std::vector<float> sums(channels * tile);  // partial sums, channel-major
    std::vector<int64_t> first(channels, 0);  // each channel's first non-zero not yet summed
    for (int64_t r0 = 0; r0 < m; r0 += tile) {
      const int rows_here = int(std::min<int64_t>(tile, m - r0));
      std::fill(first.begin(), first.end(), 0);
      for (int64_t k0 = 0; k0 < kp; k0 += block) {
        const int64_t k1 = std::min(kp, k0 + block);
        transpose_block(x, ldx, k, r0, rows_here, tile, k0, k1, panel.get());
        for (int64_t c = 0; c < channels; ++c) {
          if (c + 2 < channels) rows.row(n0 + c + 2).prefetch(first[c + 2], k1 - k0);
          const auto row = rows.row(n0 + c);
          const int64_t end = row.end(first[c], k1);
          Vec acc[kVecs];
          float* s = sums.data() + c * tile;
          for (int v = 0; v < kVecs; ++v) acc[v] = k0 == 0 ? Vec::zero() : Vec::load(s + v * Vec::width);
          accumulate<kVecs>(row, first[c], end, panel.get(), k0, acc);
          for (int v = 0; v < kVecs; ++v) acc[v].store(s + v * Vec::width);
          first[c] = end;
        }
      }
      write_tile(sums.data(), tile, rows_here, channels, w_scale ? w_scale + n0 : nullptr, bias ? bias + n0 : nullptr,
                 out + r0 * n_total + n0, n_total);
    }
  });
}

// The tile height from m: one, two, four or eight vectors of rows, so a few rows leave little
// padding and many rows share each broadcast weight among more FMAs.
template <class T, class Rows>
void panel_linear(const T* x, int64_t ldx, int64_t m, int64_t k, int64_t kp, const Rows& rows,
                  const std::vector<int64_t>& starts, double density, const float* w_scale, const float* bias,
                  T* out, int64_t n_total) {
  if (m <= Vec::width)
    return panel_linear_tiles<1>(x, ldx, m, k, kp, rows, starts, density, w_scale, bias, out, n_total);
  if (m <= 2 * Vec::width)
    return panel_linear_tiles<2>(x, ldx, m, k, kp, rows, starts, density, w_scale, bias, out, n_total);
  if (m <= 4 * Vec::width)
    return panel_linear_tiles<4>(x, ldx, m, k, kp, rows, starts, density, w_scale, bias, out, n_total);
  panel_linear_tiles<8>(x, ldx, m, k, kp, rows, starts, density, w_scale, bias, out, n_total);
}

}  // namespace
}  // namespace prunq::cpu::PRUNQ_ISA
