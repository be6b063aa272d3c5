// The last step of the sparse kernels that vectorise over rows of x: sums held channel by channel
// (sums[c * tile + i] for row i of the tile) written as rows of the output, times w_scale plus
// bias. Sixteen channels at a time: their 16 lines of sums stay in L1 while each row's 16 values
// are gathered into a row (a whole row of channels would read each sum from a different line, and
// one channel at a time would write 64 rows whose power-of-two stride maps onto few L1 sets), then
// scaled, converted and stored as vectors: with a short K the output is much of the work.
#pragma once
#include <algorithm>
#include <cstdint>

#include "../common/dtypes.h"

namespace prunq::cpu {

template <class Vec, class T>
static void write_tile(const float* sums, int tile, int rows, int64_t channels, const float* w_scale,
                       const float* bias, T* out, int64_t ldo) {
  alignas(64) float row[16];
  for (int64_t c0 = 0; c0 < channels; c0 += 16) {
    const int count = int(std::min<int64_t>(16, channels - c0));
    for (int i = 0; i < rows; ++i) {
      for (int c = 0; c < count; ++c) row[c] = sums[(c0 + c) * tile + i];
      for (int v = 0; v < count; v += Vec::width) {
        const int n = std::min(Vec::width, count - v);
        Vec y = Vec::load(row + v, n);
        if (w_scale) y = y * Vec::load(w_scale + c0 + v, n);
        if (bias) y = y + Vec::load(bias + c0 + v, n);
        y.store(out + i * ldo + c0 + v, n);
      }
    }
  }
}

}  // namespace prunq::cpu
