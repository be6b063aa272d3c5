// Fused residual add + LayerNorm / RMSNorm over the last dimension, fp32 accumulation:
//   sum = x + residual (rounded to the storage type);  out = norm(sum) * weight + bias.
#pragma once
#include <cstdint>

#include "../common/dtypes.h"

namespace prunq::cpu {

struct AddNormArgs {
  const void* x;
  const void* residual;
  const void* weight;  // may be null: no scale
  const void* bias;    // may be null: no shift (always null for RMSNorm)
  void* out;
  void* sum;
  int64_t rows;
  int64_t hidden;
  float eps;
  DType dtype;        // of x, residual, out, sum
  DType param_dtype;  // of weight and bias: dtype or f32
  bool rms;
  int num_threads;
};

// Runs the path of the active instruction set (cpu_features.h).
void add_norm(const AddNormArgs& args);

void add_norm_portable(const AddNormArgs& args);
void add_norm_avx2(const AddNormArgs& args);
void add_norm_avx512(const AddNormArgs& args);

}  // namespace prunq::cpu
