// The 2:4 GEMM written once over a per-instruction-set `Gather` struct. A row of W is walked in
// chunks of Gather::kValues values (kValues / 2 groups, 2 * kValues k): the chunk's positions,
// decoded from its meta bytes once for every row of x, pick each value's x out of the chunk's
// 2 * kValues elements of x with a register permute, and one FMA per row of x multiplies them.
// At one row of x this reads 9/16 of the bytes of a dense bf16 weight (5/16 with int8 values).
// Included by each instruction-set translation unit after its vec header and its Gather:
//   using Reg;  static constexpr int kValues;
//   static constexpr int kChains;                               FMA chains that hide the latency
//   static Reg zero();
//   static auto positions(const uint8_t* meta);                 the chunk's kValues / 4 meta bytes
//   static void arrange(float* x, int64_t kp);                  x's padded row laid out for pick
//   static Reg pick(const float* x, positions);                 x[4 (i / 2) + position i], i < kValues
//                                                               (of the row before arrange)
//   template <class T> static Reg load_values(const T* v);      kValues values as fp32 (T: float,
//                                                               bf16, f16 or int8_t)
//   static Reg fma(Reg a, Reg b, Reg c);  static Reg add(Reg a, Reg b);  static float sum(Reg r);
// with PRUNQ_ISA naming its namespace. From kPanelFromRows rows of x, the kernel is instead the
// panel kernel (panel_kernel.h) that CSR uses, vectorised over rows of x: a chunk's permutes
// serve only kSparseRows rows, a panel's broadcast value serves a whole tile.
#include <algorithm>
#include <cstdlib>
#include <memory>
#include <vector>

#include "../common/parallel.h"
#include "panel_kernel.h"
#include "sparse24.h"

namespace prunq::cpu::PRUNQ_ISA {
namespace {

constexpr int kSparseRows = 4;  // rows of x sharing each chunk's decoded positions
constexpr int64_t kBlockBytes = 256 << 10;  // values of W read by every tile of rows in turn

// dots[i] = x row i . W row n, for MR rows from x (row stride kp). Below Gather::kChains rows each
// row keeps kChains / MR sums over successive chunks: with one, every chunk would wait on the
// previous FMA.
template <int MR, class V>
void sparse24_dots(const float* x, int64_t kp, const V* values, const uint8_t* meta, float dots[MR]) {
  constexpr int kSums = std::max(1, Gather::kChains / MR);
  constexpr int kChunkK = 2 * Gather::kValues;
  typename Gather::Reg acc[MR][kSums];
  for (int i = 0; i < MR; ++i)
    for (int s = 0; s < kSums; ++s) acc[i][s] = Gather::zero();
  auto chunk = [&](int64_t c, int s) {
    const auto pos = Gather::positions(meta + c / 8);
    const auto w = Gather::load_values(values + c / 2);
    for (int i = 0; i < MR; ++i) acc[i][s] = Gather::fma(Gather::pick(x + i * kp + c, pos), w, acc[i][s]);
  };
  int64_t c = 0;
  for (; c + kSums * kChunkK <= kp; c += kSums * kChunkK)
    for (int s = 0; s < kSums; ++s) chunk(c + s * kChunkK, s);
  for (; c + kChunkK <= kp; c += kChunkK) chunk(c, 0);
  for (int i = 0; i < MR; ++i) {
    for (int s = 1; s < kSums; ++s) acc[i][0] = Gather::add(acc[i][0], acc[i][s]);
    dots[i] = Gather::sum(acc[i][0]);
  }
  for (; c < kp; c += 8) {  // the last groups, two at a time (one meta byte)
    for (int g = 0; g < 2; ++g) {
      const int code = (meta[c / 8] >> (4 * g)) & 0xF;
      const float w0 = to_float(values[c / 2 + 2 * g]), w1 = to_float(values[c / 2 + 2 * g + 1]);
      for (int i = 0; i < MR; ++i)
        dots[i] += w0 * x[i * kp + c + 4 * g + (code & 3)] + w1 * x[i * kp + c + 4 * g + (code >> 2)];
    }
  }
}

// Measured on Zen 5 at K = N = 4096: below 16 rows the chunks win (2x at 4 rows), from 16 the panel.
constexpr int64_t kPanelFromRows = 16;

// The kept values of each channel for the panel kernel: value j sits in group j / 2 at the
// position held by bits 2 (j % 4) of meta byte j / 4.
template <class V>
struct Sparse24Rows {
  const V* values;
  const uint8_t* meta;
  int64_t kp;
  struct Row {
    const V* values;
    const uint8_t* meta;
    int64_t end(int64_t, int64_t k_end) const { return k_end / 2; }
    int64_t col(int64_t j) const { return 4 * (j >> 1) + ((meta[j >> 2] >> (2 * (j & 3))) & 3); }
    float value(int64_t j) const { return to_float(values[j]); }
    void prefetch(int64_t j, int64_t k_span) const {
      for (int64_t b = 0; b < k_span / 2 * int64_t(sizeof(V)); b += 64) __builtin_prefetch(reinterpret_cast<const char*>(values + j) + b);
      __builtin_prefetch(meta + j / 4);
    }
  };
  Row row(int64_t n) const { return {values + n * (kp / 2), meta + n * (kp / 8)}; }
};

template <class T, class V>
void sparse24_typed(const Sparse24Args& a) {
  const int64_t kp = (a.k + 7) / 8 * 8;
  if (a.m >= kPanelFromRows) {
    const int parts = int(std::max<int64_t>(1, std::min<int64_t>(a.num_threads, a.n)));
    std::vector<int64_t> starts(size_t(parts) + 1);
    for (int p = 0; p <= parts; ++p) starts[p] = a.n * p / parts;
    return panel_linear(static_cast<const T*>(a.x), a.k, a.m, a.k, kp,
                        Sparse24Rows<V>{static_cast<const V*>(a.values), a.meta, kp}, starts, 0.5, a.w_scale, a.bias,
                        static_cast<T*>(a.out), a.n);
  }
  const AlignedRows<float> x = padded_rows<float>(static_cast<const T*>(a.x), a.m, a.k, kp, kp, a.num_threads);
  for (int64_t r = 0; r < a.m; ++r) Gather::arrange(x.get() + r * kp, kp);
  const auto* values = static_cast<const V*>(a.values);
  // Every row of W holds the same number of values, so an even split of rows balances the work.
  const int64_t min_rows = 1 + (int64_t(1) << 17) / std::max<int64_t>(1, a.m * kp / 2);
  // Rows of W in blocks that stay in L2 while every tile of rows of x passes them.
  const int64_t block = std::max<int64_t>(1, kBlockBytes / std::max<int64_t>(1, kp / 2 * int64_t(sizeof(V))));
  parallel_for(a.n, a.num_threads, min_rows, [&](int64_t n_begin, int64_t n_end) {
    for (int64_t n0 = n_begin; n0 < n_end; n0 += block) {
      const int64_t n1 = std::min(n_end, n0 + block);
      for (int64_t r = 0; r < a.m; r += kSparseRows) {
        const int rows = int(std::min<int64_t>(kSparseRows, a.m - r));
        for (int64_t n = n0; n < n1; ++n) {
          float dots[kSparseRows];
          with_rows<kSparseRows>(rows, [&](auto mr) {
            sparse24_dots<mr>(x.get() + r * kp, kp, values + n * (kp / 2), a.meta + n * (kp / 8), dots);
          });
          const float scale = a.w_scale ? a.w_scale[n] : 1.f, bias = a.bias ? a.bias[n] : 0.f;
          for (int i = 0; i < rows; ++i) static_cast<T*>(a.out)[(r + i) * a.n + n] = from_float<T>(dots[i] * scale + bias);
        }
      }
    }
  });
}

template <class T>
void sparse24_values(const Sparse24Args& a) {
  switch (a.value_type) {
    case Values::f32: return sparse24_typed<T, float>(a);
    case Values::bf16: return sparse24_typed<T, bf16>(a);
    case Values::f16: return sparse24_typed<T, f16>(a);
    case Values::i8: return sparse24_typed<T, int8_t>(a);
  }
}

}  // namespace

inline void sparse24_linear(const Sparse24Args& a) {
  switch (a.dtype) {
    case DType::f32: return sparse24_values<float>(a);
    case DType::bf16: return sparse24_values<bf16>(a);
    case DType::f16: return sparse24_values<f16>(a);
  }
}

}  // namespace prunq::cpu::PRUNQ_ISA
