// The INT8 GEMM on the VNNI packing of w (pack_int8_vnni) for CPUs without VNNI, exact over the
// whole int8 range. vpmaddwd multiplies int16 pairs and adds each pair into an int32 lane: a
// register of w widened from kChannels channels x 4 k of the packing, against a row's 4 k of x
// broadcast as int16, holds in lane 2c + p channel c's products of k pair p (k 4g + 2p and
// 4g + 2p + 1); the epilogue adds the two lanes. No pair sum can saturate (|sum| <= 2 * 128^2),
// unlike vpmaddubsw with one side made unsigned, and no correction term is needed. Per 32
// multiply-adds this takes two multiply instructions, as vpsignb + vpmaddubsw + vpmaddwd (the
// other exact way) does, and the widening of w is shared by the rows of a tile; as register-only
// loops the two measured the same ceiling (bench/RESULTS.md).
//
// Included by an instruction-set translation unit after its vec header, with PRUNQ_ISA naming its
// namespace and a `Madd` struct in it:
//   using Reg;  static constexpr int kChannels;        channels per register (2 int32 lanes each)
//   static constexpr int kRows, kRegs;                 register tile: rows of x x registers of w
//   static constexpr int kRegsOneRow;                  registers of w in a tile of one row
//   static Reg zero();
//   static Reg load_w(const int8_t* p);                kChannels x 4 bytes, widened to int16
//   static Reg broadcast_x(const int16_t* p);          4 int16, repeated
//   static Reg madd(Reg acc, Reg x, Reg w);            acc + pairwise products
//   static Reg load(const int32_t* p);  static void store(int32_t* p, Reg r);
//   static <Vec's register> fold(const int32_t* lanes);  channel sums of 2 * Vec::width lanes, as fp32
#include <algorithm>
#include <cstring>
#include <vector>

#include "int8_gemm.h"
#include "int8_panel_loops.h"

namespace prunq::cpu::PRUNQ_ISA {
namespace {

constexpr int kPanelLanes = 2 * kVnniPanel;  // int32 lanes of one row of a panel's accumulators
// K in blocks of 128 groups: the block of a panel the row tiles share (32 KB) stays in L1.
constexpr int64_t kMaddBlockGroups = 128;
// Rows of x (as int16) kept in L2 while the thread's panels stream past them.
constexpr int64_t kMaddRowPanelBytes = 512 << 10;

// How far ahead of the group being multiplied the first tile of a panel asks for the group's four
// lines of w (16 groups), so that the panel streams in order while the later tiles find it in
// cache. Panels follow each other in memory, so near a block's end this reaches into the next
// block or panel, and past the last one beyond w, which a prefetch may do.
constexpr int64_t kMaddPrefetchBytes = 4096;

// Adds groups [g0, g1) of an MR x NR tile into `acc` (row stride kPanelLanes, at the lanes of
// the tile's first register); `first` starts from zero instead; `prefetch`: the tile is its panel's
// first, which asks for w ahead. Not inlined, and its loops unrolled by pragma: otherwise GCC 12
// kept copies of the accumulators, storing one to the stack on every group.
template <int MR, int NR>
__attribute__((noinline)) void madd_tile(const int16_t* x, int64_t ldx, const int8_t* w, int64_t g0, int64_t g1,
                                         bool first, bool prefetch, int32_t* acc) {
  constexpr int kLanes = 2 * Madd::kChannels;
  typename Madd::Reg c[MR][NR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) c[i][j] = first ? Madd::zero() : Madd::load(acc + i * kPanelLanes + j * kLanes);
  for (int64_t g = g0; g < g1; ++g) {
    const int8_t* wg = w + g * kVnniPanel * 4;
    if (prefetch)
      for (int line = 0; line < 4; ++line)
        _mm_prefetch(reinterpret_cast<const char*>(wg) + kMaddPrefetchBytes + 64 * line, _MM_HINT_T0);
    typename Madd::Reg wv[NR];
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) wv[j] = Madd::load_w(wg + j * Madd::kChannels * 4);
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const typename Madd::Reg xv = Madd::broadcast_x(x + i * ldx + 4 * g);
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) c[i][j] = Madd::madd(c[i][j], xv, wv[j]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 8
    for (int j = 0; j < NR; ++j) Madd::store(acc + i * kPanelLanes + j * kLanes, c[i][j]);
}

template <class O>
void madd_gemm_typed(const Int8GemmArgs& a) {
  constexpr int MR = Madd::kRows;
  static_assert(kVnniPanel % (Madd::kRegs * Madd::kChannels) == 0 &&
                kVnniPanel % (Madd::kRegsOneRow * Madd::kChannels) == 0, "a panel must split into whole tiles");
  const int64_t kp = vnni_padded_k(a.k), groups = kp / 4;
  const int64_t ldx = kp + 32;  // a row one cache line past a multiple of 64 bytes: rows in different L1 sets
  const AlignedRows<int16_t> x = padded_rows<int16_t>(a.x, a.m, a.k, kp, ldx, a.num_threads);
  const int64_t row_panel = std::max<int64_t>(MR, kMaddRowPanelBytes / (2 * ldx) / MR * MR);
  // At least ~256K multiply-adds per thread before splitting pays (measured at 11 x 384 x 384: two
  // threads 11 us, one 18 us; a cell: MR rows x a panel).
  const int64_t min_cells =
      std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, std::min<int64_t>(a.m, MR) * kp * kVnniPanel));
  panel_loops<MR>(a, groups, kMaddBlockGroups, row_panel, kPanelLanes, min_cells,
                  [&](auto rows, int64_t r, const int8_t* panel, int64_t used, int64_t g, int64_t g_end,
                      bool first_rows, int32_t* acc) {
                    // A row alone gets wider tiles: more independent accumulators, whole lines of w.
                    constexpr int NR = decltype(rows)::value == 1 ? Madd::kRegsOneRow : Madd::kRegs;
                    constexpr int kTileChannels = NR * Madd::kChannels;
                    for (int64_t c = 0; c < used; c += kTileChannels)
                      madd_tile<rows, NR>(x.get() + r * ldx, ldx, panel + c * 4, g, g_end, g == 0,
                                          first_rows && c == 0, acc + 2 * c);
                  },
                  [&](const int32_t* acc, int64_t m0, int64_t rows, int64_t p) {
                    panel_epilogue<O>(a, m0, rows, p, [&](int64_t i, int j) {
                      return Vec{Madd::fold(acc + i * kPanelLanes + 2 * j)};  // lanes past the panel's: unused
                    });
                  });
}

inline void madd_gemm(const Int8GemmArgs& a) {
  switch (a.out_dtype) {
    case DType::f32: return madd_gemm_typed<float>(a);
    case DType::bf16: return madd_gemm_typed<bf16>(a);
    case DType::f16: return madd_gemm_typed<f16>(a);
  }
}

}  // namespace
}  // namespace prunq::cpu::PRUNQ_ISA
