// Per-token int8 quantization and the weight-only GEMM for few rows (the decode case) on CUDA;
// same math as csrc/cpu/int8_gemm.h. Plain C++ interface so the pybind11 bindings compile
// without CUDA headers.
#pragma once
#include <cstdint>

#include "../common/dtypes.h"

namespace prunq::cuda {

struct QuantizeArgs {
  const void* x;  // [rows, cols], contiguous
  DType dtype;
  int8_t* q;
  float* scale;
  int64_t rows, cols;
  void* stream;  // cudaStream_t
};

struct WeightOnlyArgs {
  const void* x;  // [m, k], contiguous
  DType dtype;    // of x and out
  const int8_t* w;  // [n, k], contiguous
  const float* w_scale;
  const float* bias;  // may be null
  void* out;          // [m, n]
  int64_t m, n, k;
  void* stream;
};

// Each launches its kernel on args.stream; returns nullptr or the CUDA error string.
const char* quantize_per_token(const QuantizeArgs& args);
const char* int8_weight_only_gemm(const WeightOnlyArgs& args);

}  // namespace prunq::cuda
