#include "int8_gemm.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "../common/cpu_features.h"
#include "../common/parallel.h"
#include "vec_portable.h"

namespace prunq::cpu::portable {
namespace {

struct Dot {
  static constexpr bool kBiasedW = false;  // int8() returns the exact dot products

  template <int MR>
  static void int8(const int8_t* const* x, const int8_t* const* w, int64_t k, int32_t acc[4][4]) {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < 4; ++j) {
        int32_t s = 0;
        for (int64_t kk = 0; kk < k; ++kk) s += int32_t(x[i][kk]) * int32_t(w[j][kk]);
        acc[i][j] = s;
      }
  }

  // Eight partial sums per dot product: the order of additions is written out, so the compiler
  // may put the eight in one vector (a single running sum it must keep scalar).
  template <int MR, class T>
  static void wo(const T* const* x, const int8_t* const* w, int64_t k, float acc[4][4]) {
    constexpr int kLanes = 8;
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < 4; ++j) {
        float lanes[kLanes] = {};
        int64_t kk = 0;
        for (; kk + kLanes <= k; kk += kLanes)
          for (int l = 0; l < kLanes; ++l) lanes[l] += to_float(x[i][kk + l]) * float(w[j][kk + l]);
        float s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
        for (; kk < k; ++kk) s += to_float(x[i][kk]) * float(w[j][kk]);
        acc[i][j] = s;
      }
  }
};

}  // namespace
}  // namespace prunq::cpu::portable

#define PRUNQ_ISA portable
#include "int8_gemm_kernel.h"

namespace prunq::cpu {

void quantize_per_token_portable(const QuantizeArgs& a) { portable::quantize_per_token(a); }
void int8_gemm_portable(const Int8GemmArgs& a) { portable::int8_gemm(a); }
void int8_weight_only_gemm_portable(const WeightOnlyArgs& a) { portable::int8_weight_only_gemm(a); }

// The AVX-512 translation unit of this family is built with VNNI (vpdpbusd); CPUs with AVX-512
// but without VNNI take the AVX2 path for the family, except for the GEMM on a packed w, which has
// a 512-bit build of the AVX2 kernel (int8_gemm_madd_avx512bw).
static Isa family_isa() {
  const Isa isa = active_isa();
  return isa == Isa::avx512 && !has_avx512_vnni() ? Isa::avx2 : isa;
}

// The x86 versions exist only in x86 builds; elsewhere active_isa() is always portable.
#if PRUNQ_X86
#define PRUNQ_X86_ONLY(fn) fn
#else
#define PRUNQ_X86_ONLY(fn) nullptr
#endif

template <class Args> struct KernelOf { using type = void (*)(const Args&); };  // not deduced

template <class Args>
void run_for(Isa isa, const Args& a, typename KernelOf<Args>::type portable, typename KernelOf<Args>::type avx2,
             typename KernelOf<Args>::type avx512) {
  if (isa == Isa::avx512 && avx512) return avx512(a);
  if (isa == Isa::avx2 && avx2) return avx2(a);
  portable(a);
}

void quantize_per_token(const QuantizeArgs& a) {
  run_for(family_isa(), a, quantize_per_token_portable, PRUNQ_X86_ONLY(quantize_per_token_avx2),
          PRUNQ_X86_ONLY(quantize_per_token_avx512));
}

int64_t vnni_padded_n(int64_t n) { return (n + kVnniPanel - 1) / kVnniPanel * kVnniPanel; }
int64_t vnni_padded_k(int64_t k) { return (k + 3) / 4 * 4; }
bool packed_gemm_available() { return family_isa() != Isa::portable; }
const char* packed_gemm_instruction() {
  if (active_isa() == Isa::avx512) return has_avx512_vnni() ? "vpdpbusd zmm" : "vpmaddwd zmm";
  return active_isa() == Isa::avx2 ? "vpmaddwd ymm" : "none";
}
bool weight_only_packed_available(DType dtype) {
  const Isa isa = family_isa();
  return isa == Isa::avx2 || (isa == Isa::avx512 && dtype == DType::bf16 && has_avx512_bf16());
}

void pack_int8_vnni(const int8_t* w, int64_t n, int64_t k, int8_t* packed, int32_t* colsum) {
  const int64_t np = vnni_padded_n(n), kp = vnni_padded_k(k), groups = kp / 4;
  constexpr int64_t kGroupBytes = kVnniPanel * 4;  // a group: 4 k of each channel of the panel
  for (int64_t c = 0; c < np; ++c) {
    // Row c's 4 bytes of group g land at dst + g * kGroupBytes: its panel, then its place in the group.
    int8_t* dst = packed + (c / kVnniPanel) * kVnniPanel * kp + (c % kVnniPanel) * 4;
    const int8_t* src = w + c * k;
    int32_t sum = 0;
    int64_t g = 0;
    if (c < n) {
      for (int64_t i = 0; i < k; ++i) sum += src[i];
      for (; 4 * g + 4 <= k; ++g) std::memcpy(dst + g * kGroupBytes, src + 4 * g, 4);
      if (4 * g < k) {  // the last group's k past K are zeros
        int8_t tail[4] = {0, 0, 0, 0};
        std::memcpy(tail, src + 4 * g, size_t(k - 4 * g));
        std::memcpy(dst + g++ * kGroupBytes, tail, 4);
      }
    }
    for (; g < groups; ++g) std::memset(dst + g * kGroupBytes, 0, 4);  // padding: channels past N, groups past K
    colsum[c] = sum;
  }
}

void int8_gemm(const Int8GemmArgs& a) {
  if (a.w_colsum && !packed_gemm_available())
    throw std::invalid_argument("int8_gemm: a packed weight needs the AVX2 or AVX-512 VNNI path");
#if PRUNQ_X86
  if (a.w_colsum && active_isa() == Isa::avx512 && !has_avx512_vnni()) return int8_gemm_madd_avx512bw(a);
  if (a.w_colsum && a.narrow_w && active_isa() == Isa::avx2) return int8_gemm_narrow_avx2(a);
#endif
  run_for(family_isa(), a, int8_gemm_portable, PRUNQ_X86_ONLY(int8_gemm_avx2), PRUNQ_X86_ONLY(int8_gemm_avx512));
}

void int8_dynamic_gemm(const void* x, DType dtype, const float* channel_scale, float* x_scale,
                       const Int8GemmArgs& a) {
#if PRUNQ_X86
  if (a.w_colsum && family_isa() == Isa::avx512) return int8_dynamic_vnni_avx512(x, dtype, channel_scale, x_scale, a);
#endif
  // Not value-initialised: quantize_per_token writes every byte, and a zeroing pass over x's size
  // cost as much as the quantization.
  const std::unique_ptr<int8_t[]> q(new int8_t[size_t(std::max<int64_t>(1, a.m * a.k))]);
  quantize_per_token(QuantizeArgs{x, dtype, q.get(), x_scale, a.m, a.k, a.num_threads, channel_scale});
  Int8GemmArgs quantized = a;
  quantized.x = q.get();
  int8_gemm(quantized);
}

void int8_weight_only_gemm(const WeightOnlyArgs& a) {
  if (a.packed) {
    if (!weight_only_packed_available(a.dtype))
      throw std::invalid_argument("int8_weight_only_gemm: no kernel reads a packed weight for this dtype here");
#if PRUNQ_X86
    if (family_isa() == Isa::avx512) return int8_weight_only_packed_avx512bf16(a);
    return int8_weight_only_packed_avx2(a);
#endif
  }
  run_for(family_isa(), a, int8_weight_only_gemm_portable, PRUNQ_X86_ONLY(int8_weight_only_gemm_avx2),
          PRUNQ_X86_ONLY(int8_weight_only_gemm_avx512));
}

}  // namespace prunq::cpu
