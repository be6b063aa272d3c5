// The last step of the sparse kernels that vectorise over rows of x: sums held channel by channel
// (sums[c * tile + i] for row i of the tile) written as rows of the output, times w_scale plus
// bias. Sixteen channels at a time, so that their 16 lines of sums stay in L1 while the rows
// pass: a whole row of channels at a time read each sum from a different line (a fifth of a
// 2:4 call at K = 384), and one channel at a time wrote 64 rows whose power-of-two stride maps
// onto few L1 sets. (Gathering a row's 16 values into a buffer to convert them as vectors was
// slower: the vector load waits on the 16 scalar stores.)
#pragma once
#include <algorithm>
#include <cstdint>

#include "../common/dtypes.h"

namespace prunq::cpu {

template <class T>
static void write_tile(const float* sums, int tile, int rows, int64_t channels, const float* w_scale,
                       const float* bias, T* out, int64_t ldo) {
  for (int64_t c0 = 0; c0 < channels; c0 += 16) {
    const int count = int(std::min<int64_t>(16, channels - c0));
    for (int i = 0; i < rows; ++i)
      for (int c = 0; c < count; ++c)
        out[i * ldo + c0 + c] = from_float<T>(sums[(c0 + c) * tile + i] * (w_scale ? w_scale[c0 + c] : 1.f) +
                                              (bias ? bias[c0 + c] : 0.f));
  }
}

}  // namespace prunq::cpu
