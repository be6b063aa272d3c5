"""Unstructured sparse linear layers, W in CSR.

    csr_linear(x, crow_indices, col_indices, values, out_features, bias=None, w_scale=None) -> y
        y = x @ W.T + bias in x's dtype, accumulated in fp32; W [out_features, K] holds values at
        (row, col_indices) with rows delimited by crow_indices (int32; prunq.formats.csr); int8
        values are dequantized by w_scale [out_features].

CPU tensors run on prunq._C (portable, AVX2, AVX-512): rows of x in tiles transposed into K-major
panels, each non-zero weight broadcast against its panel row, threads balanced by non-zeros; CUDA
tensors the Triton kernel (triton_kernels/csr.py: a program per channel, longest channels first);
other devices the reference. The indices are checked on every call (a kernel reads x at
them); a module that owns its weight checks them once.
"""

from __future__ import annotations

import math

import torch

from .. import _native
from ..formats import csr as layout
from . import _eager
from ._library import lib, native_or_triton

lib.define("csr_linear(Tensor x, Tensor crow_indices, Tensor col_indices, Tensor values, int out_features, "
           "Tensor? bias, Tensor? w_scale) -> Tensor")

_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
_VALUE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2, torch.int8: 3}


def _check(x, crow, col, values, out_features, bias, w_scale):
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"x: expected float32, bfloat16 or float16, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError("x: expected at least one dimension")
    if values.dtype not in _VALUE_CODES:
        raise TypeError(f"values: expected float32, bfloat16, float16 or int8, got {values.dtype}")
    if not isinstance(out_features, int) or out_features < 0:
        raise ValueError(f"out_features: expected a count >= 0, got {out_features!r}")
    if (values.dtype == torch.int8) != (w_scale is not None):
        raise ValueError("w_scale: expected [out_features] float32 with int8 values, and none with float values")
    for name, t in (("bias", bias), ("w_scale", w_scale)):
        if t is None:
            continue
        if t.dtype != torch.float32:
            raise TypeError(f"{name}: expected float32, got {t.dtype}")
        if t.shape != (out_features,):
            raise ValueError(f"{name}: expected shape ({out_features},), got {tuple(t.shape)}")
    for name, t in (("crow_indices", crow), ("col_indices", col), ("values", values), ("bias", bias),
                    ("w_scale", w_scale)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name}: expected a tensor on {x.device} like x, got {t.device}")


@torch.library.register_fake("prunq::csr_linear")
def _(x, crow_indices, col_indices, values, out_features, bias, w_scale):
    _check(x, crow_indices, col_indices, values, out_features, bias, w_scale)
    return x.new_empty((*x.shape[:-1], out_features))


def csr_linear_ref(x, crow_indices, col_indices, values, out_features, bias=None, w_scale=None):
    w = layout.to_dense(crow_indices, col_indices, values, x.shape[-1]).double()
    if w_scale is not None:
        w = w * w_scale.double()[:, None]
    y = x.double() @ w.T
    if bias is not None:
        y = y + bias.double()
    return y.to(x.dtype)


def _native_linear(x, crow, col, values, out_features, bias, w_scale):
    k = x.shape[-1]
    x2 = _native.native_tensor(x.reshape(math.prod(x.shape[:-1]), k), "x", x.dtype, x.device)
    crow, col = (_native.native_tensor(t, name, torch.int32, x.device)
                 for name, t in (("crow_indices", crow), ("col_indices", col)))
    v = _native.native_tensor(values, "values", values.dtype, x.device)
    scale = None if w_scale is None else _native.native_tensor(w_scale, "w_scale", torch.float32, x.device)
    b = None if bias is None else _native.native_tensor(bias, "bias", torch.float32, x.device)
    out = _native.empty_output((x2.shape[0], out_features), x.dtype, x.device)
    _native.C.csr_linear(x2.data_ptr(), _native.dtype_code(x.dtype), crow.data_ptr(), col.data_ptr(), v.data_ptr(),
                         _VALUE_CODES[values.dtype], _native.address(scale), _native.address(b), out.data_ptr(),
                         x2.shape[0], out_features, k, torch.get_num_threads())
    return out.view(*x.shape[:-1], out_features)


def _triton_linear(x, crow, col, values, out_features, bias, w_scale):
    from ..triton_kernels.csr import csr_linear as kernel

    k = x.shape[-1]
    y = kernel(x.reshape(math.prod(x.shape[:-1]), k).contiguous(), crow.contiguous(), col.contiguous(),
               values.contiguous(), out_features, None if bias is None else bias.contiguous(),
               None if w_scale is None else w_scale.contiguous())
    return y.view(*x.shape[:-1], out_features)


_PATHS = {"native": _native_linear, "triton": _triton_linear, "reference": csr_linear_ref}


def _linear(x, crow, col, values, out_features, bias, w_scale):
    _check(x, crow, col, values, out_features, bias, w_scale)
    layout.check(crow, col, values, out_features, x.shape[-1])
    return _PATHS[native_or_triton(x.device.type, "CSR")](x, crow, col, values, out_features, bias, w_scale)


for _key in ("CPU", "CUDA", "CompositeExplicitAutograd"):
    lib.impl("csr_linear", _linear, _key)


def csr_linear(x: torch.Tensor, crow_indices: torch.Tensor, col_indices: torch.Tensor, values: torch.Tensor,
               out_features: int, bias: torch.Tensor | None = None, w_scale: torch.Tensor | None = None) -> torch.Tensor:
    """x @ W.T + bias, W [out_features, K] in CSR (int32 indices; int8 values times w_scale)."""
    if _eager.direct(x, crow_indices, col_indices, values, bias, w_scale):
        return _linear(x, crow_indices, col_indices, values, out_features, bias, w_scale)
    return torch.ops.prunq.csr_linear(x, crow_indices, col_indices, values, out_features, bias, w_scale)
