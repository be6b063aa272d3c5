// The weight-only GEMM for bf16 activations on vdpbf16ps (AVX512_BF16): each instruction does 32
// multiply-adds of bf16 pairs into fp32, twice the rate of fp32 FMA, and int8 is exact in bf16.
//
// Threads split N into blocks of channels. Within a block, a tile of up to 6 rows of x meets
// strips of 4 channels; each strip's int8 weights are converted to bf16 in registers as they are
// read, and never stored: converting again for every row tile measured faster than a round trip
// through a bf16 buffer, and the block's int8 weights (64 x K bytes) stay in L2 between tiles.
// The tile keeps 24 fp32 accumulators along K and reduces them at the end. Results collect in a
// small fp32 block and go out as whole rows of the block, not as 4-channel pieces scattered
// across the rows of y. While a block's tiles run, they prefetch the thread's next block into L2
// in equal parts: the hardware prefetcher alone, on rows of w that each span a page or so,
// streamed w from memory 10-20% slower (M = 1 to 16). x is copied into rows padded with zeros
// to a multiple of 32, so the loop over K has no tail on x.
#include <algorithm>

#include "int8_gemm.h"
#include "padded_rows.h"
#include "vec_avx512.h"

namespace prunq::cpu::avx512 {
namespace {

constexpr int kLanes = 32;  // bf16 per register
constexpr int kStripCols = 4;
constexpr int kMaxTileRows = 6;  // 24 accumulators, 4 w registers, 1 x register
constexpr int kBlockCols = 64;   // channels a tile covers before its results are written out
constexpr int kStripsPerBlock = kBlockCols / kStripCols;

inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
  auto half = [](__m512 v) {
    return _mm256_add_ps(_mm512_castps512_ps256(v), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  };
  const __m256 abcd = _mm256_hadd_ps(_mm256_hadd_ps(half(a), half(b)), _mm256_hadd_ps(half(c), half(d)));
  return _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1));
}

// Sixteen int8 weights from p (the first n when n < 16, the rest zero), as fp32.
inline __m512 int8_to_f32(const int8_t* p, int n) {
  const __m128i bytes = n >= 16 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                                : _mm_maskz_loadu_epi8(__mmask16((1u << n) - 1), p);
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
}

// Thirty-two int8 weights from p (the first n when n < 32, the rest zero) as bf16.
inline __m512bh int8_to_bf16(const int8_t* p, int n) {
  return _mm512_cvtne2ps_pbh(int8_to_f32(p + 16, std::max(n - 16, 0)), int8_to_f32(p, std::min(n, 16)));
}

// acc[i * kBlockCols + j] = sum_k x[i, k] * w_j[k] for MR rows of x (row stride ldx) and the
// strip's four channels; w_j = strip[j] holds k int8 weights. Prefetches the 64-byte lines
// [0, prefetch_lines) from `prefetch`, spread over the loop.
template <int MR>
void strip_tile(const bf16* x, int64_t ldx, const int8_t* const strip[kStripCols], int64_t k, float* acc,
                const int8_t* prefetch, int64_t prefetch_lines) {
  __m512 c[MR][kStripCols];
  for (auto& row : c)
    for (auto& v : row) v = _mm512_setzero_ps();
  auto step = [&](int64_t kk, int n) {
    __m512bh w[kStripCols];
    for (int j = 0; j < kStripCols; ++j) w[j] = int8_to_bf16(strip[j] + kk, n);
    for (int i = 0; i < MR; ++i) {
      const __m512bh xv = (__m512bh)_mm512_load_si512(x + i * ldx + kk);
      for (int j = 0; j < kStripCols; ++j) c[i][j] = _mm512_dpbf16_ps(c[i][j], xv, w[j]);
    }
  };
  const int64_t steps = k / kLanes;
  const int64_t lines_per_step = steps ? (prefetch_lines + steps - 1) / steps : 0;
  int64_t kk = 0, line = 0;
  for (; kk + kLanes <= k; kk += kLanes) {
    for (int64_t i = 0; i < lines_per_step && line < prefetch_lines; ++i, ++line)
      _mm_prefetch(reinterpret_cast<const char*>(prefetch + line * 64), _MM_HINT_T1);
    step(kk, kLanes);
  }
  if (kk < k) step(kk, int(k - kk));
  for (int i = 0; i < MR; ++i) _mm_storeu_ps(acc + i * kBlockCols, reduce4(c[i][0], c[i][1], c[i][2], c[i][3]));
}

void weight_only_bf16(const WeightOnlyArgs& a) {
  const int64_t kp = (a.k + kLanes - 1) / kLanes * kLanes;
  // One cache line more than a multiple of 64 bytes, so the rows of a tile use different L1 sets.
  const int64_t ldx = kp + 32;
  const AlignedRows<bf16> xp = padded_rows<bf16>(static_cast<const bf16*>(a.x), a.m, a.k, kp, ldx, a.num_threads);
  auto* out = static_cast<bf16*>(a.out);
  const int64_t strips = (a.n + kStripCols - 1) / kStripCols;
  // At least ~64 K multiply-adds per thread before splitting pays, and a whole block per thread
  // where there are strips enough.
  int64_t min_strips = std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, a.m * kp * kStripCols));
  if (strips >= int64_t(a.num_threads) * kStripsPerBlock) min_strips = std::max<int64_t>(min_strips, kStripsPerBlock);
  parallel_for(strips, a.num_threads, min_strips, [&](int64_t s_begin, int64_t s_end) {
    for (int64_t block = s_begin; block < s_end; block += kStripsPerBlock) {
      const int64_t n0 = block * kStripCols, n1 = std::min(a.n, std::min(s_end, block + kStripsPerBlock) * kStripCols);
      const int cols = int(n1 - n0);
      const int64_t next_n1 = std::min(a.n, std::min(s_end, block + 2 * kStripsPerBlock) * kStripCols);
      const int64_t next_lines = ((next_n1 - n1) * a.k + 63) / 64;  // the next block's w, contiguous after this one
      const int64_t tiles = (a.m + kMaxTileRows - 1) / kMaxTileRows * ((cols + kStripCols - 1) / kStripCols);
      const int64_t lines_per_tile = (next_lines + tiles - 1) / std::max<int64_t>(tiles, 1);
      int64_t tile = 0;
      for (int64_t r = 0; r < a.m; r += kMaxTileRows) {
        const int rows = int(std::min<int64_t>(kMaxTileRows, a.m - r));
        alignas(64) float acc[kMaxTileRows][kBlockCols];
        for (int c0 = 0; c0 < cols; c0 += kStripCols) {
          const int8_t* strip[kStripCols];  // channels past N repeat the strip's first (computed, never stored)
          for (int j = 0; j < kStripCols; ++j) strip[j] = a.w + (n0 + c0 + (c0 + j < cols ? j : 0)) * a.k;
          const int64_t first_line = std::min(next_lines, tile++ * lines_per_tile);
          const int64_t lines = std::min(next_lines - first_line, lines_per_tile);
          with_rows<kMaxTileRows>(rows, [&](auto mr) {
            strip_tile<mr>(xp.get() + r * ldx, ldx, strip, a.k, &acc[0][c0], a.w + n1 * a.k + first_line * 64, lines);
          });
        }
        for (int c0 = 0; c0 < cols; c0 += Vec::width) {
          const int n = std::min(Vec::width, cols - c0);
          const Vec scale = Vec::load(a.w_scale + n0 + c0, n);
          const Vec bias = a.bias ? Vec::load(a.bias + n0 + c0, n) : Vec::zero();
          for (int i = 0; i < rows; ++i) fma(Vec::load(&acc[i][c0], n), scale, bias).store(out + (r + i) * a.n + n0 + c0, n);
        }
      }
    }
  });
}

}  // namespace
}  // namespace prunq::cpu::avx512

namespace prunq::cpu {

void int8_weight_only_gemm_avx512bf16(const WeightOnlyArgs& a) { avx512::weight_only_bf16(a); }

}  // namespace prunq::cpu
