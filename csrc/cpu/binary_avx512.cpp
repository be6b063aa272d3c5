// AVX-512 with VPOPCNTDQ: popcount of 512 bits in one instruction; BinaryConnect adds x under
// each weight word's bits as masks.
#include <immintrin.h>

#include <algorithm>

#include "../common/parallel.h"
#include "binary.h"
#include "padded_rows.h"
#include "vec_avx512.h"

namespace prunq::cpu::avx512 {
namespace {

bool columns_gemm(const BinaryGemmArgs& g);
bool table_connect(const BinaryLinearArgs& a);

struct Bits {
  static constexpr int kWords = 16, kMR = 4, kNR = 4;
  static constexpr int64_t kStepsPerCount = int64_t(1) << 40;
  using Reg = __m512i;
  using Count = __m512i;
  using Sum = __m512;
  static Reg load(const uint32_t* p) { return _mm512_loadu_si512(p); }
  static Reg load_partial(const uint32_t* p, int n) { return _mm512_maskz_loadu_epi32(__mmask16((1u << n) - 1), p); }
  static Reg valid_bits(int n, uint32_t last) {
    return _mm512_mask_set1_epi32(_mm512_maskz_set1_epi32(__mmask16((1u << n) - 1), -1), __mmask16(1u << (n - 1)),
                                  int(last));
  }
  static Reg and_(Reg a, Reg b) { return _mm512_and_si512(a, b); }
  static Count zero_count() { return _mm512_setzero_si512(); }
  static Count add_popcount_xor(Count c, Reg a, Reg b) {
    return _mm512_add_epi64(c, _mm512_popcnt_epi64(_mm512_xor_si512(a, b)));
  }
  static int64_t total(Count c) { return _mm512_reduce_add_epi64(c); }
  static uint32_t sign_word(const float* x) {
    const __m512 zero = _mm512_setzero_ps();
    return uint32_t(_mm512_cmp_ps_mask(_mm512_loadu_ps(x), zero, _CMP_GE_OQ)) |
           uint32_t(_mm512_cmp_ps_mask(_mm512_loadu_ps(x + 16), zero, _CMP_GE_OQ)) << 16;
  }
  static Sum zero_sum() { return _mm512_setzero_ps(); }
  static Sum add_where_set(Sum s, const float* x, uint32_t word) {
    s = _mm512_mask_add_ps(s, __mmask16(word), s, _mm512_loadu_ps(x));
    return _mm512_mask_add_ps(s, __mmask16(word >> 16), s, _mm512_loadu_ps(x + 16));
  }
  static float total(Sum s) { return _mm512_reduce_add_ps(s); }
  static bool many_rows_gemm(const BinaryGemmArgs& g) { return columns_gemm(g); }
  static bool table_connect(const BinaryLinearArgs& a) { return avx512::table_connect(a); }
};

// From enough rows of a, the GEMM runs on B transposed (binary_columns: 16 channels to a
// register): each word of a row of a is broadcast against 16 channels' words, and the popcounts
// add up per channel in its own lane, with no horizontal sums. kRows x kVecs registers of sums.
// Measured on Zen 5 at K = 4096: from 16 rows when B's columns are given (a module keeps them),
// from 128 when they must be derived first (about 0.3 ms for 4096 x 4096).
constexpr int64_t kColumnsFromRows = 16, kDeriveColumnsFromRows = 128;
constexpr int kRows = 4, kVecs = 6;

template <int MR, int NV>
void columns_tile(const uint32_t* a, int64_t words, const uint32_t* bt, uint32_t last, __m512i sums[][kVecs]) {
  __m512i acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_si512();
  const auto step = [&](int64_t w, uint32_t keep) {
    __m512i b[NV];
    for (int v = 0; v < NV; ++v) b[v] = _mm512_and_si512(_mm512_loadu_si512(bt + (v * words + w) * 16), _mm512_set1_epi32(int(keep)));
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const __m512i x = _mm512_set1_epi32(int(a[i * words + w] & keep));
#pragma GCC unroll 6
      for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_add_epi32(acc[i][v], _mm512_popcnt_epi32(_mm512_xor_si512(b[v], x)));
    }
  };
  for (int64_t w = 0; w + 1 < words; ++w) step(w, ~0u);
  step(words - 1, last);
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) sums[i][v] = acc[i][v];
}

template <class T>
void columns_store(const BinaryGemmArgs& g, int64_t i0, int rows, int64_t j0, int vecs, __m512i ones[][kVecs]) {
  for (int i = 0; i < rows; ++i) {
    const float alpha = g.alpha ? g.alpha[i0 + i] : 1.f;
    for (int v = 0; v < vecs; ++v) {
      const int64_t n0 = j0 + 16 * v;
      const int live = int(std::min<int64_t>(16, g.n - n0));
      const __m512i dots = _mm512_sub_epi32(_mm512_set1_epi32(int(g.k)), _mm512_slli_epi32(ones[i][v], 1));
      if constexpr (std::is_same_v<T, int32_t>) {
        _mm512_mask_storeu_epi32(g.dots + (i0 + i) * g.n + n0, __mmask16((1u << live) - 1), dots);
      } else {
        Vec y = Vec{_mm512_cvtepi32_ps(dots)} * Vec::load(g.w_scale + n0, live) * Vec::splat(alpha);
        if (g.bias) y = y + Vec::load(g.bias + n0, live);
        y.store(static_cast<T*>(g.out) + (i0 + i) * g.n + n0, live);
      }
    }
  }
}

bool columns_gemm(const BinaryGemmArgs& g) {
  if (g.m < (g.b_columns ? kColumnsFromRows : kDeriveColumnsFromRows)) return false;
  const int64_t np = columns_width(g.n);
  AlignedRows<uint32_t> derived;
  const uint32_t* bt = g.b_columns;
  if (!bt) {
    derived.reset(static_cast<uint32_t*>(std::aligned_alloc(64, size_t(g.words * np) * 4 + 64)));
    binary_columns(g.b, g.n, g.words, derived.get(), g.num_threads);
    bt = derived.get();
  }
  const uint32_t last = g.k % 32 == 0 ? ~0u : (1u << (g.k % 32)) - 1;
  const int64_t blocks = (np / 16 + kVecs - 1) / kVecs;
  parallel_for(blocks, g.num_threads, 1, [&](int64_t b0, int64_t b1) {
    __m512i ones[kRows][kVecs];
    for (int64_t block = b0; block < b1; ++block) {
      const int64_t j0 = block * kVecs * 16;
      const int vecs = int(std::min<int64_t>(kVecs, (np - j0) / 16));
      for (int64_t i0 = 0; i0 < g.m; i0 += kRows) {
        const int rows = int(std::min<int64_t>(kRows, g.m - i0));
        with_rows<kRows>(rows, [&](auto mr) {
          with_rows<kVecs>(vecs, [&](auto nv) {
            columns_tile<mr, nv>(g.a + i0 * g.words, g.words, bt + j0 * g.words, last, ones);
          });
        });
        if (g.dots) {
          columns_store<int32_t>(g, i0, rows, j0, vecs, ones);
        } else {
          switch (g.dtype) {
            case DType::f32: columns_store<float>(g, i0, rows, j0, vecs, ones); break;
            case DType::bf16: columns_store<bf16>(g, i0, rows, j0, vecs, ones); break;
            case DType::f16: columns_store<f16>(g, i0, rows, j0, vecs, ones); break;
          }
        }
      }
    }
  });
  return true;
}

// BinaryConnect on the weight columns, by table lookup (as T-MAC and bitnet.cpp do for low-bit
// weights): for each row of x and each group of 4 k, the 16 sums of the x's under each pattern of
// set bits; then for 16 channels at once, each channel's 4 bits of the group index the table
// (vpermps reads the low 4 bits of each lane, so the channels' words need only a shift). dot =
// 2 * (sum of x where the bits are set) - (sum of x). kTableRows rows share each shifted word.
constexpr int kTableRows = 4, kTableVecs = 4;

// tables[g * 16 + c] = sum of x[4 g + b] over the bits b set in c, for the groups of kp = words * 32.
void subset_sums(const float* x, int64_t kp, float* tables) {
  const __m512 bit0 = _mm512_setr_ps(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
  const __m512 bit1 = _mm512_setr_ps(0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1);
  const __m512 bit2 = _mm512_setr_ps(0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1);
  const __m512 bit3 = _mm512_setr_ps(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
  for (int64_t g = 0; g < kp / 4; ++g) {
    __m512 t = _mm512_mul_ps(_mm512_set1_ps(x[4 * g]), bit0);
    t = _mm512_fmadd_ps(_mm512_set1_ps(x[4 * g + 1]), bit1, t);
    t = _mm512_fmadd_ps(_mm512_set1_ps(x[4 * g + 2]), bit2, t);
    _mm512_store_ps(tables + 16 * g, _mm512_fmadd_ps(_mm512_set1_ps(x[4 * g + 3]), bit3, t));
  }
}

template <int MR, int NV>
void table_tile(const float* tables, int64_t table_stride, const uint32_t* columns, int64_t group_words, int64_t words,
                __m512 sums[][kTableVecs]) {
  __m512 acc[MR][NV];
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_setzero_ps();
  for (int64_t w = 0; w < words; ++w) {
    __m512i bits[NV];
    for (int v = 0; v < NV; ++v) bits[v] = _mm512_loadu_si512(columns + (v * group_words + w) * 16);
#pragma GCC unroll 8
    for (int nibble = 0; nibble < 8; ++nibble) {
      __m512i index[NV];
      for (int v = 0; v < NV; ++v) index[v] = _mm512_srli_epi32(bits[v], 4 * nibble);
#pragma GCC unroll 4
      for (int i = 0; i < MR; ++i) {
        const __m512 table = _mm512_load_ps(tables + i * table_stride + 16 * (8 * w + nibble));
#pragma GCC unroll 4
        for (int v = 0; v < NV; ++v) acc[i][v] = _mm512_add_ps(acc[i][v], _mm512_permutexvar_ps(index[v], table));
      }
    }
  }
  for (int i = 0; i < MR; ++i)
    for (int v = 0; v < NV; ++v) sums[i][v] = acc[i][v];
}

// K is walked in chunks of kChunkWords words, so that a tile of rows' tables (32 KB) stays in L1
// while every channel block of the thread passes, and rows in blocks of kRowBlock, whose partial
// sums wait in memory between chunks: W's columns are then read from memory once per row block.
constexpr int64_t kChunkWords = 16, kRowBlock = 64;

template <class T>
void table_connect_typed(const BinaryLinearArgs& a, const uint32_t* columns) {
  const int64_t kp = a.words * 32, np = columns_width(a.n), table_stride = kChunkWords * 8 * 16;
  const AlignedRows<float> x = padded_rows<float>(static_cast<const T*>(a.x), a.m, a.k, kp, kp, a.num_threads);
  const int64_t blocks = (np / 16 + kTableVecs - 1) / kTableVecs;
  auto* out = static_cast<T*>(a.out);
  parallel_for(blocks, a.num_threads, 1, [&](int64_t b0, int64_t b1) {
    const int64_t first = b0 * kTableVecs * 16, width = std::min(np, b1 * kTableVecs * 16) - first;
    AlignedRows<float> tables(static_cast<float*>(std::aligned_alloc(64, size_t(kRowBlock * table_stride) * 4)));
    AlignedRows<float> partial(static_cast<float*>(std::aligned_alloc(64, size_t(kRowBlock * width) * 4)));
    __m512 sums[kTableRows][kTableVecs];
    for (int64_t r0 = 0; r0 < a.m; r0 += kRowBlock) {
      const int64_t row_block = std::min(kRowBlock, a.m - r0);
      std::fill(partial.get(), partial.get() + row_block * width, 0.f);
      for (int64_t c0 = 0; c0 < a.words; c0 += kChunkWords) {
        const int64_t chunk = std::min(kChunkWords, a.words - c0);
        for (int64_t i = 0; i < row_block; ++i)
          subset_sums(x.get() + (r0 + i) * kp + 32 * c0, 32 * chunk, tables.get() + i * table_stride);
        for (int64_t i0 = 0; i0 < row_block; i0 += kTableRows) {
          const int rows = int(std::min<int64_t>(kTableRows, row_block - i0));
          for (int64_t block = b0; block < b1; ++block) {
            const int64_t j0 = block * kTableVecs * 16;
            const int vecs = int(std::min<int64_t>(kTableVecs, (np - j0) / 16));
            with_rows<kTableRows>(rows, [&](auto mr) {
              with_rows<kTableVecs>(vecs, [&](auto nv) {
                table_tile<mr, nv>(tables.get() + i0 * table_stride, table_stride,
                                   columns + j0 * a.words + c0 * 16, a.words, chunk, sums);
              });
            });
            for (int i = 0; i < rows; ++i)
              for (int v = 0; v < vecs; ++v) {
                float* p = partial.get() + (i0 + i) * width + j0 - first + 16 * v;
                _mm512_store_ps(p, _mm512_add_ps(_mm512_load_ps(p), sums[i][v]));
              }
          }
        }
      }
      for (int64_t i = 0; i < row_block; ++i) {
        float total = 0.f;
        for (int64_t j = 0; j < a.k; ++j) total += x[(r0 + i) * kp + j];
        for (int64_t n0 = first; n0 < std::min(a.n, first + width); n0 += 16) {
          const int live = int(std::min<int64_t>(16, a.n - n0));
          Vec y = (Vec::load(partial.get() + i * width + n0 - first) * Vec::splat(2.f) - Vec::splat(total)) *
                  Vec::load(a.w_scale + n0, live);
          if (a.bias) y = y + Vec::load(a.bias + n0, live);
          y.store(out + (r0 + i) * a.n + n0, live);
        }
      }
    }
  });
}

bool table_connect(const BinaryLinearArgs& a) {
  if (!a.w_columns && a.m < kDeriveColumnsFromRows) return false;
  AlignedRows<uint32_t> derived;
  const uint32_t* columns = a.w_columns;
  if (!columns) {
    derived.reset(static_cast<uint32_t*>(std::aligned_alloc(64, size_t(a.words * columns_width(a.n)) * 4 + 64)));
    binary_columns(a.w, a.n, a.words, derived.get(), a.num_threads);
    columns = derived.get();
  }
  switch (a.dtype) {
    case DType::f32: table_connect_typed<float>(a, columns); break;
    case DType::bf16: table_connect_typed<bf16>(a, columns); break;
    case DType::f16: table_connect_typed<f16>(a, columns); break;
  }
  return true;
}

}  // namespace
}  // namespace prunq::cpu::avx512

#define PRUNQ_ISA avx512
#include "binary_kernel.h"

namespace prunq::cpu {
void pack_bits_avx512(const void* x, DType dtype, int64_t m, int64_t k, int64_t words, uint32_t* bits, float* alpha,
                      int num_threads) {
  avx512::pack_bits(x, dtype, m, k, words, bits, alpha, num_threads);
}
void binary_gemm_avx512(const BinaryGemmArgs& args) { avx512::binary_gemm(args); }
void binary_linear_avx512(const BinaryLinearArgs& args) { avx512::binary_linear(args); }
}  // namespace prunq::cpu
