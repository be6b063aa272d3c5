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
using PaddedRows = std::unique_ptr<bf16[], FreeDeleter>;

// x [m, k] copied into rows of ldx elements on 64-byte aligned storage, zero from k to kp, so that
// a kernel's loop over kp has no tail on x and padded weights meet zeros, never stale values.
inline PaddedRows padded_rows(const bf16* x, int64_t m, int64_t k, int64_t kp, int64_t ldx, int num_threads) {
  const size_t bytes = std::max<size_t>(64, (size_t(m * ldx) * sizeof(bf16) + 63) / 64 * 64);
  PaddedRows rows(static_cast<bf16*>(std::aligned_alloc(64, bytes)));
  parallel_for(m, num_threads, 1 + (int64_t(1) << 16) / std::max<int64_t>(kp, 1), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      bf16* dst = rows.get() + r * ldx;
      std::copy(x + r * k, x + (r + 1) * k, dst);
      std::fill(dst + k, dst + kp, bf16{});
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
