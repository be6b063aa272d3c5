// Helpers of the register-tiled weight-only kernels: activations copied into zero-padded rows, and
// tile sizes picked at run time.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <type_traits>

#include "../common/dtypes.h"
#include "../common/parallel.h"

namespace prunq::cpu {

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
template <class T>
using AlignedRows = std::unique_ptr<T[], FreeDeleter>;

// x [m, k] as Out (fp32 through to_float; otherwise the same type, or int8 widened to int16) in
// rows of ldx elements on 64-byte aligned storage, zero from k to kp, so that a kernel's loop over
// kp has no tail on x and padded weights meet zeros, never stale values. static: each
// instruction-set build keeps its own copy, where a shared inline one could be linked from the widest.
template <class Out, class In>
static AlignedRows<Out> padded_rows(const In* x, int64_t m, int64_t k, int64_t kp, int64_t ldx, int num_threads) {
  const size_t bytes = std::max<size_t>(64, (size_t(m * ldx) * sizeof(Out) + 63) / 64 * 64);
  AlignedRows<Out> rows(static_cast<Out*>(std::aligned_alloc(64, bytes)));
  parallel_for(m, num_threads, 1 + (int64_t(1) << 16) / std::max<int64_t>(kp, 1), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const In* src = x + r * k;
      Out* dst = rows.get() + r * ldx;
      if constexpr (std::is_same_v<Out, float>) {
        for (int64_t i = 0; i < k; ++i) dst[i] = to_float(src[i]);
      } else {
        std::copy(src, src + k, dst);
      }
      std::fill(dst + k, dst + kp, Out{});
    }
  });
  return rows;
}

// f(std::integral_constant<int, rows>()) for a run-time rows in [1, MR].
template <int MR, class F>
void with_rows(int rows, F&& f) {
  if constexpr (MR > 1) {
    if (rows < MR) return with_rows<MR - 1>(rows, f);
  }
  f(std::integral_constant<int, MR>());
}

}  // namespace prunq::cpu
