// AVX-512 VNNI: vpdpbusd multiplies unsigned bytes by signed bytes, 4 per 32-bit lane. w is made
// unsigned by flipping its sign bit (w + 128) and x stays signed, so each dot product comes out
// as sum(x * w) + 128 * sum(x); the driver subtracts 128 * sum(x) per row (kBiasedW). Keeping x
// as the signed side puts the correction on the activations (M x K, cheap) rather than on the
// weights, and is exact over the whole int8 range.
#include <memory>

#include "../common/cpu_features.h"

#include "vec_avx512.h"

namespace prunq::cpu::avx512 {
namespace {

// Sums of the 16 lanes of each of a, b, c, d, as 4 lanes.
inline __m128i reduce4(__m512i a, __m512i b, __m512i c, __m512i d) {
  auto half = [](__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
  };
  const __m256i abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(half(a), half(b)), _mm256_hadd_epi32(half(c), half(d)));
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

struct Dot {
  static constexpr bool kBiasedW = true;  // int8() returns sum(x * w) + 128 * sum(x)

  template <int MR>
  static void int8(const int8_t* const* x, const int8_t* const* w, int64_t k, int32_t acc[4][4]) {
    const __m512i flip = _mm512_set1_epi8(char(0x80));
    __m512i c[MR][4];
    for (auto& row : c)
      for (auto& v : row) v = _mm512_setzero_si512();
    auto step = [&](int64_t kk, __mmask64 m) {
      __m512i wv[4];
      for (int j = 0; j < 4; ++j) wv[j] = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, w[j] + kk), flip);
      for (int i = 0; i < MR; ++i) {
        const __m512i xv = _mm512_maskz_loadu_epi8(m, x[i] + kk);
        for (int j = 0; j < 4; ++j) c[i][j] = _mm512_dpbusd_epi32(c[i][j], wv[j], xv);
      }
    };
    int64_t kk = 0;
    for (; kk + 64 <= k; kk += 64) step(kk, ~__mmask64(0));
    if (kk < k) step(kk, (__mmask64(1) << (k - kk)) - 1);  // zero x in the tail adds nothing
    for (int i = 0; i < MR; ++i)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(acc[i]), reduce4(c[i][0], c[i][1], c[i][2], c[i][3]));
  }

  template <int MR, class T>
  static void wo(const T* const* x, const int8_t* const* w, int64_t k, float acc[4][4]) {
    __m512 c[MR][4];
    for (auto& row : c)
      for (auto& v : row) v = _mm512_setzero_ps();
    auto step = [&](int64_t kk, int n) {
      const __mmask16 m = __mmask16((1u << n) - 1);
      __m512 wv[4];
      for (int j = 0; j < 4; ++j) wv[j] = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, w[j] + kk)));
      for (int i = 0; i < MR; ++i) {
        const __m512 xv = (n == 16 ? Vec::load(x[i] + kk) : Vec::load(x[i] + kk, n)).v;
        for (int j = 0; j < 4; ++j) c[i][j] = _mm512_fmadd_ps(xv, wv[j], c[i][j]);
      }
    };
    int64_t kk = 0;
    for (; kk + 16 <= k; kk += 16) step(kk, 16);
    if (kk < k) step(kk, int(k - kk));
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_reduce_add_ps(c[i][j]);
  }
};

}  // namespace
}  // namespace prunq::cpu::avx512

#define PRUNQ_ISA avx512
#include "int8_gemm_kernel.h"
#include "gelu_kernel.h"

// The GEMM on a packed w (pack_int8_vnni), the fast path for weights packed once by a module.
// Outer products: per group of 4 k, each of MR rows of x is broadcast (4 bytes, made unsigned by
// flipping the sign bit) against 4 registers of w (64 channels x 4 k); MR x 4 accumulators stay
// in registers for the whole K. The products carry 128 * sum_k w[n, k], removed with colsum.
namespace prunq::cpu::avx512 {
namespace {

constexpr int kMaxRows = 6;  // 24 accumulators + 4 w registers + 1 broadcast of 32 zmm
constexpr int64_t kRowPanelBytesPacked = 1 << 20;
// K is walked in blocks of 512 so that the block of a w panel the row tiles share (64 x 512
// bytes, 32 KB) stays in L1; between blocks a tile's accumulators wait in `partial` (MR x 64
// int32). Measured on a 32 KB-L1 core: 256 and 384 were slower at K = 384 and K = 1536.
constexpr int64_t kBlockGroups = 128;

// How far ahead of the group being multiplied the kernel asks for w. Panels follow each other in
// memory, so this runs on into the next panel; at the very end it asks for bytes past w, which a
// prefetch may do.
constexpr int64_t kPrefetchBytes = 4096;

struct KBlock {
  int64_t g_begin, g_end;  // groups of 4 k
  bool first, last;
};

template <int MR, class O>
void vnni_tile(const uint8_t* xu, int64_t ldx, const int8_t* panel, KBlock kb, int32_t* partial,
               const int32_t* colsum, const Int8GemmArgs& a, int64_t m0, int64_t n0) {
  __m512i c[MR][4];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < 4; ++j)
      c[i][j] = kb.first ? _mm512_setzero_si512() : _mm512_loadu_si512(partial + i * kVnniPanel + j * 16);
  for (int64_t g = kb.g_begin; g < kb.g_end; ++g) {
    const __m512i* wg = reinterpret_cast<const __m512i*>(panel + g * kVnniPanel * 4);
    for (int line = 0; line < 4; ++line) _mm_prefetch(reinterpret_cast<const char*>(wg + line) + kPrefetchBytes, _MM_HINT_T0);
    const __m512i w0 = _mm512_loadu_si512(wg), w1 = _mm512_loadu_si512(wg + 1), w2 = _mm512_loadu_si512(wg + 2),
                  w3 = _mm512_loadu_si512(wg + 3);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      int32_t four;
      std::memcpy(&four, xu + i * ldx + g * 4, 4);
      const __m512i xb = _mm512_set1_epi32(four);
      c[i][0] = _mm512_dpbusd_epi32(c[i][0], xb, w0);
      c[i][1] = _mm512_dpbusd_epi32(c[i][1], xb, w1);
      c[i][2] = _mm512_dpbusd_epi32(c[i][2], xb, w2);
      c[i][3] = _mm512_dpbusd_epi32(c[i][3], xb, w3);
    }
  }
  if (!kb.last) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < 4; ++j) _mm512_storeu_si512(partial + i * kVnniPanel + j * 16, c[i][j]);
    return;
  }
  // Spill the accumulators once, with constant indices, so that they stay in registers in the
  // loop above (a runtime index into `c` makes the compiler keep it in memory).
  alignas(64) int32_t tile[MR][kVnniPanel];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm512_store_si512(tile[i], c[i][0]);
    _mm512_store_si512(tile[i] + 16, c[i][1]);
    _mm512_store_si512(tile[i] + 32, c[i][2]);
    _mm512_store_si512(tile[i] + 48, c[i][3]);
  }
  const int cols = int(std::min<int64_t>(kVnniPanel, a.n - n0));
  for (int j = 0; j * 16 < cols; ++j) {
    const int n = std::min(16, cols - j * 16);
    const int64_t col = n0 + j * 16;
    const __m512i bias128 = _mm512_slli_epi32(_mm512_loadu_si512(colsum + col), 7);
    const Vec ws = n == 16 ? Vec::load(a.w_scale + col) : Vec::load(a.w_scale + col, n);
    const Vec b = a.bias ? (n == 16 ? Vec::load(a.bias + col) : Vec::load(a.bias + col, n)) : Vec::zero();
    for (int i = 0; i < MR; ++i) {
      const Vec dot{_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(tile[i] + j * 16), bias128))};
      const Vec y = activate(fma(dot * Vec::splat(a.x_scale[m0 + i]), ws, b), a.activation);
      O* out = static_cast<O*>(a.out) + (m0 + i) * a.n + col;
      if (n == 16) y.store(out); else y.store(out, n);
    }
  }
}

template <class O, int MR = kMaxRows>
void vnni_tile_rows(int rows, const uint8_t* xu, int64_t ldx, const int8_t* panel, KBlock kb, int32_t* partial,
                    const int32_t* colsum, const Int8GemmArgs& a, int64_t m0, int64_t n0) {
  if constexpr (MR > 1) {
    if (rows < MR) return vnni_tile_rows<O, MR - 1>(rows, xu, ldx, panel, kb, partial, colsum, a, m0, n0);
  }
  vnni_tile<MR, O>(xu, ldx, panel, kb, partial, colsum, a, m0, n0);
}

// x as unsigned bytes (x + 128) in rows of ldx bytes, of which [0, kp) are read. The row stride
// is one cache line more than a multiple of 64, so the MR rows a tile reads in step do not all
// fall into the same L1 set. Bytes from k to kp meet zero weights, so any value does.
inline int64_t vnni_row_stride(int64_t kp) { return (kp + 63) / 64 * 64 + 64; }

std::unique_ptr<uint8_t[]> unsigned_rows(const Int8GemmArgs& a, int64_t kp, int64_t ldx) {
  std::unique_ptr<uint8_t[]> xu(new uint8_t[size_t(a.m * ldx)]);
  parallel_for(a.m, a.num_threads, 1 + (int64_t(1) << 16) / kp, [&](int64_t b, int64_t e) {
    const __m512i flip = _mm512_set1_epi8(char(0x80));
    for (int64_t r = b; r < e; ++r) {
      const int8_t* src = a.x + r * a.k;
      uint8_t* dst = xu.get() + r * ldx;
      for (int64_t i = 0; i < kp; i += 64) {
        const __mmask64 m = a.k - i >= 64 ? ~__mmask64(0) : (__mmask64(1) << (a.k - i)) - 1;
        _mm512_storeu_si512(dst + i, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src + i), flip));
      }
    }
  });
  return xu;
}

// quantize_per_token's math (see int8_gemm_kernel.h), storing q + 128 as unsigned bytes.
template <class T>
std::unique_ptr<uint8_t[]> quantized_unsigned_rows(const T* x, const float* channel_scale, float* x_scale,
                                                   const Int8GemmArgs& a, int64_t kp, int64_t ldx) {
  std::unique_ptr<uint8_t[]> xu(new uint8_t[size_t(a.m * ldx)]);
  const int64_t k = a.k;
  parallel_for(a.m, a.num_threads, 1 + (int64_t(1) << 14) / kp, [&](int64_t b, int64_t e) {
    const __m512i offset = _mm512_set1_epi32(128);
    for (int64_t r = b; r < e; ++r) {
      const T* xr = x + r * k;
      uint8_t* dst = xu.get() + r * ldx;
      Vec peak = Vec::zero();
      for (int64_t i = 0; i < k; i += Vec::width) {
        const int n = int(std::min<int64_t>(Vec::width, k - i));
        peak = max(peak, abs(load_scaled(xr, channel_scale, i, n)));
      }
      const float absmax = peak.hmax();
      x_scale[r] = absmax / 127.f;
      if (!std::isfinite(absmax)) {  // as quantize_rows: q = 0 (unsigned 128)
        std::fill(dst, dst + k, uint8_t(128));
        continue;
      }
      const Vec inv = Vec::splat(absmax > 0.f ? 127.f / absmax : 0.f);
      for (int64_t i = 0; i < k; i += Vec::width) {
        const int n = int(std::min<int64_t>(Vec::width, k - i));
        const Vec q = load_scaled(xr, channel_scale, i, n) * inv;
        const __m512i biased = _mm512_add_epi32(_mm512_cvtps_epi32(q.v), offset);
        _mm_mask_storeu_epi8(dst + i, __mmask16((1u << n) - 1), _mm512_cvtusepi32_epi8(biased));
      }
    }
  });
  return xu;
}

// The GEMM on x already in the unsigned layout (unsigned_rows or quantized_unsigned_rows).
template <class O>
void vnni_gemm(const Int8GemmArgs& a, const uint8_t* xu, int64_t ldx) {
  const int64_t kp = vnni_padded_k(a.k);
  const int64_t panels = vnni_padded_n(a.n) / kVnniPanel;
  const int64_t row_panel = std::max<int64_t>(kMaxRows, kRowPanelBytesPacked / kp / kMaxRows * kMaxRows);
  // At least ~1M multiply-adds per thread before splitting pays (a cell: kMaxRows rows x a panel).
  const int64_t min_cells =
      std::max<int64_t>(1, (int64_t(1) << 20) / std::max<int64_t>(1, std::min<int64_t>(a.m, kMaxRows) * kp * kVnniPanel));
  const int64_t groups = kp / 4;
  parallel_for_2d(a.m, kMaxRows, panels, a.num_threads, min_cells, [&](int64_t r_begin, int64_t r_end,
                                                                       int64_t p_begin, int64_t p_end) {
    std::vector<int32_t> partial(
        groups > kBlockGroups ? size_t(std::min(r_end - r_begin, row_panel) + kMaxRows) * kVnniPanel : 0);
    for (int64_t m0 = r_begin; m0 < r_end; m0 += row_panel) {
      const int64_t m1 = std::min(r_end, m0 + row_panel);
      for (int64_t p = p_begin; p < p_end; ++p) {
        const int8_t* panel = a.w + p * kVnniPanel * kp;
        for (int64_t g = 0; g < groups; g += kBlockGroups) {
          const KBlock kb{g, std::min(groups, g + kBlockGroups), g == 0, g + kBlockGroups >= groups};
          for (int64_t r = m0; r < m1; r += kMaxRows)
            vnni_tile_rows<O>(int(std::min<int64_t>(kMaxRows, m1 - r)), xu + r * ldx, ldx, panel, kb,
                              partial.data() + (r - m0) * kVnniPanel, a.w_colsum, a, r, p * kVnniPanel);
        }
      }
    }
  });
}

}  // namespace
}  // namespace prunq::cpu::avx512

namespace prunq::cpu {

void quantize_per_token_avx512(const QuantizeArgs& a) { avx512::quantize_per_token(a); }
namespace {
void vnni_gemm(const Int8GemmArgs& a, const uint8_t* xu, int64_t ldx) {
  switch (a.out_dtype) {
    case DType::f32: return avx512::vnni_gemm<float>(a, xu, ldx);
    case DType::bf16: return avx512::vnni_gemm<bf16>(a, xu, ldx);
    case DType::f16: return avx512::vnni_gemm<f16>(a, xu, ldx);
  }
}
}  // namespace

void int8_gemm_avx512(const Int8GemmArgs& a) {
  if (!a.w_colsum) return avx512::int8_gemm(a);
  const int64_t kp = vnni_padded_k(a.k), ldx = avx512::vnni_row_stride(kp);
  vnni_gemm(a, avx512::unsigned_rows(a, kp, ldx).get(), ldx);
}

void int8_dynamic_vnni_avx512(const void* x, DType dtype, const float* channel_scale, float* x_scale,
                              const Int8GemmArgs& a) {
  const int64_t kp = vnni_padded_k(a.k), ldx = avx512::vnni_row_stride(kp);
  std::unique_ptr<uint8_t[]> xu;
  switch (dtype) {
    case DType::f32: xu = avx512::quantized_unsigned_rows(static_cast<const float*>(x), channel_scale, x_scale, a, kp, ldx); break;
    case DType::bf16: xu = avx512::quantized_unsigned_rows(static_cast<const bf16*>(x), channel_scale, x_scale, a, kp, ldx); break;
    case DType::f16: xu = avx512::quantized_unsigned_rows(static_cast<const f16*>(x), channel_scale, x_scale, a, kp, ldx); break;
  }
  vnni_gemm(a, xu.get(), ldx);
}

// bf16 activations take the vdpbf16ps kernel where the CPU has it. For fp32 and fp16 the fp32 FMA
// tiles here measured faster than dequantizing strips of w to fp32 first.
void int8_weight_only_gemm_avx512(const WeightOnlyArgs& a) {
  if (a.dtype == DType::bf16 && has_avx512_bf16()) return int8_weight_only_gemm_avx512bf16(a);
  avx512::int8_weight_only_gemm(a);
}

}  // namespace prunq::cpu
