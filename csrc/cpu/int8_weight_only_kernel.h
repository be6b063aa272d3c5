// The weight-only GEMM of every instruction set for fp32 and fp16 activations (and bf16 where
// the CPU lacks AVX512_BF16): the tiling of int8_gemm_kernel.h around
//   Dot::wo(x_rows[4], w_rows[4], k, float acc[4][4])     (x_rows of type T)
// which widens both operands to fp32 in registers. Included after int8_gemm_kernel.h. bf16
// activations on AVX512_BF16 take int8_weight_only_avx512bf16.cpp instead.
namespace prunq::cpu::PRUNQ_ISA {
namespace {

template <class T>
void weight_only_typed(const WeightOnlyArgs& a) {
  const auto* x = static_cast<const T*>(a.x);
  for_each_tile(a.m, a.n, a.k * int64_t(sizeof(T)), a.num_threads, [&](int64_t m0, int64_t n0, int rows, int cols) {
    const T* xr[kTile];
    const int8_t* wr[kTile];
    tile_rows(x, m0, rows, a.k, xr);
    tile_rows(a.w, n0, cols, a.k, wr);
    float acc[kTile][kTile];
    Dot::wo(xr, wr, a.k, acc);
    for (int i = 0; i < rows; ++i)
      for (int j = 0; j < cols; ++j)
        store_out<T>(a.out, (m0 + i) * a.n + n0 + j,
                     acc[i][j] * a.w_scale[n0 + j] + (a.bias ? a.bias[n0 + j] : 0.f));
  });
}

}  // namespace

inline void int8_weight_only_gemm(const WeightOnlyArgs& a) {
  switch (a.dtype) {
    case DType::f32: return weight_only_typed<float>(a);
    case DType::bf16: return weight_only_typed<bf16>(a);
    case DType::f16: return weight_only_typed<f16>(a);
  }
}

}  // namespace prunq::cpu::PRUNQ_ISA
