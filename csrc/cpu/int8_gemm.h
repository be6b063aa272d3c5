// INT8 GEMM with per-token activation scales and per-channel weight scales, the per-token
// quantization that feeds it, and the weight-only variant (float activations, int8 weights).
//   quantize:     scale[m] = absmax(x[m]) / 127; q[m, k] = round_even(x[m, k] * (127 / absmax))
//   int8_gemm:    y[m, n] = float(sum_k x[m, k] * w[n, k]) * x_scale[m] * w_scale[n] + bias[n]
//   weight-only:  y[m, n] = (sum_k x[m, k] * float(w[n, k])) * w_scale[n] + bias[n]
// w is [N, K] row-major int8, x is [M, K] row-major; bias may be null.
#pragma once
#include <cmath>
#include <cstdint>

#include "../common/dtypes.h"

namespace prunq::cpu {

struct QuantizeArgs {
  const void* x;
  DType dtype;
  int8_t* q;
  float* scale;
  int64_t rows, cols;
  int num_threads;
  const float* channel_scale = nullptr;  // [cols]: x[m, k] * channel_scale[k] is quantized, if set
};

// Applied to y in the epilogue. gelu: y * (1 + erf(y / sqrt(2))) / 2, the exact (erf) GELU.
enum class Activation : int { none = 0, gelu = 1 };

inline float activate(float y, Activation activation) {
  return activation == Activation::gelu ? 0.5f * y * (1.f + std::erf(y * float(M_SQRT1_2))) : y;
}

struct Int8GemmArgs {
  const int8_t* x;
  const float* x_scale;
  const int8_t* w;          // [N, K], or the VNNI packing of it when w_colsum is set
  const int32_t* w_colsum;  // null for a plain w
  const float* w_scale;
  const float* bias;
  void* out;
  DType out_dtype;
  int64_t m, n, k;
  int num_threads;
  Activation activation;
  // Every weight lies in [-kNarrowWeightMax, kNarrowWeightMax] (4-bit weights): on a packed w the
  // AVX2 path then runs int8_gemm_narrow_avx2, exact only for such weights.
  bool narrow_w = false;
};
constexpr int kNarrowWeightMax = 8;

struct WeightOnlyArgs {
  const void* x;
  DType dtype;  // of x and out
  const int8_t* w;
  const float* w_scale;
  const float* bias;
  void* out;
  int64_t m, n, k;
  int num_threads;
  bool packed = false;  // w is the VNNI packing (pack_int8_vnni), where weight_only_packed_available
};

// The weight layout of the AVX-512 VNNI kernel: panels of 64 output channels; inside a panel,
// for each group of 4 consecutive k, 64 x 4 bytes (channel-major). N is padded to a multiple of
// 64 and K to a multiple of 4 with zeros. colsum[n] = sum_k w[n, k] (padded length).
constexpr int64_t kVnniPanel = 64;
int64_t vnni_padded_n(int64_t n);
int64_t vnni_padded_k(int64_t k);
void pack_int8_vnni(const int8_t* w, int64_t n, int64_t k, int8_t* packed, int32_t* colsum);
// Whether int8_gemm reads the VNNI packing of w here (AVX-512 VNNI, or the AVX2 kernel reading it
// in halves).
bool packed_gemm_available();
// The multiply instruction of int8_gemm on a packed w here: "vpdpbusd zmm" (AVX-512 VNNI),
// "vpmaddwd zmm" (AVX-512 without VNNI), "vpmaddwd ymm" (AVX2), or "none".
const char* packed_gemm_instruction();
// Whether int8_weight_only_gemm reads the VNNI packing of w for x of `dtype` here.
bool weight_only_packed_available(DType dtype);

// Dispatch on the active instruction set (cpu_features.h). int8_gemm with a packed w needs
// packed_gemm_available().
void quantize_per_token(const QuantizeArgs& args);
void int8_gemm(const Int8GemmArgs& args);
void int8_weight_only_gemm(const WeightOnlyArgs& args);
// int8_gemm with the per-token quantization of x (float, `dtype`, each column multiplied by
// channel_scale if that is set) fused in: args.x is ignored and the scales are written to
// x_scale, which args.x_scale must point at. With a packed w on the VNNI path the rows are
// quantized straight into the unsigned layout the VNNI kernel reads.
void int8_dynamic_gemm(const void* x, DType dtype, const float* channel_scale, float* x_scale,
                       const Int8GemmArgs& args);
void int8_dynamic_vnni_avx512(const void* x, DType dtype, const float* channel_scale, float* x_scale,
                              const Int8GemmArgs& args);
// int8_gemm on a packed w whose weights are narrow (Int8GemmArgs::narrow_w), with vpmaddubsw; AVX2.
void int8_gemm_narrow_avx2(const Int8GemmArgs& args);
// bf16 activations only; need has_avx512_bf16().
void int8_weight_only_gemm_avx512bf16(const WeightOnlyArgs& args);
void int8_weight_only_packed_avx512bf16(const WeightOnlyArgs& args);
void int8_weight_only_packed_avx2(const WeightOnlyArgs& args);
// int8_gemm on a packed w for AVX-512 without VNNI; needs the avx512 path.
void int8_gemm_madd_avx512bw(const Int8GemmArgs& args);

#define PRUNQ_DECLARE_INT8_GEMM(isa)                           \
  void quantize_per_token_##isa(const QuantizeArgs& args);     \
  void int8_gemm_##isa(const Int8GemmArgs& args);              \
  void int8_weight_only_gemm_##isa(const WeightOnlyArgs& args);
PRUNQ_DECLARE_INT8_GEMM(portable)
PRUNQ_DECLARE_INT8_GEMM(avx2)
PRUNQ_DECLARE_INT8_GEMM(avx512)
#undef PRUNQ_DECLARE_INT8_GEMM

}  // namespace prunq::cpu
