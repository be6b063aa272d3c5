// The packed binary kernels written once over an instruction set's `Bits`:
//   kWords                          32-bit words per vector step; kMR x kNR the register tile
//   Reg load(const uint32_t*);  Reg load_partial(const uint32_t*, int n)   n < kWords words, zeros after
//   Reg valid_bits(int n, uint32_t last)   all ones in words < n - 1, `last` in word n - 1, zeros after
//   Reg and_(Reg, Reg);  Count zero_count();  int64_t total(Count)
//   kStepsPerCount                  steps a Count can add before it must be totalled (its lanes'
//                                   width)
//   Count add_popcount_xor(Count, Reg a, Reg b)    += popcount(a xor b), at most kStepsPerCount
//                                                  times before total()
//   uint32_t sign_word(const float* x)             bit i set where x[i] >= 0, i < 32
//   Sum zero_sum();  float total(Sum)
//   Sum add_where_set(Sum, const float* x, uint32_t word)   += x[i] where bit i of word is set
//   bool many_rows_gemm(const BinaryGemmArgs&)   runs the GEMM another way where that is faster
//   bool table_connect(const BinaryLinearArgs&)  runs BinaryConnect another way where that is faster
// Included by each instruction set's translation unit after its Bits, with PRUNQ_ISA naming its
// namespace.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "../common/parallel.h"
#include "binary.h"
#include "padded_rows.h"

namespace prunq::cpu::PRUNQ_ISA {
namespace {

uint32_t last_word_mask(int64_t k) { return k % 32 == 0 ? ~0u : (1u << (k % 32)) - 1; }

// dots[i][j] = k - 2 popcount(a row i xor b row j), MR rows of a (stride words), NR rows of b.
// The last vector step loads the words left (masked loads) and, where k is not a multiple of 32,
// clears the bits past k of the row's last word.
template <int MR, int NR>
void popcount_tile(const uint32_t* a, const uint32_t* b, int64_t words, int64_t k, int32_t dots[][Bits::kNR]) {
  typename Bits::Count count[MR][NR];
  int64_t ones[MR][NR] = {};
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) count[i][j] = Bits::zero_count();
  const auto flush = [&] {
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) {
        ones[i][j] += Bits::total(count[i][j]);
        count[i][j] = Bits::zero_count();
      }
  };
  const int64_t full = words / Bits::kWords * Bits::kWords - (k % 32 && words % Bits::kWords == 0 ? Bits::kWords : 0);
  for (int64_t w = 0, steps = 0; w < full; w += Bits::kWords) {
    if (++steps > Bits::kStepsPerCount) {
      flush();
      steps = 1;
    }
    typename Bits::Reg ra[MR], rb[NR];
    for (int i = 0; i < MR; ++i) ra[i] = Bits::load(a + i * words + w);
    for (int j = 0; j < NR; ++j) rb[j] = Bits::load(b + j * words + w);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < NR; ++j) count[i][j] = Bits::add_popcount_xor(count[i][j], ra[i], rb[j]);
  }
  if (const int left = int(words - full)) {
    const typename Bits::Reg keep = Bits::valid_bits(left, last_word_mask(k));
    typename Bits::Reg rb[NR];
    for (int j = 0; j < NR; ++j) rb[j] = Bits::and_(Bits::load_partial(b + j * words + full, left), keep);
    for (int i = 0; i < MR; ++i) {
      const typename Bits::Reg ra = Bits::and_(Bits::load_partial(a + i * words + full, left), keep);
      for (int j = 0; j < NR; ++j) count[i][j] = Bits::add_popcount_xor(count[i][j], ra, rb[j]);
    }
  }
  flush();
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) dots[i][j] = int32_t(k - 2 * ones[i][j]);
}

// Calls f(dots, i0, rows, j0, cols) for every register tile of the m x n dot products, threads
// splitting n.
template <class F>
void for_each_tile(const uint32_t* a, const uint32_t* b, int64_t m, int64_t n, int64_t k, int64_t words,
                   int num_threads, F&& f) {
  const int64_t min_cols = 1 + (int64_t(1) << 16) / std::max<int64_t>(1, m * words * 32);
  parallel_for((n + Bits::kNR - 1) / Bits::kNR, num_threads, (min_cols + Bits::kNR - 1) / Bits::kNR,
               [&](int64_t jb_begin, int64_t jb_end) {
    int32_t dots[Bits::kMR][Bits::kNR];
    for (int64_t j0 = jb_begin * Bits::kNR; j0 < std::min(n, jb_end * Bits::kNR); j0 += Bits::kNR) {
      const int cols = int(std::min<int64_t>(Bits::kNR, n - j0));
      for (int64_t i0 = 0; i0 < m; i0 += Bits::kMR) {
        const int rows = int(std::min<int64_t>(Bits::kMR, m - i0));
        with_rows<Bits::kMR>(rows, [&](auto mr) {
          with_rows<Bits::kNR>(cols, [&](auto nr) {
            popcount_tile<mr, nr>(a + i0 * words, b + j0 * words, words, k, dots);
          });
        });
        f(dots, i0, rows, j0, cols);
      }
    }
  });
}

template <class T>
void gemm_to_float(const BinaryGemmArgs& g) {
  auto* out = static_cast<T*>(g.out);
  for_each_tile(g.a, g.b, g.m, g.n, g.k, g.words, g.num_threads,
                [&](int32_t dots[][Bits::kNR], int64_t i0, int rows, int64_t j0, int cols) {
    for (int i = 0; i < rows; ++i) {
      const float alpha = g.alpha ? g.alpha[i0 + i] : 1.f;
      for (int j = 0; j < cols; ++j)
        out[(i0 + i) * g.n + j0 + j] =
            from_float<T>(alpha * g.w_scale[j0 + j] * float(dots[i][j]) + (g.bias ? g.bias[j0 + j] : 0.f));
    }
  });
}

// BinaryConnect: sums[i][j] = x row i . sign(b row j) for MR rows of x (fp32, zero-padded to
// words * 32, stride ldx) and NR rows of b, from the sums of x where the bits are set.
template <int MR, int NR>
void connect_tile(const float* x, int64_t ldx, const float* x_totals, const uint32_t* b, int64_t words,
                  float sums[][Bits::kNR]) {
  typename Bits::Sum sum[MR][NR];
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) sum[i][j] = Bits::zero_sum();
  for (int64_t w = 0; w < words; ++w)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) {
      const uint32_t word = b[j * words + w];
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) sum[i][j] = Bits::add_where_set(sum[i][j], x + i * ldx + 32 * w, word);
    }
  for (int i = 0; i < MR; ++i)
    for (int j = 0; j < NR; ++j) sums[i][j] = 2.f * Bits::total(sum[i][j]) - x_totals[i];
}

template <class T>
void binary_connect(const BinaryLinearArgs& a) {
  const int64_t kp = a.words * 32;
  const AlignedRows<float> x = padded_rows<float>(static_cast<const T*>(a.x), a.m, a.k, kp, kp, a.num_threads);
  std::vector<float> totals(size_t(a.m));
  for (int64_t r = 0; r < a.m; ++r) {
    float s = 0.f;
    for (int64_t i = 0; i < a.k; ++i) s += x[r * kp + i];
    totals[r] = s;
  }
  auto* out = static_cast<T*>(a.out);
  const int64_t min_cols = 1 + (int64_t(1) << 15) / std::max<int64_t>(1, a.m * kp);
  parallel_for((a.n + Bits::kNR - 1) / Bits::kNR, a.num_threads, (min_cols + Bits::kNR - 1) / Bits::kNR,
               [&](int64_t jb_begin, int64_t jb_end) {
    float sums[Bits::kMR][Bits::kNR];
    for (int64_t j0 = jb_begin * Bits::kNR; j0 < std::min(a.n, jb_end * Bits::kNR); j0 += Bits::kNR) {
      const int cols = int(std::min<int64_t>(Bits::kNR, a.n - j0));
      for (int64_t i0 = 0; i0 < a.m; i0 += Bits::kMR) {
        const int rows = int(std::min<int64_t>(Bits::kMR, a.m - i0));
        with_rows<Bits::kMR>(rows, [&](auto mr) {
          with_rows<Bits::kNR>(cols, [&](auto nr) {
            connect_tile<mr, nr>(x.get() + i0 * kp, kp, totals.data() + i0, a.w + j0 * a.words, a.words, sums);
          });
        });
        for (int i = 0; i < rows; ++i)
          for (int j = 0; j < cols; ++j)
            out[(i0 + i) * a.n + j0 + j] =
                from_float<T>(a.w_scale[j0 + j] * sums[i][j] + (a.bias ? a.bias[j0 + j] : 0.f));
      }
    }
  });
}

template <class T>
void pack_typed(const T* x, int64_t m, int64_t k, int64_t words, uint32_t* bits, float* alpha, int num_threads) {
  const uint32_t last = last_word_mask(k);
  parallel_for(m, num_threads, 1 + (int64_t(1) << 14) / std::max<int64_t>(1, k), [&](int64_t r0, int64_t r1) {
    std::vector<float> row(size_t(words * 32), 0.f);
    for (int64_t r = r0; r < r1; ++r) {
      float abs_sum = 0.f;
      for (int64_t i = 0; i < k; ++i) {
        row[i] = to_float(x[r * k + i]);
        abs_sum += std::abs(row[i]);
      }
      for (int64_t w = 0; w < words; ++w) bits[r * words + w] = Bits::sign_word(row.data() + 32 * w);
      if (words) bits[r * words + words - 1] &= last;
      if (alpha) alpha[r] = k ? abs_sum / float(k) : 0.f;
    }
  });
}

template <class F>
void with_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::f32: return f(float{});
    case DType::bf16: return f(bf16{});
    case DType::f16: return f(f16{});
  }
}

}  // namespace

inline void pack_bits(const void* x, DType dtype, int64_t m, int64_t k, int64_t words, uint32_t* bits, float* alpha,
                      int num_threads) {
  with_dtype(dtype, [&](auto t) {
    using T = decltype(t);
    pack_typed(static_cast<const T*>(x), m, k, words, bits, alpha, num_threads);
  });
}

inline void binary_gemm(const BinaryGemmArgs& g) {
  if (Bits::many_rows_gemm(g)) return;
  if (g.dots) {
    for_each_tile(g.a, g.b, g.m, g.n, g.k, g.words, g.num_threads,
                  [&](int32_t dots[][Bits::kNR], int64_t i0, int rows, int64_t j0, int cols) {
      for (int i = 0; i < rows; ++i)
        for (int j = 0; j < cols; ++j) g.dots[(i0 + i) * g.n + j0 + j] = dots[i][j];
    });
    return;
  }
  with_dtype(g.dtype, [&](auto t) { gemm_to_float<decltype(t)>(g); });
}

inline void binary_linear(const BinaryLinearArgs& a) {
  if (!a.binarize_x) {
    if (Bits::table_connect(a)) return;
    return with_dtype(a.dtype, [&](auto t) { binary_connect<decltype(t)>(a); });
  }
  std::vector<uint32_t> bits(size_t(a.m * a.words));
  std::vector<float> alpha(size_t(a.m));
  pack_bits(a.x, a.dtype, a.m, a.k, a.words, bits.data(), alpha.data(), a.num_threads);
  binary_gemm({bits.data(), a.w, a.m, a.n, a.k, a.words, a.w_columns, nullptr, a.out, a.dtype, alpha.data(),
               a.w_scale, a.bias, a.num_threads});
}

}  // namespace prunq::cpu::PRUNQ_ISA
