// prunq._cuda: the CUDA kernels. Tensors arrive as data pointers plus sizes, and the current
// stream as a handle, from prunq/_native.py.
#include <pybind11/pybind11.h>

#include "common/checks.h"
#include "cuda/layernorm.h"

namespace py = pybind11;
using namespace prunq;

namespace {

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
  if (err) throw std::runtime_error(std::string("add_norm CUDA launch failed: ") + err);
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "prunq CUDA kernels";
  m.def("add_norm", &add_norm, "sum = x + residual; out = LayerNorm or RMSNorm of sum",
        py::arg("x"), py::arg("residual"), py::arg("weight"), py::arg("bias"), py::arg("out"),
        py::arg("sum"), py::arg("rows"), py::arg("hidden"), py::arg("eps"), py::arg("dtype"),
        py::arg("param_dtype"), py::arg("rms"), py::arg("stream"));
}
