// Fused residual add + LayerNorm / RMSNorm on CUDA; same math as csrc/cpu/layernorm.h.
// Plain C++ interface so the pybind11 bindings compile without CUDA headers.
#pragma once
#include <cstdint>

#include "../common/dtypes.h"

namespace prunq::cuda {

struct AddNormArgs {
  const void* x;
  const void* residual;
  const void* weight;  // may be null
  const void* bias;    // may be null
  void* out;
  void* sum;
  int64_t rows;
  int64_t hidden;
  float eps;
  DType dtype;
  DType param_dtype;  // dtype or f32
  bool rms;
  void* stream;  // cudaStream_t
};

// Launches the kernel on args.stream; returns nullptr or the CUDA error string.
const char* add_norm(const AddNormArgs& args);

}  // namespace prunq::cuda
