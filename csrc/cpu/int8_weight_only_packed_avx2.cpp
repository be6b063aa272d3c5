// The weight-only GEMM for AVX2 on the VNNI packing of w (pack_int8_vnni), any float x. A K block
// of 16 channels of a panel (for each group of 4 k, 64 bytes: 16 channels x 4 k) is converted
// once to fp32 in k-major order, 16 channels per k, into a buffer that stays in L1; every tile of
// rows then runs plain broadcast FMAs against it. Converting once per block rather than once per
// tile of rows keeps the conversion off the critical path from a few rows on, and at one row
// the kernel streams one byte per weight from memory, a quarter of fp32's.
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "../common/parallel.h"
#include "int8_gemm.h"
#include "padded_rows.h"
#include "vec_avx2.h"

namespace prunq::cpu::avx2 {
namespace {

constexpr int kSliceChannels = 16;
constexpr int64_t kGroupBytes = kVnniPanel * 4;
// How far ahead of the group being converted the first slice of a panel asks for the group's four
// lines of w (16 groups), so that the panel streams in order and the later slices find it in
// cache; past the end of w at the very last groups, which a prefetch may do.
constexpr int64_t kPrefetchBytes = 4096;
// 64 groups: a converted block of 16 channels is 16 KB of fp32.
constexpr int64_t kBlockGroups = 64;
// Rows of x (fp32) of one K block kept in L2 while the panels stream past them.
constexpr int64_t kRowPanelBytes = 256 << 10;
constexpr int kMaxRows = 6;  // 12 accumulators + 2 of w + 1 broadcast of 16 ymm
// Up to this many rows, w is converted in registers rather than through a buffer (convert_fma_tile).
constexpr int kDirectRows = 4;

// Asks for the four lines of the group kPrefetchBytes after the one at p.
inline void prefetch_group(const int8_t* p) {
  for (int line = 0; line < 4; ++line) _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes + 64 * line, _MM_HINT_T0);
}

// Byte t of each 32-bit lane of v as fp32: brought to the low byte with its sign by a left then an
// arithmetic right shift.
template <int t>
inline __m256 byte_as_float(__m256i v) {
  return _mm256_cvtepi32_ps(_mm256_srai_epi32(_mm256_slli_epi32(v, 24 - 8 * t), 24));
}

// Groups [g0, g1) of 16 channels of a panel (`w` points at the slice's first byte of group 0) as
// fp32: out[(g - g0) * 4 + t][c] = w[channel c, k 4g + t].
void convert_slice(const int8_t* w, int64_t g0, int64_t g1, bool prefetch, float* out) {
  for (int64_t g = g0; g < g1; ++g, out += 4 * kSliceChannels) {
    if (prefetch) prefetch_group(w + g * kGroupBytes);
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * kGroupBytes));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * kGroupBytes + 32));
    auto store = [&](auto t) {
      constexpr int kT = decltype(t)::value;
      _mm256_store_ps(out + kT * kSliceChannels, byte_as_float<kT>(lo));
      _mm256_store_ps(out + kT * kSliceChannels + 8, byte_as_float<kT>(hi));
    };
    store(std::integral_constant<int, 0>());
    store(std::integral_constant<int, 1>());
    store(std::integral_constant<int, 2>());
    store(std::integral_constant<int, 3>());
  }
}

// For up to kDirectRows rows of x: acc[i][0..16) (row stride kVnniPanel) += x rows . groups [g0, g1) of
// the slice at w, converted in registers and used at once (through a buffer, the conversion's
// stores and reloads cost more than they save at this size). For one or two rows, 4 / MR
// accumulators per register (k % (4 / MR) picks one) keep 8 FMA chains.
template <int MR>
__attribute__((noinline)) void convert_fma_tile(const float* x, int64_t ldx, const int8_t* w, int64_t g0, int64_t g1,
                                                bool first, bool prefetch, float* acc) {
  static_assert(MR <= kDirectRows, "a tile of few rows");
  constexpr int A = MR <= 2 ? 4 / MR : 1;
  __m256 c[A][MR][2];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < 2; ++j) {
      c[0][i][j] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(acc + i * kVnniPanel + 8 * j);
#pragma GCC unroll 4
      for (int a = 1; a < A; ++a) c[a][i][j] = _mm256_setzero_ps();
    }
  for (int64_t g = g0; g < g1; ++g) {
    if (prefetch) prefetch_group(w + g * kGroupBytes);
    const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * kGroupBytes));
    const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * kGroupBytes + 32));
    auto step = [&](auto t) {
      constexpr int kT = decltype(t)::value;
      const __m256 w0 = byte_as_float<kT>(lo), w1 = byte_as_float<kT>(hi);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m256 xv = _mm256_broadcast_ss(x + i * ldx + 4 * g + kT);
        c[kT % A][i][0] = _mm256_fmadd_ps(xv, w0, c[kT % A][i][0]);
        c[kT % A][i][1] = _mm256_fmadd_ps(xv, w1, c[kT % A][i][1]);
      }
    };
    step(std::integral_constant<int, 0>());
    step(std::integral_constant<int, 1>());
    step(std::integral_constant<int, 2>());
    step(std::integral_constant<int, 3>());
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < 2; ++j) {
      __m256 sum = c[0][i][j];
#pragma GCC unroll 4
      for (int a = 1; a < A; ++a) sum = _mm256_add_ps(sum, c[a][i][j]);
      _mm256_storeu_ps(acc + i * kVnniPanel + 8 * j, sum);
    }
}

// acc[i][0..16) (row stride kVnniPanel) += x rows [.., ks) . slice; `first` starts from zero.
// For few rows, A accumulators per register (k % A picks one) keep enough independent FMA chains
// to hide the FMA's latency. Not inlined, for the reason madd_tile is not (int8_gemm_madd_kernel.h); the loops
// over registers are unrolled so that the accumulators stay in registers.
template <int MR>
__attribute__((noinline)) void fma_tile(const float* x, int64_t ldx, const float* slice, int64_t ks, bool first,
                                        float* acc) {
  constexpr int A = MR == 1 ? 4 : MR == 2 ? 2 : 1;  // k % A picks the chain
  __m256 c[A][MR][2];
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < 2; ++j) {
      c[0][i][j] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(acc + i * kVnniPanel + 8 * j);
      for (int a = 1; a < A; ++a) c[a][i][j] = _mm256_setzero_ps();
    }
  for (int64_t t = 0; t < ks; t += A) {  // ks is a multiple of 4
#pragma GCC unroll 4
    for (int a = 0; a < A; ++a) {
      const float* w = slice + (t + a) * kSliceChannels;
      const __m256 w0 = _mm256_load_ps(w), w1 = _mm256_load_ps(w + 8);
#pragma GCC unroll 12
      for (int i = 0; i < MR; ++i) {
        const __m256 xv = _mm256_broadcast_ss(x + i * ldx + t + a);
        c[a][i][0] = _mm256_fmadd_ps(xv, w0, c[a][i][0]);
        c[a][i][1] = _mm256_fmadd_ps(xv, w1, c[a][i][1]);
      }
    }
  }
#pragma GCC unroll 12
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < 2; ++j) {
      __m256 sum = c[0][i][j];
      for (int a = 1; a < A; ++a) sum = _mm256_add_ps(sum, c[a][i][j]);
      _mm256_storeu_ps(acc + i * kVnniPanel + 8 * j, sum);
    }
}

template <class T>
void weight_only_packed(const WeightOnlyArgs& a) {
  const int64_t kp = vnni_padded_k(a.k), groups = kp / 4;
  const int64_t ldx = kp + 16;  // one cache line past a multiple of 64 bytes: rows in different L1 sets
  const AlignedRows<float> x = padded_rows<float>(static_cast<const T*>(a.x), a.m, a.k, kp, ldx, a.num_threads);
  const int64_t panels = vnni_padded_n(a.n) / kVnniPanel;
  const int64_t row_panel =
      std::max<int64_t>(kMaxRows, kRowPanelBytes / (4 * 4 * kBlockGroups) / kMaxRows * kMaxRows);
  // At least ~64K multiply-adds per thread before splitting pays (at one row, ~64K weights to
  // convert); counting weights alone kept a narrow w (10 panels at N = 160, K = 384) on one
  // thread however many rows x had.
  const int64_t min_panels = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, a.m * kp * kVnniPanel));
  auto rows_and_panels = [&](int64_t r_begin, int64_t r_end, int64_t p_begin, int64_t p_end) {
    std::vector<float> acc(size_t(std::min(r_end - r_begin, row_panel)) * kVnniPanel);
    AlignedRows<float> slice(static_cast<float*>(std::aligned_alloc(64, 4 * kBlockGroups * kSliceChannels * sizeof(float))));
    for (int64_t m0 = r_begin; m0 < r_end; m0 += row_panel) {
      const int64_t m1 = std::min(r_end, m0 + row_panel);
      for (int64_t p = p_begin; p < p_end; ++p) {
        const int64_t n0 = p * kVnniPanel;
        const int cols = int(std::min<int64_t>(kVnniPanel, a.n - n0));
        const int slices = (cols + kSliceChannels - 1) / kSliceChannels;
        const int8_t* panel = a.w + p * kVnniPanel * kp;
        for (int64_t g = 0; g == 0 || g < groups; g += kBlockGroups) {  // once for K = 0: zero sums
          const int64_t g_end = std::min(groups, g + kBlockGroups);
          for (int s = 0; s < slices; ++s) {
            if (a.m <= kDirectRows) {
              with_rows<kDirectRows>(int(a.m), [&](auto rows) {
                convert_fma_tile<rows>(x.get(), ldx, panel + s * kSliceChannels * 4, g, g_end, g == 0, s == 0,
                                       acc.data() + s * kSliceChannels);
              });
              continue;
            }
            convert_slice(panel + s * kSliceChannels * 4, g, g_end, s == 0, slice.get());
            for (int64_t r = m0; r < m1; r += kMaxRows)
              with_rows<kMaxRows>(int(std::min<int64_t>(kMaxRows, m1 - r)), [&](auto rows) {
                fma_tile<rows>(x.get() + r * ldx + 4 * g, ldx, slice.get(), 4 * (g_end - g), g == 0,
                               acc.data() + (r - m0) * kVnniPanel + s * kSliceChannels);
              });
          }
        }
        for (int64_t r = m0; r < m1; ++r) {
          T* out = static_cast<T*>(a.out) + r * a.n + n0;
          for (int j = 0; j < cols; j += Vec::width) {
            const Vec sums = Vec::load(acc.data() + (r - m0) * kVnniPanel + j);
            if (cols - j >= Vec::width) {
              const Vec bias = a.bias ? Vec::load(a.bias + n0 + j) : Vec::zero();
              fma(sums, Vec::load(a.w_scale + n0 + j), bias).store(out + j);
            } else {
              const int n = cols - j;
              const Vec bias = a.bias ? Vec::load(a.bias + n0 + j, n) : Vec::zero();
              fma(sums, Vec::load(a.w_scale + n0 + j, n), bias).store(out + j, n);
            }
          }
        }
      }
    }
  };
  // Threads split the rows of x where each gets a whole row panel, else the panels of w. Split by
  // panels, every thread reads every row of x, half of them written by the other thread when x
  // was padded: at 4096 x 384 x 160 on a Zen 1 that ran at 0.62x fp32 Linear, the row split 0.93x.
  if (a.m >= int64_t(a.num_threads) * row_panel) {
    parallel_for((a.m + kMaxRows - 1) / kMaxRows, a.num_threads, 1, [&](int64_t t_begin, int64_t t_end) {
      rows_and_panels(t_begin * kMaxRows, std::min(a.m, t_end * kMaxRows), 0, panels);
    });
  } else {
    parallel_for(panels, a.num_threads, min_panels, [&](int64_t p_begin, int64_t p_end) { rows_and_panels(0, a.m, p_begin, p_end); });
  }
}

}  // namespace
}  // namespace prunq::cpu::avx2

namespace prunq::cpu {

void int8_weight_only_packed_avx2(const WeightOnlyArgs& a) {
  switch (a.dtype) {
    case DType::f32: return avx2::weight_only_packed<float>(a);
    case DType::bf16: return avx2::weight_only_packed<bf16>(a);
    case DType::f16: return avx2::weight_only_packed<f16>(a);
  }
}

}  // namespace prunq::cpu
