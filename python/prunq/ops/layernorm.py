"""Fused residual add + LayerNorm / RMSNorm.

    sum = x + residual                                        (rounded to x.dtype)
    out = (sum - mean(sum)) / sqrt(var(sum) + eps) * weight + bias      LayerNorm
    out = sum / sqrt(mean(sum ** 2) + eps) * weight                     RMSNorm

over the last dimension, statistics in fp32; out and sum have x's shape and dtype. One pass over
x and residual replaces eager's add, then norm (each a full read and write of the activations).
x and residual: float32, bfloat16 or float16, same shape; weight and bias: [hidden], in x's
dtype or float32, or None.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _native
from .._backend import forced_backend, triton_usable
from . import _eager
from ._library import compiling_for_triton, define_triton_op, lib

lib.define(
    "add_layer_norm(Tensor x, Tensor residual, Tensor? weight, Tensor? bias, float eps) -> (Tensor, Tensor)"
)
lib.define("add_rms_norm(Tensor x, Tensor residual, Tensor? weight, float eps) -> (Tensor, Tensor)")

_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _check(x, residual, weight, bias) -> None:
    dtype, shape, device = x.dtype, x.shape, x.device
    if dtype not in _FLOAT_DTYPES:
        raise TypeError(f"x: expected float32, bfloat16 or float16, got {dtype}")
    if residual.dtype != dtype:
        raise TypeError(f"residual: expected the dtype of x ({dtype}), got {residual.dtype}")
    if residual.shape != shape:
        raise ValueError(f"residual: expected the shape of x {tuple(shape)}, got {tuple(residual.shape)}")
    if residual.device != device:
        raise ValueError(f"residual: expected a tensor on {device} like x, got {residual.device}")
    if not shape or shape[-1] == 0:
        raise ValueError(f"x: expected a non-empty last dimension to normalize, got shape {tuple(shape)}")
    for name, param in (("weight", weight), ("bias", bias)):
        if param is None:
            continue
        if param.dtype != dtype and param.dtype != torch.float32:
            raise TypeError(f"{name}: expected {dtype} or float32, got {param.dtype}")
        if param.dim() != 1 or param.shape[0] != shape[-1]:
            raise ValueError(f"{name}: expected shape ({shape[-1]},), got {tuple(param.shape)}")
        if param.device != device:
            raise ValueError(f"{name}: expected a tensor on {device} like x, got {param.device}")


@torch.library.register_fake("prunq::add_layer_norm")
def _(x, residual, weight, bias, eps):
    _check(x, residual, weight, bias)
    return torch.empty_like(x), torch.empty_like(x)


@torch.library.register_fake("prunq::add_rms_norm")
def _(x, residual, weight, eps):
    _check(x, residual, weight, None)
    return torch.empty_like(x), torch.empty_like(x)


# --- reference: the specification ------------------------------------------------------------


def add_layer_norm_ref(x, residual, weight=None, bias=None, eps=1e-5):
    total = x + residual
    out = F.layer_norm(total.float(), total.shape[-1:], _float(weight), _float(bias), eps)
    return out.to(x.dtype), total


def add_rms_norm_ref(x, residual, weight=None, eps=1e-6):
    total = x + residual
    s = total.float()
    out = s * torch.rsqrt(s.pow(2).mean(-1, keepdim=True) + eps)
    if weight is not None:
        out = out * weight.float()
    return out.to(x.dtype), total


def _float(t):
    return None if t is None else t.float()


# --- device kernels ----------------------------------------------------------------------------


def _params(x, weight, bias):
    """weight and bias in one dtype for the kernels: x's, or float32 if either is float32."""
    dtype = x.dtype
    if (weight is not None and weight.dtype != dtype) or (bias is not None and bias.dtype != dtype):
        dtype = torch.float32
        weight = None if weight is None else weight.float()
        bias = None if bias is None else bias.float()
    return weight, bias, dtype


def _native_add_norm(x, residual, weight, bias, eps, rms):
    hidden = x.shape[-1]
    x_c = _native.native_tensor(x, "x", x.dtype, x.device)
    r_c = _native.native_tensor(residual, "residual", x.dtype, x.device)
    weight, bias, param_dtype = _params(x, weight, bias)
    if weight is not None:
        weight = _native.native_tensor(weight, "weight", param_dtype, x.device)
    if bias is not None:
        bias = _native.native_tensor(bias, "bias", param_dtype, x.device)
    out = _native.empty_output(x_c.shape, x.dtype, x.device)
    total = _native.empty_output(x_c.shape, x.dtype, x.device)
    _native.launch(
        x.device, "add_norm", x_c.data_ptr(), r_c.data_ptr(), _native.address(weight), _native.address(bias),
        out.data_ptr(), total.data_ptr(), x_c.numel() // hidden, hidden, eps,
        _native.dtype_code(x.dtype), _native.dtype_code(param_dtype), rms,
    )
    return out, total


def _cpu_native(x, residual, weight, bias, eps, rms):
    if _native.C is None:
        raise RuntimeError(f"prunq._C is not available: {_native.load_error('_C')}")
    return _native_add_norm(x, residual, weight, bias, eps, rms)


def _cuda_native(x, residual, weight, bias, eps, rms):
    if _native.CUDA is None:
        raise RuntimeError(f"prunq._cuda is not available: {_native.load_error('_cuda')}")
    return _native_add_norm(x, residual, weight, bias, eps, rms)


def _triton(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
            eps: float, rms: bool) -> tuple[torch.Tensor, torch.Tensor]:
    from ..triton_kernels.layernorm import add_norm

    hidden = x.shape[-1]
    weight, bias, _ = _params(x, weight, bias)
    out, total = add_norm(x.reshape(-1, hidden).contiguous(), residual.reshape(-1, hidden).contiguous(),
                          None if weight is None else weight.contiguous(),
                          None if bias is None else bias.contiguous(), eps, rms)
    return out.view(x.shape), total.view(x.shape)


def _reference(x, residual, weight, bias, eps, rms):
    if rms:
        return add_rms_norm_ref(x, residual, weight, eps)
    return add_layer_norm_ref(x, residual, weight, bias, eps)


@torch.compiler.assume_constant_result
def _route(device_type: str) -> str:
    """"native", "cuda", "triton" or "reference" for tensors on `device_type`, as PRUNQ_BACKEND
    allows. CUDA prefers prunq._cuda, then Triton. Constant within a compiled graph."""
    backend = forced_backend()
    if backend == "reference" or device_type not in ("cpu", "cuda"):
        return "reference"
    if backend == "triton":
        return "triton"
    if device_type == "cpu":
        if backend == "cuda":
            raise RuntimeError("PRUNQ_BACKEND=cuda: x is a CPU tensor")
        return "native" if _native.C is not None or backend == "native" else "reference"
    if backend in ("native", "cuda") or _native.CUDA is not None:
        return "cuda"
    return "triton" if triton_usable()[0] else "reference"


_PATHS = {"native": _cpu_native, "cuda": _cuda_native, "triton": _triton, "reference": _reference}


def _run(x, residual, weight, bias, eps, rms):
    _check(x, residual, weight, bias)
    return _PATHS[_route(x.device.type)](x, residual, weight, bias, eps, rms)


_add_norm_triton = define_triton_op("add_norm_triton", _triton)


def check_direct(weight, bias):
    """(dtype, hidden) of weight and bias for eager calls that skip torch.ops (see _eager), each
    None where both parameters are None; or None where the kernel does not take them as they are
    (they must be contiguous CPU tensors of one shape [hidden] and one float dtype)."""
    param_dtype = hidden = None
    for param in (weight, bias):
        if param is None:
            continue
        if (type(param) not in _eager.PLAIN or not param.is_cpu or not param.is_contiguous() or param.dim() != 1
                or (hidden is not None and param.shape[0] != hidden) or param.dtype not in _eager.DTYPE_CODES
                or (param_dtype is not None and param.dtype != param_dtype)):
            return None
        param_dtype, hidden = param.dtype, param.shape[0]
    return param_dtype, hidden


def run_direct(x, residual, weight_ptr, bias_ptr, checked, eps, rms):
    """The kernel on x and residual with parameters that passed check_direct (`checked`; 0 for an
    absent one's pointer), or None where the call must take torch.ops: x and residual not
    contiguous CPU tensors of one float dtype and shape that match the parameters."""
    param_dtype, hidden = checked
    dtype, shape = x.dtype, x.shape
    code = _eager.DTYPE_CODES.get(dtype)
    if (code is None or type(residual) not in _eager.PLAIN or residual.shape != shape or residual.dtype != dtype
            or not residual.is_cpu or not shape or not x.is_contiguous() or not residual.is_contiguous()
            or not shape[-1] or (hidden is not None and shape[-1] != hidden)):
        return None
    if param_dtype is None or param_dtype == dtype:
        param_code = code
    elif param_dtype == torch.float32:
        param_code = 0
    else:
        return None
    numel = x.numel()
    if numel < _SMALL_NUMEL:
        out, total = torch.empty_like(x), torch.empty_like(x)
    else:
        out, total = _native.empty_output(shape, dtype, x.device), _native.empty_output(shape, dtype, x.device)
    _native.C.add_norm(x.data_ptr(), residual.data_ptr(), weight_ptr, bias_ptr, out.data_ptr(), total.data_ptr(),
                       numel // shape[-1], shape[-1], eps, code, param_code, rms, torch.get_num_threads())
    return out, total


# Outputs below the huge-page size at 4 bytes an element (any dtype): plain empty_like.
_SMALL_NUMEL = _native.HUGE_PAGE_OUTPUT_BYTES // 4


def _direct(x, residual, weight, bias, eps, rms):
    checked = check_direct(weight, bias)
    if checked is None:
        return None
    return run_direct(x, residual, 0 if weight is None else weight.data_ptr(), 0 if bias is None else bias.data_ptr(),
                      checked, eps, rms)


for _key in ("CPU", "CUDA", "CompositeExplicitAutograd"):
    lib.impl("add_layer_norm", lambda x, r, w, b, eps: _run(x, r, w, b, eps, False), _key)
    lib.impl("add_rms_norm", lambda x, r, w, eps: _run(x, r, w, None, eps, True), _key)


# --- public functions ---------------------------------------------------------------------------


def add_layer_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    eps: float = 1e-5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """sum = x + residual; out = LayerNorm(sum) over the last dimension. Returns (out, sum)."""
    if _eager.direct(x):
        result = _direct(x, residual, weight, bias, eps, False)
        if result is not None:
            return result
    if compiling_for_triton(x, _route):
        _check(x, residual, weight, bias)
        return _add_norm_triton(x, residual, weight, bias, eps, False)
    return torch.ops.prunq.add_layer_norm(x, residual, weight, bias, eps)


def add_rms_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """sum = x + residual; out = RMSNorm(sum) over the last dimension. Returns (out, sum)."""
    if _eager.direct(x):
        result = _direct(x, residual, weight, None, eps, True)
        if result is not None:
            return result
    if compiling_for_triton(x, _route):
        _check(x, residual, weight, None)
        return _add_norm_triton(x, residual, weight, None, eps, True)
    return torch.ops.prunq.add_rms_norm(x, residual, weight, eps)
