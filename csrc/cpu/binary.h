// Packed binary GEMMs. Bits are rows of 32-bit words, bit j of a row in word j / 32 at bit
// j % 32 (prunq/formats/bits.py); bit 1 is +1, bit 0 is -1; bits past k in the last word are
// ignored, whatever they hold.
//   binary_gemm:   dots[m, n] = k - 2 popcount(a[m] xor b[n]) (the +-1 dot products), written
//                  as int32, or as out = alpha[m] * w_scale[n] * dots + bias[n] in a float dtype
//                  (alpha null: 1).
//   binary_linear: XNOR-Net (binarize_x): x's rows packed to bits with alpha = mean |x| per row,
//                  then binary_gemm's float form; BinaryConnect (!binarize_x): out = w_scale[n] *
//                  (x[m] . sign(b[n])) + bias[n] for real x.
#pragma once
#include <cstdint>

#include "../common/dtypes.h"

namespace prunq::cpu {

struct BinaryGemmArgs {
  const uint32_t* a;  // [m, words]
  const uint32_t* b;  // [n, words]
  int64_t m, n, k, words;
  const uint32_t* b_columns;  // b as binary_columns lays it out, or null (then derived where used)
  int32_t* dots;          // [m, n], or null for the float form
  void* out;              // [m, n] in dtype
  DType dtype;
  const float* alpha;     // [m] or null
  const float* w_scale;   // [n]
  const float* bias;      // [n] or null
  int num_threads;
};

struct BinaryLinearArgs {
  const void* x;  // [m, k] in dtype
  DType dtype;
  const uint32_t* w;  // [n, words]
  const uint32_t* w_columns;  // w as binary_columns lays it out, or null
  const float* w_scale;
  const float* bias;  // or null
  void* out;          // [m, n] in dtype
  int64_t m, n, k, words;
  bool binarize_x;
  int num_threads;
};

// b [n, words] transposed in groups of 16 channels: columns [columns_width(n) / 16, words, 16],
// word w of channel j at ((j / 16) * words + w) * 16 + j % 16, zero-padded past n: the layout the
// many-rows kernels read (16 channels' words side by side, each group's words contiguous). A
// module derives it once.
inline int64_t columns_width(int64_t n) { return (n + 15) / 16 * 16; }
void binary_columns(const uint32_t* b, int64_t n, int64_t words, uint32_t* columns, int num_threads);

// Packs x [m, k] (dtype) into bits [m, words]; alpha [m] = mean |x| per row unless null.
void pack_bits(const void* x, DType dtype, int64_t m, int64_t k, int64_t words, uint32_t* bits, float* alpha,
               int num_threads);
void binary_gemm(const BinaryGemmArgs& args);
void binary_linear(const BinaryLinearArgs& args);

// Per instruction set; the AVX-512 one needs VPOPCNTDQ.
#define PRUNQ_BINARY_ISA(isa)                                                                                \
  void pack_bits_##isa(const void* x, DType dtype, int64_t m, int64_t k, int64_t words, uint32_t* bits,     \
                       float* alpha, int num_threads);                                                      \
  void binary_gemm_##isa(const BinaryGemmArgs& args);                                                       \
  void binary_linear_##isa(const BinaryLinearArgs& args);
PRUNQ_BINARY_ISA(portable)
PRUNQ_BINARY_ISA(avx2)
PRUNQ_BINARY_ISA(avx512)
#undef PRUNQ_BINARY_ISA

}  // namespace prunq::cpu
