// The INT8 GEMM on the VNNI packing of w (pack_int8_vnni) for AVX2 when every weight lies in
// [-kNarrowWeightMax, kNarrowWeightMax] (8), as the 4-bit weights of int8:w4 modules do.
// vpmaddubsw multiplies x made unsigned (x + 128, at most 255) by w and adds each pair of products
// into an int16 lane: a lane then holds at most 2 * 255 * 8 = 4080, so the lanes of
// kGroupsInInt16 = 8 groups of 4 k add up in int16 without saturating (32640), and one vpmaddwd
// against ones per 8 groups widens them into int32. That is one multiply instruction and an eighth
// per 32 multiply-adds, where the exact kernel for all int8 weights (int8_gemm_madd_kernel.h) takes
// two. Written against a `Narrow` register struct like that kernel's `Madd`; a 512-bit instance for
// AVX-512 without VNNI ran 0.73x to 0.86x of its vpmaddwd kernel at N <= 256 (bench/RESULTS.md). The products carry 128 * sum_k w[n, k], which the epilogue removes with colsum.
//
// Included by an instruction-set translation unit after its vec header, with PRUNQ_ISA naming its
// namespace and a `Narrow` struct in it:
//   using Reg;  static constexpr int kChannels;      channels per register (one int32 lane each)
//   static constexpr int kRows, kRegs, kRegsOneRow;  register tile: rows of x x registers of w
//   static Reg zero();
//   static Reg load_w(const int8_t* p);              kChannels x 4 bytes
//   static Reg broadcast_x(int32_t four);            4 unsigned bytes of x, repeated
//   static Reg add_products(Reg s, Reg x, Reg w);    s + vpmaddubsw(x, w), in int16
//   static Reg widen(Reg s);                         vpmaddwd(s, ones): one int32 per channel
//   static Reg load(const int32_t* p);  static void store(int32_t* p, Reg r);  static Reg add(Reg a, Reg b);
//   static Vec dot(const int32_t* sums, const int32_t* colsum);  sums - 128 * colsum as fp32
#include <algorithm>
#include <cstring>

#include "int8_panel_loops.h"

namespace prunq::cpu::PRUNQ_ISA {
namespace {

constexpr int kGroupsInInt16 = 8;
static_assert(kGroupsInInt16 * 2 * 255 * kNarrowWeightMax <= 32767, "int16 sums must not saturate");
constexpr int64_t kNarrowBlockGroups = 128;          // the block of a panel the row tiles share: 32 KB, in L1
constexpr int64_t kNarrowRowPanelBytes = 512 << 10;  // rows of x kept in L2 while the panels stream past
constexpr int64_t kNarrowPrefetchBytes = 4096;       // how far ahead the first tile of a panel asks for w

// Adds groups [g0, g1) of an MR x NR tile into `acc` (int32 per channel, row stride kVnniPanel);
// `first` stores instead of adding; `prefetch`: the tile is its panel's first.
template <int MR, int NR>
__attribute__((noinline)) void narrow_tile(const uint8_t* x, int64_t ldx, const int8_t* w, int64_t g0, int64_t g1,
                                           bool first, bool prefetch, int32_t* acc) {
  for (int64_t c0 = g0; c0 == g0 || c0 < g1; c0 += kGroupsInInt16) {  // once for g0 == g1 (K = 0): zeros
    const int64_t c1 = std::min(g1, c0 + kGroupsInInt16);
    typename Narrow::Reg s[MR][NR];
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) s[i][j] = Narrow::zero();
    for (int64_t g = c0; g < c1; ++g) {
      const int8_t* wg = w + g * kVnniPanel * 4;
      if (prefetch)
        for (int line = 0; line < 4; ++line)
          _mm_prefetch(reinterpret_cast<const char*>(wg) + kNarrowPrefetchBytes + 64 * line, _MM_HINT_T0);
      typename Narrow::Reg wv[NR];
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) wv[j] = Narrow::load_w(wg + j * Narrow::kChannels * 4);
#pragma GCC unroll 8
      for (int i = 0; i < MR; ++i) {
        int32_t four;
        std::memcpy(&four, x + i * ldx + 4 * g, 4);
        const typename Narrow::Reg xb = Narrow::broadcast_x(four);
#pragma GCC unroll 8
        for (int j = 0; j < NR; ++j) s[i][j] = Narrow::add_products(s[i][j], xb, wv[j]);
      }
    }
    const bool store = first && c0 == g0;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) {
        int32_t* out = acc + i * kVnniPanel + j * Narrow::kChannels;
        const typename Narrow::Reg wide = Narrow::widen(s[i][j]);
        Narrow::store(out, store ? wide : Narrow::add(Narrow::load(out), wide));
      }
  }
}

// x + 128 as unsigned bytes in rows of ldx bytes, of which [0, kp) are written (from k on zeros,
// which meet zero weights), in one pass.
inline AlignedRows<uint8_t> unsigned_rows(const Int8GemmArgs& a, int64_t kp, int64_t ldx) {
  AlignedRows<uint8_t> rows(static_cast<uint8_t*>(std::aligned_alloc(64, size_t(std::max<int64_t>(1, a.m) * ldx))));
  parallel_for(a.m, a.num_threads, 1 + (int64_t(1) << 16) / std::max<int64_t>(kp, 1), [&](int64_t b, int64_t e) {
    const int64_t k = a.k;  // a local: a byte store may alias a.k, which would stop vectorisation
    for (int64_t r = b; r < e; ++r) {
      const int8_t* src = a.x + r * k;
      uint8_t* dst = rows.get() + r * ldx;
      for (int64_t i = 0; i < k; ++i) dst[i] = uint8_t(src[i]) ^ 0x80;
      std::fill(dst + k, dst + kp, uint8_t(0));
    }
  });
  return rows;
}

template <class O>
void narrow_gemm_typed(const Int8GemmArgs& a) {
  constexpr int MR = Narrow::kRows;
  static_assert(Narrow::kChannels == Vec::width, "the epilogue reads one register of sums per Vec");
  const int64_t kp = vnni_padded_k(a.k), groups = kp / 4;
  const int64_t ldx = (kp + 63) / 64 * 64 + 64;  // rows in different L1 sets
  const AlignedRows<uint8_t> x = unsigned_rows(a, kp, ldx);
  const uint8_t* xu = x.get();
  const int64_t row_panel = std::max<int64_t>(MR, kNarrowRowPanelBytes / ldx / MR * MR);
  const int64_t min_cells =  // as the int16 kernel: ~256K multiply-adds per thread before splitting pays
      std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, std::min<int64_t>(a.m, MR) * kp * kVnniPanel));
  panel_loops<MR>(a, groups, kNarrowBlockGroups, row_panel, kVnniPanel, min_cells,
                  [&](auto rows, int64_t r, const int8_t* panel, int64_t used, int64_t g, int64_t g_end,
                      bool first_rows, int32_t* acc) {
                    constexpr int NR = decltype(rows)::value == 1 ? Narrow::kRegsOneRow : Narrow::kRegs;
                    for (int64_t c = 0; c < used; c += NR * Narrow::kChannels)
                      narrow_tile<rows, NR>(xu + r * ldx, ldx, panel + c * 4, g, g_end, g == 0,
                                            first_rows && c == 0, acc + c);
                  },
                  [&](const int32_t* acc, int64_t m0, int64_t rows, int64_t p) {
                    const int32_t* colsum = a.w_colsum + p * kVnniPanel;  // padded to whole panels
                    panel_epilogue<O>(a, m0, rows, p, [&](int64_t i, int j) {
                      return Narrow::dot(acc + i * kVnniPanel + j, colsum + j);
                    });
                  });
}

inline void narrow_gemm(const Int8GemmArgs& a) {
  switch (a.out_dtype) {
    case DType::f32: return narrow_gemm_typed<float>(a);
    case DType::bf16: return narrow_gemm_typed<bf16>(a);
    case DType::f16: return narrow_gemm_typed<f16>(a);
  }
}

}  // namespace
}  // namespace prunq::cpu::PRUNQ_ISA
