// prunq._C: the CPU kernels. Tensors arrive as data pointers plus sizes from prunq/_native.py,
// which has already checked dtype, device and contiguity.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <vector>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "common/checks.h"
#include "common/cpu_features.h"
#include "cpu/binary.h"
#include "cpu/ceilings.h"
#include "cpu/csr.h"
#include "cpu/embedding_rows.h"
#include "cpu/int8_gemm.h"
#include "cpu/layernorm.h"
#include "cpu/sparse24.h"

namespace py = pybind11;
using namespace prunq;

namespace {

// Releases the GIL for calls with at least this many elements of work: for a one-row call the
// release and reacquire cost more than the kernel.
constexpr int64_t kGilReleaseWork = int64_t(1) << 14;

class GilRelease {
 public:
  explicit GilRelease(int64_t work) {
    if (work >= kGilReleaseWork) release_.emplace();
  }

 private:
  std::optional<py::gil_scoped_release> release_;
};

// Asks the OS to back the whole 2 MB pages inside [p, p + bytes) with huge pages (Linux transparent
// huge pages; a no-op where they are off or unsupported). Only a hint: errors are ignored.
void advise_huge_pages(uintptr_t p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHugePage = uintptr_t(1) << 21;
  const uintptr_t begin = (p + kHugePage - 1) & ~(kHugePage - 1), end = (p + bytes) & ~(kHugePage - 1);
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

void add_norm(uintptr_t x, uintptr_t residual, uintptr_t weight, uintptr_t bias, uintptr_t out,
              uintptr_t sum, int64_t rows, int64_t hidden, double eps, int dtype,
              int param_dtype, bool rms, int num_threads) {
  check(rows >= 0 && hidden >= 0, "add_norm: negative size");
  check(rows == 0 || hidden > 0, "add_norm: hidden size must be positive");
  cpu::AddNormArgs args{as_ptr<const void>(x), as_ptr<const void>(residual),
                        as_ptr<const void>(weight), as_ptr<const void>(bias),
                        as_ptr<void>(out), as_ptr<void>(sum), rows, hidden, float(eps),
                        dtype_from_code(dtype, "dtype"), dtype_from_code(param_dtype, "param_dtype"),
                        rms, num_threads};
  check(args.param_dtype == DType::f32 || args.param_dtype == args.dtype,
        "add_norm: param_dtype must be float32 or the input dtype");
  if (rows == 0) return;
  const GilRelease release(rows * hidden);
  cpu::add_norm(args);
}

void quantize_per_token(uintptr_t x, int dtype, uintptr_t q, uintptr_t scale, int64_t rows, int64_t cols,
                        int num_threads) {
  check(rows >= 0 && cols >= 0, "quantize_per_token: negative size");
  cpu::QuantizeArgs args{as_ptr<const void>(x), dtype_from_code(dtype, "dtype"), as_ptr<int8_t>(q),
                         as_ptr<float>(scale), rows, cols, num_threads};
  const GilRelease release(rows * cols);
  cpu::quantize_per_token(args);
}

void int8_gemm(uintptr_t x, uintptr_t x_scale, uintptr_t w, uintptr_t w_colsum, uintptr_t w_scale, uintptr_t bias,
               uintptr_t out, int out_dtype, int64_t m, int64_t n, int64_t k, int num_threads, int activation,
               bool narrow_w) {
  check(m >= 0 && n >= 0 && k >= 0, "int8_gemm: negative size");
  check(activation == 0 || activation == 1, "int8_gemm: activation must be 0 (none) or 1 (gelu)");
  cpu::Int8GemmArgs args{as_ptr<const int8_t>(x), as_ptr<const float>(x_scale), as_ptr<const int8_t>(w),
                         as_ptr<const int32_t>(w_colsum),
                         as_ptr<const float>(w_scale), as_ptr<const float>(bias), as_ptr<void>(out),
                         dtype_from_code(out_dtype, "out_dtype"), m, n, k, num_threads,
                         cpu::Activation(activation), narrow_w};
  const GilRelease release(m * n * k);
  cpu::int8_gemm(args);
}

// x_scale: where the per-row scales go, or 0 when the caller does not want them.
void int8_dynamic_gemm(uintptr_t x, int dtype, uintptr_t channel_scale, uintptr_t x_scale, uintptr_t w,
                       uintptr_t w_colsum, uintptr_t w_scale, uintptr_t bias, uintptr_t out, int out_dtype, int64_t m,
                       int64_t n, int64_t k, int num_threads, int activation, bool narrow_w) {
  check(m >= 0 && n >= 0 && k >= 0, "int8_dynamic_gemm: negative size");
  check(activation == 0 || activation == 1, "int8_dynamic_gemm: activation must be 0 (none) or 1 (gelu)");
  std::vector<float> scratch(x_scale ? 0 : size_t(m));
  float* scales = x_scale ? as_ptr<float>(x_scale) : scratch.data();
  cpu::Int8GemmArgs args{nullptr, scales, as_ptr<const int8_t>(w), as_ptr<const int32_t>(w_colsum),
                         as_ptr<const float>(w_scale), as_ptr<const float>(bias), as_ptr<void>(out),
                         dtype_from_code(out_dtype, "out_dtype"), m, n, k, num_threads, cpu::Activation(activation),
                         narrow_w};
  const DType x_dtype = dtype_from_code(dtype, "dtype");
  const GilRelease release(m * n * k);
  cpu::int8_dynamic_gemm(as_ptr<const void>(x), x_dtype, as_ptr<const float>(channel_scale), scales, args);
}

template <bool kPacked>
void int8_weight_only_gemm(uintptr_t x, int dtype, uintptr_t w, uintptr_t w_scale, uintptr_t bias, uintptr_t out,
                           int64_t m, int64_t n, int64_t k, int num_threads) {
  check(m >= 0 && n >= 0 && k >= 0, "int8_weight_only_gemm: negative size");
  cpu::WeightOnlyArgs args{as_ptr<const void>(x), dtype_from_code(dtype, "dtype"), as_ptr<const int8_t>(w),
                           as_ptr<const float>(w_scale), as_ptr<const float>(bias), as_ptr<void>(out), m, n, k,
                           num_threads, kPacked};
  const GilRelease release(m * n * k);
  cpu::int8_weight_only_gemm(args);
}

void gather_dequantize_rows(uintptr_t ids, int64_t count, uintptr_t w, uintptr_t scale, int64_t rows, int64_t dim,
                            uintptr_t out, int out_dtype, int num_threads) {
  check(count >= 0 && rows >= 0 && dim >= 0, "gather_dequantize_rows: negative size");
  const DType dtype = dtype_from_code(out_dtype, "out_dtype");
  const GilRelease release(count * dim);
  cpu::gather_dequantize_rows(as_ptr<const int64_t>(ids), count, as_ptr<const int8_t>(w), as_ptr<const float>(scale),
                              rows, dim, as_ptr<void>(out), dtype, num_threads);
}

void gather_dequantize_rows_int4(uintptr_t ids, int64_t count, uintptr_t w, uintptr_t scale, int64_t rows,
                                 int64_t dim, int64_t group, uintptr_t out, int out_dtype, int num_threads) {
  check(count >= 0 && rows >= 0 && dim >= 0 && group >= 1, "gather_dequantize_rows_int4: negative size or group");
  const DType dtype = dtype_from_code(out_dtype, "out_dtype");
  const GilRelease release(count * dim);
  cpu::gather_dequantize_rows_int4(as_ptr<const int64_t>(ids), count, as_ptr<const uint8_t>(w),
                                   as_ptr<const f16>(scale), rows, dim, group, as_ptr<void>(out), dtype, num_threads);
}

// values_type: a float dtype code, or 3 for int8 values (then w_scale is required).
void sparse24_linear(uintptr_t x, int dtype, uintptr_t values, int values_type, uintptr_t meta, uintptr_t w_scale,
                     uintptr_t bias, uintptr_t out, int64_t m, int64_t n, int64_t k, int num_threads) {
  check(m >= 0 && n >= 0 && k >= 0, "sparse24_linear: negative size");
  check(values_type >= 0 && values_type <= 3, "sparse24_linear: unknown values type");
  check(values_type != 3 || w_scale != 0, "sparse24_linear: int8 values need w_scale");
  cpu::Sparse24Args args{as_ptr<const void>(x), dtype_from_code(dtype, "dtype"), as_ptr<const void>(values),
                         cpu::Values(values_type), as_ptr<const uint8_t>(meta), as_ptr<const float>(w_scale),
                         as_ptr<const float>(bias), as_ptr<void>(out), m, n, k, num_threads};
  if (m == 0 || n == 0) return;
  const GilRelease release(m * n * k / 2);
  cpu::sparse24_linear(args);
}

void csr_linear(uintptr_t x, int dtype, uintptr_t crow, uintptr_t col, uintptr_t values, int values_type,
                uintptr_t w_scale, uintptr_t bias, uintptr_t out, int64_t m, int64_t n, int64_t k, int num_threads) {
  check(m >= 0 && n >= 0 && k >= 0, "csr_linear: negative size");
  check(values_type >= 0 && values_type <= 3, "csr_linear: unknown values type");
  check(values_type != 3 || w_scale != 0, "csr_linear: int8 values need w_scale");
  cpu::CsrArgs args{as_ptr<const void>(x), dtype_from_code(dtype, "dtype"), as_ptr<const int32_t>(crow),
                    as_ptr<const int32_t>(col), as_ptr<const void>(values), cpu::Values(values_type),
                    as_ptr<const float>(w_scale), as_ptr<const float>(bias), as_ptr<void>(out), m, n, k, num_threads};
  if (m == 0 || n == 0) return;
  const GilRelease release(m * as_ptr<const int32_t>(crow)[n]);
  cpu::csr_linear(args);
}

void pack_bits(uintptr_t x, int dtype, int64_t m, int64_t k, int64_t words, uintptr_t bits, uintptr_t alpha,
               int num_threads) {
  check(m >= 0 && k >= 0 && words == (k + 31) / 32, "pack_bits: bad sizes");
  const GilRelease release(m * k);
  cpu::pack_bits(as_ptr<const void>(x), dtype_from_code(dtype, "dtype"), m, k, words, as_ptr<uint32_t>(bits),
                 as_ptr<float>(alpha), num_threads);
}

// dots != 0: the int32 dot products; else out = alpha * w_scale * dots + bias in out_dtype.
void binary_gemm(uintptr_t a, uintptr_t b, int64_t m, int64_t n, int64_t k, int64_t words, uintptr_t dots,
                 uintptr_t out, int out_dtype, uintptr_t alpha, uintptr_t w_scale, uintptr_t bias, int num_threads) {
  check(m >= 0 && n >= 0 && k > 0 && words == (k + 31) / 32, "binary_gemm: bad sizes");
  if (m == 0 || n == 0) return;
  check(dots != 0 || w_scale != 0, "binary_gemm: the float form needs w_scale");
  const GilRelease release(m * n * words * 32);
  cpu::binary_gemm({as_ptr<const uint32_t>(a), as_ptr<const uint32_t>(b), m, n, k, words, nullptr, as_ptr<int32_t>(dots),
                    as_ptr<void>(out), dots ? DType::f32 : dtype_from_code(out_dtype, "out_dtype"),
                    as_ptr<const float>(alpha), as_ptr<const float>(w_scale), as_ptr<const float>(bias), num_threads});
}

// w_columns: w as binary_columns lays it out (a module keeps it), or 0.
void binary_linear(uintptr_t x, int dtype, uintptr_t w, uintptr_t w_columns, uintptr_t w_scale, uintptr_t bias,
                   uintptr_t out, int64_t m, int64_t n, int64_t k, int64_t words, bool binarize_x, int num_threads) {
  check(m >= 0 && n >= 0 && k > 0 && words == (k + 31) / 32, "binary_linear: bad sizes");
  if (m == 0 || n == 0) return;
  const GilRelease release(m * n * words * 32);
  cpu::binary_linear({as_ptr<const void>(x), dtype_from_code(dtype, "dtype"), as_ptr<const uint32_t>(w),
                      as_ptr<const uint32_t>(w_columns), as_ptr<const float>(w_scale), as_ptr<const float>(bias), as_ptr<void>(out), m, n, k, words,
                      binarize_x, num_threads});
}

void binary_columns(uintptr_t w, int64_t n, int64_t words, uintptr_t columns) {
  check(n >= 0 && words >= 0, "binary_columns: negative size");
  py::gil_scoped_release release;
  cpu::binary_columns(as_ptr<const uint32_t>(w), n, words, as_ptr<uint32_t>(columns), 1);
}

void pack_int8_vnni(uintptr_t w, int64_t n, int64_t k, uintptr_t packed, uintptr_t colsum) {
  check(n >= 0 && k >= 0, "pack_int8_vnni: negative size");
  py::gil_scoped_release release;
  cpu::pack_int8_vnni(as_ptr<const int8_t>(w), n, k, as_ptr<int8_t>(packed), as_ptr<int32_t>(colsum));
}

}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() = "prunq CPU kernels";
  m.def("add_norm", &add_norm, "sum = x + residual; out = LayerNorm or RMSNorm of sum",
        py::arg("x"), py::arg("residual"), py::arg("weight"), py::arg("bias"), py::arg("out"),
        py::arg("sum"), py::arg("rows"), py::arg("hidden"), py::arg("eps"), py::arg("dtype"),
        py::arg("param_dtype"), py::arg("rms"), py::arg("num_threads"));
  m.def("quantize_per_token", &quantize_per_token, "symmetric int8 per row, one fp32 scale per row",
        py::arg("x"), py::arg("dtype"), py::arg("q"), py::arg("scale"), py::arg("rows"), py::arg("cols"),
        py::arg("num_threads"));
  m.def("int8_gemm", &int8_gemm, "y = (x @ w.T) * x_scale * w_scale + bias, int8 inputs, int32 accumulation",
        py::arg("x"), py::arg("x_scale"), py::arg("w"), py::arg("w_colsum"), py::arg("w_scale"), py::arg("bias"),
        py::arg("out"), py::arg("out_dtype"), py::arg("m"), py::arg("n"), py::arg("k"), py::arg("num_threads"),
        py::arg("activation") = 0, py::arg("narrow_w") = false);
  m.def("int8_dynamic_gemm", &int8_dynamic_gemm,
        "int8_gemm with the per-token quantization of a float x (times channel_scale) fused in; x_scale is written",
        py::arg("x"), py::arg("dtype"), py::arg("channel_scale"), py::arg("x_scale"), py::arg("w"), py::arg("w_colsum"), py::arg("w_scale"),
        py::arg("bias"), py::arg("out"), py::arg("out_dtype"), py::arg("m"), py::arg("n"), py::arg("k"),
        py::arg("num_threads"), py::arg("activation"), py::arg("narrow_w") = false);
  m.attr("NARROW_WEIGHT_MAX") = cpu::kNarrowWeightMax;  // int8_gemm's narrow_w: every |w| at most this
  m.def("packed_gemm_available", &cpu::packed_gemm_available, "whether int8_gemm takes VNNI-packed weights here");
  m.def("weight_only_packed_available", [](int dtype) {
    return cpu::weight_only_packed_available(dtype_from_code(dtype, "dtype"));
  }, "whether int8_weight_only_gemm_packed runs here for x of this dtype code", py::arg("dtype"));
  m.def("packed_gemm_instruction", &cpu::packed_gemm_instruction,
        "the multiply instruction of the GEMM on a packed w here: vpdpbusd zmm, vpmaddwd zmm, vpmaddwd ymm or none");
  m.def("vnni_padded_shape", [](int64_t n, int64_t k) {
    return std::make_pair(cpu::vnni_padded_n(n), cpu::vnni_padded_k(k));
  }, "(padded N, padded K) of a VNNI-packed weight");
  m.def("gather_dequantize_rows", &gather_dequantize_rows,
        "out[i] = w[ids[i]] * scale[ids[i]] from an int8 table with one scale per row; IndexError for a bad id",
        py::arg("ids"), py::arg("count"), py::arg("w"), py::arg("scale"), py::arg("rows"), py::arg("dim"),
        py::arg("out"), py::arg("out_dtype"), py::arg("num_threads"));
  m.def("gather_dequantize_rows_int4", &gather_dequantize_rows_int4,
        "out[i] = the 4-bit row w[ids[i]] times its float16 scale per group of columns; IndexError for a bad id",
        py::arg("ids"), py::arg("count"), py::arg("w"), py::arg("scale"), py::arg("rows"), py::arg("dim"),
        py::arg("group"), py::arg("out"), py::arg("out_dtype"), py::arg("num_threads"));
  m.def("sparse24_linear", &sparse24_linear,
        "y = x @ W.T + bias, W 2:4 sparse in prunq's portable layout (values, meta)", py::arg("x"), py::arg("dtype"),
        py::arg("values"), py::arg("values_type"), py::arg("meta"), py::arg("w_scale"), py::arg("bias"), py::arg("out"),
        py::arg("m"), py::arg("n"), py::arg("k"), py::arg("num_threads"));
  m.def("csr_linear", &csr_linear, "y = x @ W.T + bias, W in CSR with checked int32 indices", py::arg("x"),
        py::arg("dtype"), py::arg("crow"), py::arg("col"), py::arg("values"), py::arg("values_type"),
        py::arg("w_scale"), py::arg("bias"), py::arg("out"), py::arg("m"), py::arg("n"), py::arg("k"),
        py::arg("num_threads"));
  m.def("sparse24_first_bad_group", [](uintptr_t meta, int64_t bytes) {
    return cpu::sparse24_first_bad_group(as_ptr<const uint8_t>(meta), bytes);
  }, "the first 2:4 group whose positions are not in order, or -1", py::arg("meta"), py::arg("bytes"));
  m.def("csr_valid", [](uintptr_t crow, int64_t n, uintptr_t col, int64_t count, int64_t k) {
    return cpu::csr_valid(as_ptr<const int32_t>(crow), n, as_ptr<const int32_t>(col), count, k);
  }, "whether crow and col are a CSR matrix of [n, k]", py::arg("crow"), py::arg("n"), py::arg("col"), py::arg("count"),
        py::arg("k"));
  m.def("pack_bits", &pack_bits, "bits of x >= 0 in 32-bit words per row; alpha = mean |x| per row unless 0",
        py::arg("x"), py::arg("dtype"), py::arg("m"), py::arg("k"), py::arg("words"), py::arg("bits"),
        py::arg("alpha"), py::arg("num_threads"));
  m.def("binary_gemm", &binary_gemm, "k - 2 popcount(a xor b) as int32, or scaled into a float out", py::arg("a"),
        py::arg("b"), py::arg("m"), py::arg("n"), py::arg("k"), py::arg("words"), py::arg("dots"), py::arg("out"),
        py::arg("out_dtype"), py::arg("alpha"), py::arg("w_scale"), py::arg("bias"), py::arg("num_threads"));
  m.def("binary_linear", &binary_linear, "XNOR-Net (binarize_x) or BinaryConnect linear on packed weight bits",
        py::arg("x"), py::arg("dtype"), py::arg("w"), py::arg("w_columns"), py::arg("w_scale"), py::arg("bias"),
        py::arg("out"), py::arg("m"), py::arg("n"), py::arg("k"), py::arg("words"), py::arg("binarize_x"),
        py::arg("num_threads"));
  m.def("binary_columns", &binary_columns, "w [n, words] transposed into [words, n rounded up to 16], zero-padded",
        py::arg("w"), py::arg("n"), py::arg("words"), py::arg("columns"));
  m.def("pack_int8_vnni", &pack_int8_vnni, "pack w [N, K] int8 for the VNNI kernel", py::arg("w"), py::arg("n"),
        py::arg("k"), py::arg("packed"), py::arg("colsum"));
  m.def("int8_weight_only_gemm", &int8_weight_only_gemm<false>, "y = x @ (w * w_scale).T + bias, int8 weights",
        py::arg("x"), py::arg("dtype"), py::arg("w"), py::arg("w_scale"), py::arg("bias"), py::arg("out"),
        py::arg("m"), py::arg("n"), py::arg("k"), py::arg("num_threads"));
  m.def("int8_weight_only_gemm_packed", &int8_weight_only_gemm<true>,
        "int8_weight_only_gemm on the VNNI packing of w, where weight_only_packed_available", py::arg("x"), py::arg("dtype"),
        py::arg("w_packed"), py::arg("w_scale"), py::arg("bias"), py::arg("out"), py::arg("m"), py::arg("n"),
        py::arg("k"), py::arg("num_threads"));
  m.def("advise_huge_pages", &advise_huge_pages, "hint that a buffer be backed by huge pages", py::arg("address"),
        py::arg("bytes"));
  m.def("instruction_ceiling", [](const std::string& kind, int num_threads, int64_t blocks) {
    check(num_threads >= 1 && blocks >= 10, "instruction_ceiling: num_threads >= 1 and blocks >= 10");
    py::gil_scoped_release release;
    return cpu::ceiling_ops_per_second(kind, num_threads, blocks);
  }, "ops/s (2 per multiply-add) of a register-only loop of `kind` on num_threads threads, 0 where the CPU lacks it",
        py::arg("kind"), py::arg("num_threads"), py::arg("blocks") = int64_t(100000000));
  m.def("cpu_features", &cpu_features, "CPU features the kernels can use");
  m.def("best_isa", [] { return std::string(isa_name(best_isa())); });
  m.def("active_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("set_avx512_vnni_enabled", &set_avx512_vnni_enabled,
        "False: run the kernels as on an AVX-512 CPU without VNNI; True: as the CPU is", py::arg("enabled"));
  m.def("set_active_isa", [](const std::string& name) { set_active_isa(isa_from_name(name)); },
        "Select the CPU path: portable, avx2 or avx512 (at most what the CPU supports)");
}
