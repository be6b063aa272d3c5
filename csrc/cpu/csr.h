// y = x @ W.T + bias for W [N, K] in CSR (prunq/formats/csr.py): crow [N + 1], col [nnz] (int32),
// values [nnz] float or int8 (dequantized by w_scale [N]). x and y are row-major [M, K] and [M, N]
// in one float dtype. The indices must have been checked (the kernel reads x at col).
#pragma once
#include <cstdint>

#include "../common/dtypes.h"
#include "sparse24.h"  // Values: the type of the stored values

namespace prunq::cpu {

struct CsrArgs {
  const void* x;
  DType dtype;  // of x and out
  const int32_t* crow;
  const int32_t* col;
  const void* values;
  Values value_type;
  const float* w_scale;  // [N] for int8 values, else null
  const float* bias;     // [N] or null
  void* out;
  int64_t m, n, k;
  int num_threads;
};

void csr_linear(const CsrArgs& args);
// Whether crow [n + 1] and col [count] are a CSR matrix of [n, k]: crow starts at 0, never
// decreases and ends at count, and each row's columns lie in [0, k), strictly increasing. Reads
// nothing out of bounds whatever they hold.
bool csr_valid(const int32_t* crow, int64_t n, const int32_t* col, int64_t count, int64_t k);
void csr_linear_portable(const CsrArgs& args);
void csr_linear_avx2(const CsrArgs& args);
void csr_linear_avx512(const CsrArgs& args);

}  // namespace prunq::cpu
