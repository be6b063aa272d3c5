"""Unstructured sparse linear layers, W in CSR.

    csr_linear(x, crow_indices, col_indices, values, out_features, bias=None, w_scale=None) -> y
        y = x @ W.T + bias in x's dtype, accumulated in fp32; W [out_features, K] holds values at
        (row, col_indices) with rows delimited by crow_indices (int32; prunq.formats.csr); int8
        values are dequantized by w_scale [out_features].

CPU tensors run on prunq._C (portable, AVX2, AVX-512): from 4 rows of x, rows in tiles transposed
into K-major panels (walked in L1-sized blocks of K where the call is compute-bound), each
non-zero weight broadcast against its panel row, threads balanced by non-zeros; CUDA
tensors the Triton kernel (triton_kernels/csr.py: a program per channel, longest channels first);
other devices the reference. The indices are checked on every call (a kernel reads x at
them); a module that owns its weight checks them once.
"""

from __future__ import annotations

import torch

from .. import _native
from ..formats import csr as layout
from . import _eager
from ._library import lib, native_or_triton
from ._sparse import (FLOAT_DTYPES, VALUE_CODES, check_devices, check_scale_and_bias, check_x_and_values,
                      dense_linear_ref, direct_operands, float32_operands, rows)

lib.define("csr_linear(Tensor x, Tensor crow_indices, Tensor col_indices, Tensor values, int out_features, "
           "Tensor? bias, Tensor? w_scale) -> Tensor")

def _check(x, crow, col, values, out_features, bias, w_scale):
    check_x_and_values(x, values)
    if not isinstance(out_features, int) or out_features < 0:
        raise ValueError(f"out_features: expected a count >= 0, got {out_features!r}")
    check_scale_and_bias(values, bias, w_scale, out_features, "out_features")
    check_devices(x, crow_indices=crow, col_indices=col, values=values, bias=bias, w_scale=w_scale)


@torch.library.register_fake("prunq::csr_linear")
def _(x, crow_indices, col_indices, values, out_features, bias, w_scale):
    _check(x, crow_indices, col_indices, values, out_features, bias, w_scale)
    return x.new_empty((*x.shape[:-1], out_features))


def csr_linear_ref(x, crow_indices, col_indices, values, out_features, bias=None, w_scale=None):
    return dense_linear_ref(x, layout.to_dense(crow_indices, col_indices, values, x.shape[-1]), bias, w_scale)


def _native_linear(x, crow, col, values, out_features, bias, w_scale):
    x2 = _native.native_tensor(rows(x), "x", x.dtype, x.device)
    crow, col = (_native.native_tensor(t, name, torch.int32, x.device)
                 for name, t in (("crow_indices", crow), ("col_indices", col)))
    v = _native.native_tensor(values, "values", values.dtype, x.device)
    scale = None if w_scale is None else _native.native_tensor(w_scale, "w_scale", torch.float32, x.device)
    b = None if bias is None else _native.native_tensor(bias, "bias", torch.float32, x.device)
    out = _native.empty_output((x2.shape[0], out_features), x.dtype, x.device)
    _native.C.csr_linear(x2.data_ptr(), _native.dtype_code(x.dtype), crow.data_ptr(), col.data_ptr(), v.data_ptr(),
                         VALUE_CODES[values.dtype], _native.address(scale), _native.address(b), out.data_ptr(),
                         x2.shape[0], out_features, x2.shape[1], torch.get_num_threads())
    return out.view(*x.shape[:-1], out_features)


def _triton_linear(x, crow, col, values, out_features, bias, w_scale):
    from ..triton_kernels.csr import csr_linear as kernel

    y = kernel(rows(x).contiguous(), crow.contiguous(), col.contiguous(),
               values.contiguous(), out_features, None if bias is None else bias.contiguous(),
               None if w_scale is None else w_scale.contiguous())
    return y.view(*x.shape[:-1], out_features)


def _linear(x, crow, col, values, out_features, bias, w_scale):
    _check(x, crow, col, values, out_features, bias, w_scale)
    layout.check(crow, col, values, out_features, x.shape[-1])
    return _PATHS[native_or_triton(x.device.type, "CSR")](x, crow, col, values, out_features, bias, w_scale)


for _key in ("CPU", "CUDA", "CompositeExplicitAutograd"):
    lib.impl("csr_linear", _linear, _key)


def _checked_linear(x, crow, col, values, out_features, bias, w_scale):
    """The CPU kernel on checked operands: dense ones read in place, the rest copied first."""
    k = x.shape[-1]
    if not (k and direct_operands(x, crow, col, values) and float32_operands(bias, w_scale)):
        return _native_linear(x, crow, col, values, out_features, bias, w_scale)
    out = _native.empty_output((*x.shape[:-1], out_features), x.dtype, x.device)
    _native.C.csr_linear(x.data_ptr(), _eager.DTYPE_CODES[x.dtype], crow.data_ptr(), col.data_ptr(), values.data_ptr(),
                         VALUE_CODES[values.dtype], _native.address(w_scale), _native.address(bias), out.data_ptr(),
                         x.numel() // k, out_features, k, torch.get_num_threads())
    return out


def direct_linear(x, crow_indices, col_indices, values, in_features, out_features, bias=None, w_scale=None):
    """For a module that checked its indices against in_features when it was built or loaded: the
    CPU kernel for an eager call (see _eager), or None where x must take the op (which checks
    everything)."""
    if x.dtype not in FLOAT_DTYPES or not x.shape or x.shape[-1] != in_features or not values.is_cpu:
        return None
    if not (crow_indices.dtype == torch.int32 and col_indices.dtype == torch.int32
            and crow_indices.shape == (out_features + 1,) and col_indices.shape == values.shape):
        return None  # indices changed since the module checked them: the op names what is wrong
    return _checked_linear(x, crow_indices, col_indices, values, out_features, bias, w_scale)


_PATHS = {"native": _checked_linear, "triton": _triton_linear, "reference": csr_linear_ref}


def csr_linear(x: torch.Tensor, crow_indices: torch.Tensor, col_indices: torch.Tensor, values: torch.Tensor,
               out_features: int, bias: torch.Tensor | None = None, w_scale: torch.Tensor | None = None) -> torch.Tensor:
    """x @ W.T + bias, W [out_features, K] in CSR (int32 indices; int8 values times w_scale)."""
    if _eager.direct(x, crow_indices, col_indices, values, bias, w_scale):
        return _linear(x, crow_indices, col_indices, values, out_features, bias, w_scale)
    return torch.ops.prunq.csr_linear(x, crow_indices, col_indices, values, out_features, bias, w_scale)
