// prunq._cuda: the CUDA kernels. Tensors arrive as data pointers plus sizes, and the current
// stream as a handle, from prunq/_native.py.
#include <pybind11/pybind11.h>

#include "common/checks.h"
#include "cuda/int8_gemm.h"
#include "cuda/layernorm.h"

namespace py = pybind11;
using namespace prunq;

namespace {

void raise_if(const char* err, const char* op) {
  if (err) throw std::runtime_error(std::string(op) + " CUDA launch failed: " + err);
}

void add_norm(uintptr_t x, uintptr_t residual, uintptr_t weight, uintptr_t bias, uintptr_t out,
              uintptr_t sum, int64_t rows, int64_t hidden, double eps, int dtype,
              int param_dtype, bool rms, uintptr_t stream) {
  check(rows >= 0 && hidden >= 0, "add_norm: negative size");
  check(rows == 0 || (hidden > 0 && hidden < (int64_t(1) << 31)),
        "add_norm: hidden size must be in [1, 2^31)");
  cuda::AddNormArgs args{as_ptr<const void>(x), as_ptr<const void>(residual),
                         as_ptr<const void>(weight), as_ptr<const void>(bias),
                         as_ptr<void>(out), as_ptr<void>(sum), rows, hidden, float(eps),
                         dtype_from_code(dtype, "dtype"), dtype_from_code(param_dtype, "param_dtype"),
                         rms, as_ptr<void>(stream)};
  check(args.param_dtype == DType::f32 || args.param_dtype == args.dtype,
        "add_norm: param_dtype must be float32 or the input dtype");
  const char* err;
  {
    py::gil_scoped_release release;
    err = cuda::add_norm(args);
  }
  raise_if(err, "add_norm");
}


void quantize_per_token(uintptr_t x, int dtype, uintptr_t q, uintptr_t scale, int64_t rows, int64_t cols,
                        uintptr_t stream) {
  check(rows >= 0 && cols >= 0, "quantize_per_token: negative size");
  check(rows < (int64_t(1) << 31), "quantize_per_token: at most 2^31 - 1 rows");
  const cuda::QuantizeArgs args{as_ptr<const void>(x), dtype_from_code(dtype, "dtype"), as_ptr<int8_t>(q),
                                as_ptr<float>(scale), rows, cols, as_ptr<void>(stream)};
  const char* err;
  {
    py::gil_scoped_release release;
    err = cuda::quantize_per_token(args);
  }
  raise_if(err, "quantize_per_token");
}

void int8_weight_only_gemm(uintptr_t x, int dtype, uintptr_t w, uintptr_t w_scale, uintptr_t bias, uintptr_t out,
                           int64_t m, int64_t n, int64_t k, uintptr_t stream) {
  check(m >= 0 && n >= 0 && k >= 0, "int8_weight_only_gemm: negative size");
  check(n < (int64_t(1) << 31), "int8_weight_only_gemm: at most 2^31 - 1 output channels");
  const cuda::WeightOnlyArgs args{as_ptr<const void>(x), dtype_from_code(dtype, "dtype"), as_ptr<const int8_t>(w),
                                  as_ptr<const float>(w_scale), as_ptr<const float>(bias), as_ptr<void>(out),
                                  m, n, k, as_ptr<void>(stream)};
  const char* err;
  {
    py::gil_scoped_release release;
    err = cuda::int8_weight_only_gemm(args);
  }
  raise_if(err, "int8_weight_only_gemm");
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "prunq CUDA kernels";
  m.def("add_norm", &add_norm, "sum = x + residual; out = LayerNorm or RMSNorm of sum",
        py::arg("x"), py::arg("residual"), py::arg("weight"), py::arg("bias"), py::arg("out"),
        py::arg("sum"), py::arg("rows"), py::arg("hidden"), py::arg("eps"), py::arg("dtype"),
        py::arg("param_dtype"), py::arg("rms"), py::arg("stream"));
  m.def("quantize_per_token", &quantize_per_token, "q, scale = per-token symmetric int8 quantization of x",
        py::arg("x"), py::arg("dtype"), py::arg("q"), py::arg("scale"), py::arg("rows"), py::arg("cols"),
        py::arg("stream"));
  m.def("int8_weight_only_gemm", &int8_weight_only_gemm, "out = (x @ w.T) * w_scale + bias, w int8",
        py::arg("x"), py::arg("dtype"), py::arg("w"), py::arg("w_scale"), py::arg("bias"), py::arg("out"),
        py::arg("m"), py::arg("n"), py::arg("k"), py::arg("stream"));
}
