"""2:4 semi-structured sparse linear layers.

    sparse24_pack(w) -> (values, meta)
        w [N, K] with at most two non-zeros in every group of four along K; values [N, Kp / 2] in
        w's dtype (int8 for an int8 w), meta [N, Kp / 8] uint8 with the positions, Kp = K rounded
        up to a multiple of 8 (prunq.formats.sparse24 describes the layout).
    sparse24_linear(x, values, meta, bias=None, w_scale=None) -> y
        y = x @ unpack(values, meta).T + bias in x's dtype, accumulated in fp32; with int8 values,
        the weight is unpack(values, meta) * w_scale[:, None] (weight-only: x stays float).

x: [..., K] float32, bfloat16 or float16; values float (any of the three) or int8; bias and
w_scale [N] float32. CPU tensors run on prunq._C (portable, AVX2, AVX-512): below 16 rows of x a
row of W is read in chunks whose values pick their x by register permutes, so one row of x reads
only the kept weights and their 4-bit positions (9/16 of a dense bf16 weight's bytes); from 16
rows, CSR's panel kernel (each kept weight broadcast against a tile of rows of x). CUDA tensors run the
Triton kernel (triton_kernels/sparse24.py, written for few rows of x: values and positions
expanded in registers) and, from TORCH_SPARSE_FROM_ROWS rows of fp16 or bf16 x, torch's own 2:4
kernels on the sparse tensor cores (to_sparse_semi_structured: cuSPARSELt or CUTLASS), whose
weight is derived from values and meta on first use and kept with the values tensor; other
devices run the reference.
"""

from __future__ import annotations

import torch

from .. import _native
from .._backend import forced_backend
from ..formats import sparse24 as layout
from . import _eager
from ._library import lib, native_or_triton
from ._sparse import (FLOAT_DTYPES, VALUE_CODES, check_devices, check_scale_and_bias, check_x_and_values,
                      dense_linear_ref, direct_operands, float32_operands, rows)

lib.define("sparse24_pack(Tensor w) -> (Tensor, Tensor)")
lib.define("sparse24_linear(Tensor x, Tensor values, Tensor meta, Tensor? bias, Tensor? w_scale) -> Tensor")


def _check_pack(w):
    if w.dtype not in VALUE_CODES:
        raise TypeError(f"w: expected float32, bfloat16, float16 or int8, got {w.dtype}")
    if w.dim() != 2:
        raise ValueError(f"w: expected [N, K], got shape {tuple(w.shape)}")


def _check_linear(x, values, meta, bias, w_scale):
    check_x_and_values(x, values)
    k = x.shape[-1]
    if values.dim() != 2 or values.shape[1] != layout.padded_k(k) // 2:
        raise ValueError(f"values: expected [N, {layout.padded_k(k) // 2}] for x's K = {k}, "
                         f"got shape {tuple(values.shape)}")
    n = values.shape[0]
    if meta.dtype != torch.uint8:
        raise TypeError(f"meta: expected uint8 (from sparse24_pack), got {meta.dtype}")
    if meta.shape != (n, layout.padded_k(k) // 8):
        raise ValueError(f"meta: expected shape ({n}, {layout.padded_k(k) // 8}) to match values, "
                         f"got {tuple(meta.shape)}")
    check_scale_and_bias(values, bias, w_scale, n, "N")
    check_devices(x, values=values, meta=meta, bias=bias, w_scale=w_scale)


@torch.library.register_fake("prunq::sparse24_pack")
def _(w):
    _check_pack(w)
    n, k = w.shape
    kp = layout.padded_k(k)
    return w.new_empty((n, kp // 2)), w.new_empty((n, kp // 8), dtype=torch.uint8)


@torch.library.register_fake("prunq::sparse24_linear")
def _(x, values, meta, bias, w_scale):
    _check_linear(x, values, meta, bias, w_scale)
    return x.new_empty((*x.shape[:-1], values.shape[0]))


# --- reference: the specification ------------------------------------------------------------


def sparse24_pack_ref(w):
    return layout.pack(w)


def sparse24_linear_ref(x, values, meta, bias=None, w_scale=None):
    return dense_linear_ref(x, layout.unpack(values, meta, x.shape[-1]), bias, w_scale)


# --- device kernels ----------------------------------------------------------------------------


def _native_linear(x, values, meta, bias, w_scale):
    x2 = _native.native_tensor(rows(x), "x", x.dtype, x.device)
    v = _native.native_tensor(values, "values", values.dtype, x.device)
    positions = _native.native_tensor(meta, "meta", torch.uint8, x.device)
    scale = None if w_scale is None else _native.native_tensor(w_scale, "w_scale", torch.float32, x.device)
    b = None if bias is None else _native.native_tensor(bias, "bias", torch.float32, x.device)
    out = _native.empty_output((x2.shape[0], values.shape[0]), x.dtype, x.device)
    _native.C.sparse24_linear(x2.data_ptr(), _native.dtype_code(x.dtype), v.data_ptr(), VALUE_CODES[values.dtype],
                              positions.data_ptr(), _native.address(scale), _native.address(b), out.data_ptr(),
                              x2.shape[0], values.shape[0], x2.shape[1], torch.get_num_threads())
    return out.view(*x.shape[:-1], values.shape[0])


def _triton_linear(x, values, meta, bias, w_scale):
    from ..triton_kernels.sparse24 import sparse24_linear as kernel

    y = kernel(rows(x).contiguous(), values.contiguous(), meta.contiguous(),
               None if bias is None else bias.contiguous(), None if w_scale is None else w_scale.contiguous())
    return y.view(*x.shape[:-1], values.shape[0])


# From this many rows the GEMM is compute-bound and the sparse tensor cores win (not yet measured on
# a GPU: bench_sparse24 --device cuda times both sides).
TORCH_SPARSE_FROM_ROWS = 256


def torch_semi_structured(values, meta, k, dtype, w_scale=None):
    """The weight as torch's SparseSemiStructuredTensor in `dtype`, or None where torch's kernels
    do not take it (dtype, shape, device). Built once per values tensor and kept on it, rebuilt
    when values or meta change in place."""
    key = (values._version, meta.data_ptr(), meta._version, dtype, k,
           None if w_scale is None else (w_scale.data_ptr(), w_scale._version))
    cached = getattr(values, "_prunq_semi_structured", None)
    if cached is not None and cached[0] == key:
        return cached[1]
    weight = None
    if dtype in (torch.float16, torch.bfloat16):
        dense = layout.unpack(values, meta, k)
        dense = (dense.float() * w_scale[:, None] if w_scale is not None else dense).to(dtype)
        try:
            weight = torch.sparse.to_sparse_semi_structured(dense)
        except (RuntimeError, ValueError):  # shapes or devices torch's kernels do not take
            weight = None
    values._prunq_semi_structured = (key, weight)
    return weight


def _cuda_linear(x, values, meta, bias, w_scale):
    x2 = rows(x)
    if x2.shape[0] >= TORCH_SPARSE_FROM_ROWS and forced_backend() != "triton":
        weight = torch_semi_structured(values, meta, x.shape[-1], x.dtype, w_scale)
        if weight is not None:
            return torch.nn.functional.linear(x2, weight, None if bias is None else bias.to(x.dtype)).view(
                *x.shape[:-1], values.shape[0])
    return _triton_linear(x, values, meta, bias, w_scale)


def _pack(w):
    _check_pack(w)
    return sparse24_pack_ref(w)


def _linear(x, values, meta, bias, w_scale):
    _check_linear(x, values, meta, bias, w_scale)
    layout.check(values, meta, x.shape[-1])
    return _PATHS[native_or_triton(x.device.type, "2:4")](x, values, meta, bias, w_scale)


for _key in ("CPU", "CUDA", "CompositeExplicitAutograd"):
    lib.impl("sparse24_pack", _pack, _key)
    lib.impl("sparse24_linear", _linear, _key)


def _checked_linear(x, values, meta, bias, w_scale):
    """The CPU kernel on checked operands: dense ones read in place, the rest copied first."""
    k = x.shape[-1]
    if not (k and direct_operands(x, values, meta) and float32_operands(bias, w_scale)):
        return _native_linear(x, values, meta, bias, w_scale)
    n = values.shape[0]
    out = _native.empty_output((*x.shape[:-1], n), x.dtype, x.device)
    _native.C.sparse24_linear(x.data_ptr(), _eager.DTYPE_CODES[x.dtype], values.data_ptr(), VALUE_CODES[values.dtype],
                              meta.data_ptr(), _native.address(w_scale), _native.address(bias), out.data_ptr(),
                              x.numel() // k, n, k, torch.get_num_threads())
    return out


def direct_linear(x, values, meta, bias=None, w_scale=None):
    """For a module that checked its packing when it was built or loaded: the CPU kernel for an
    eager call (see _eager), or None where x must take the op (which checks everything)."""
    if x.dtype not in FLOAT_DTYPES or not x.shape or values.shape[1] != layout.padded_k(x.shape[-1]) // 2 or (
            not values.is_cpu or not meta.is_cpu):
        return None
    if not (meta.dtype == torch.uint8 and meta.shape == (values.shape[0], values.shape[1] // 4)):
        return None  # meta changed since the module checked it: the op names what is wrong
    return _checked_linear(x, values, meta, bias, w_scale)


_PATHS = {"native": _checked_linear, "triton": _cuda_linear, "reference": sparse24_linear_ref}


# --- public functions ---------------------------------------------------------------------------


def sparse24_pack(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, meta) of a 2:4 weight w [N, K]; ValueError naming the first row and group with
    more than two non-zeros."""
    return torch.ops.prunq.sparse24_pack(w)


def sparse24_linear(x: torch.Tensor, values: torch.Tensor, meta: torch.Tensor, bias: torch.Tensor | None = None,
                    w_scale: torch.Tensor | None = None) -> torch.Tensor:
    """x @ unpack(values, meta).T (times w_scale per channel for int8 values) + bias."""
    if _eager.direct(x, values, meta, bias, w_scale):
        return _linear(x, values, meta, bias, w_scale)
    return torch.ops.prunq.sparse24_linear(x, values, meta, bias, w_scale)
