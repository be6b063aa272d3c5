// y = x @ W.T + bias for a 2:4 semi-structured W [N, K] in prunq's portable layout
// (prunq/formats/sparse24.py): values [N, Kp / 2] (two per group of four k), meta [N, Kp / 8]
// (4 bits per group: the two positions), Kp = K rounded up to a multiple of 8. int8 values are
// dequantized by w_scale [N]. x and y are row-major [M, K] and [M, N] in one float dtype.
#pragma once
#include <cstdint>

#include "../common/dtypes.h"

namespace prunq::cpu {

// The type of the stored values: a float DType's code, or int8 (with w_scale).
enum class Values : int { f32 = 0, bf16 = 1, f16 = 2, i8 = 3 };

struct Sparse24Args {
  const void* x;
  DType dtype;  // of x and out
  const void* values;
  Values value_type;
  const uint8_t* meta;
  const float* w_scale;  // [N] for int8 values, else null
  const float* bias;     // [N] or null
  void* out;
  int64_t m, n, k;
  int num_threads;
};

void sparse24_linear(const Sparse24Args& args);
// The first group (counted over meta's bytes, two groups a byte) whose two positions are not in
// order (first < second), or -1.
int64_t sparse24_first_bad_group(const uint8_t* meta, int64_t bytes);
void sparse24_linear_portable(const Sparse24Args& args);
void sparse24_linear_avx2(const Sparse24Args& args);
void sparse24_linear_avx512(const Sparse24Args& args);
// bf16 x with bf16 or int8 values from 16 rows, on vdpbf16ps; false where it does not apply.
bool sparse24_linear_avx512bf16(const Sparse24Args& args);

}  // namespace prunq::cpu
