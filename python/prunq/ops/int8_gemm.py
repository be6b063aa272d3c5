"""INT8 GEMM with per-channel weight scales and per-token activation scales.

    quantize_per_token(x) -> (q, scale)
        scale[m] = max_k |x[m, k]| / 127;  q[m, k] = round(x[m, k] * (127 / max_k |x[m, k]|))
        (round half to even, in fp32), so q is in [-127, 127]; a row of zeros gives scale 0 and
        q 0. A row holding inf or NaN gives q 0 and a scale of inf or NaN, so every output
        computed from it is NaN rather than a finite wrong value.
    int8_linear(x_q, x_scale, w_q, w_scale, bias=None, out_dtype=None) -> y
        y[m, n] = (sum_k x_q[m, k] * w_q[n, k]) * x_scale[m] * w_scale[n] + bias[n]
        exact int32 accumulation, epilogue in fp32, y in out_dtype (default float32). K is at
        most MAX_K = 131,071, the most for which no int8 dot product can leave int32; K = 0
        gives bias (or zeros).
    int8_weight_only_linear(x, w_q, w_scale, bias=None) -> y
        y = x @ (w_q * w_scale[:, None]).T + bias, accumulated in fp32, y in x's dtype.
    int8_weight_only_linear_prepacked(x, w_q, w_packed, w_scale, bias=None) -> y
        int8_weight_only_linear, where the CPU kernel for bf16 x reads w_packed =
        prunq.formats.int8.weight_only_pack(w_q) (empty: it reads w_q).

x_q / x: [..., K]; w_q: [N, K] int8; w_scale: [N] float32; bias: [N] float or None.

CPU tensors run on prunq._C; CUDA tensors on the Triton kernels (triton_kernels/int8_gemm.py);
others on the reference. prunq._cuda has kernels for quantize_per_token and, for few rows of x,
int8_weight_only_linear: eager CUDA calls take them where they measured faster than Triton (every
quantize without SmoothQuant's channel scale; weight-only up to 4 rows), PRUNQ_BACKEND=cuda (or
native) always, and the GPU benchmark compares them with Triton. On the CPU the functional ops
read w_q as it is (dot products along K over 4 x 4 tiles; from 64 rows int8_linear packs w for
the call). The faster packed-panel kernels (vpdpbusd on AVX-512 VNNI; vpmaddwd on w widened to
int16 on AVX2 and on AVX-512 without VNNI, exact for every int8; on AVX2, vpmaddubsw where every
weight lies within +-8, as 4-bit ones do: Int8Linear's eager calls, and int8_linear's from 64
rows) read a packed copy (prunq.formats.int8.vnni_pack) that modules make once and pass through
`int8_linear_prepacked`, which is int8_linear with that copy beside w_q and an optional
activation applied in the epilogue (activation="gelu": the exact,
erf GELU of y, as in BERT's intermediate layer, saving a pass over the widest activation of the
block). The weight-only kernels read the same packing, which modules pass through
`int8_weight_only_linear_prepacked`: on AVX2 for any float x, on AVX512_BF16 for bf16 x.
`int8_dynamic_linear_prepacked` is quantize_per_token followed by int8_linear_prepacked in one
call (y in x's dtype); on the VNNI path the rows are quantized straight into the kernel's layout. Its
optional x_channel_scale [K] multiplies each column of x before quantization (SmoothQuant: the
module divides w's columns' scale out of the activations' outlier channels and into w).

Eager calls on plain CPU tensors skip torch.ops (see _eager): the public functions call the
kernels themselves, and direct_linear binds a module's weights once for its calls.
"""

from __future__ import annotations

import math

import torch

from .. import _native
from .._backend import forced_backend
from ..formats.int8 import vnni_pack
from . import _eager
from ._library import compiling_for_triton, define_triton_op, lib, native_or_reference, triton_or_reference

lib.define("quantize_per_token(Tensor x) -> (Tensor, Tensor)")
lib.define("int8_linear(Tensor x_q, Tensor x_scale, Tensor w_q, Tensor w_scale, Tensor? bias, ScalarType? out_dtype) -> Tensor")
lib.define("int8_weight_only_linear(Tensor x, Tensor w_q, Tensor w_scale, Tensor? bias) -> Tensor")
lib.define("int8_weight_only_linear_prepacked(Tensor x, Tensor w_q, Tensor w_packed, Tensor w_scale, Tensor? bias) -> Tensor")
lib.define(
    "int8_linear_prepacked(Tensor x_q, Tensor x_scale, Tensor w_q, Tensor w_packed, Tensor w_colsum, "
    "Tensor w_scale, Tensor? bias, ScalarType? out_dtype, str activation=\"none\") -> Tensor"
)
lib.define(
    "int8_dynamic_linear_prepacked(Tensor x, Tensor w_q, Tensor w_packed, Tensor w_colsum, Tensor w_scale, "
    "Tensor? bias, str activation=\"none\", Tensor? x_channel_scale=None) -> Tensor"
)
ACTIVATIONS = {"none": 0, "gelu": 1}
# |sum_k x[k] * w[k]| <= 128 * 128 * K must fit in int32.
MAX_K = (2**31 - 1) // (128 * 128)

_FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _check_float(name, t):
    if t.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float32, bfloat16 or float16, got {t.dtype}")


def _check_quantize(x):
    _check_float("x", x)
    if x.dim() == 0:
        raise ValueError("x: expected at least one dimension")


def _check_weight(x, k_name, w_q, w_scale, bias):
    """Shared checks of w_q [N, K] int8, w_scale [N] float32 and bias [N] against x's K and device."""
    if w_q.dtype != torch.int8:
        raise TypeError(f"w_q: expected int8, got {w_q.dtype}")
    if w_q.dim() != 2:
        raise ValueError(f"w_q: expected [N, K], got shape {tuple(w_q.shape)}")
    n, k = w_q.shape
    if x.shape[-1] != k:
        raise ValueError(f"{k_name}: expected last dimension K = {k} (from w_q), got {x.shape[-1]}")
    if w_scale.dtype != torch.float32:
        raise TypeError(f"w_scale: expected float32, got {w_scale.dtype}")
    if w_scale.shape != (n,):
        raise ValueError(f"w_scale: expected shape ({n},), got {tuple(w_scale.shape)}")
    if bias is not None:
        _check_float("bias", bias)
        if bias.shape != (n,):
            raise ValueError(f"bias: expected shape ({n},), got {tuple(bias.shape)}")
    for name, t in (("w_q", w_q), ("w_scale", w_scale), ("bias", bias)):
        if t is not None and t.device != x.device:
            raise ValueError(f"{name}: expected a tensor on {x.device} like {k_name}, got {t.device}")


def _check_int32_range(name, k):
    if k > MAX_K:
        raise ValueError(f"{name}: K = {k} is above {MAX_K}, beyond which int8 dot products can overflow "
                         "their int32 accumulators")


def _check_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype):
    if x_q.dtype != torch.int8:
        raise TypeError(f"x_q: expected int8, got {x_q.dtype}")
    if x_q.dim() == 0:
        raise ValueError("x_q: expected at least one dimension")
    if x_scale.dtype != torch.float32:
        raise TypeError(f"x_scale: expected float32, got {x_scale.dtype}")
    if x_scale.shape != x_q.shape[:-1]:
        raise ValueError(f"x_scale: expected shape {tuple(x_q.shape[:-1])} (x_q without K), got {tuple(x_scale.shape)}")
    if x_scale.device != x_q.device:
        raise ValueError(f"x_scale: expected a tensor on {x_q.device} like x_q, got {x_scale.device}")
    if out_dtype is not None and out_dtype not in _FLOAT_DTYPES:
        raise TypeError(f"out_dtype: expected float32, bfloat16 or float16, got {out_dtype}")
    _check_weight(x_q, "x_q", w_q, w_scale, bias)
    _check_int32_range("x_q", x_q.shape[-1])


def _check_weight_only(x, w_q, w_scale, bias):
    _check_float("x", x)
    if x.dim() == 0:
        raise ValueError("x: expected at least one dimension")
    _check_weight(x, "x", w_q, w_scale, bias)


@torch.library.register_fake("prunq::quantize_per_token")
def _(x):
    _check_quantize(x)
    return torch.empty(x.shape, dtype=torch.int8, device=x.device), torch.empty(x.shape[:-1], dtype=torch.float32, device=x.device)


@torch.library.register_fake("prunq::int8_linear")
def _(x_q, x_scale, w_q, w_scale, bias, out_dtype):
    _check_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype)
    return x_q.new_empty((*x_q.shape[:-1], w_q.shape[0]), dtype=out_dtype or torch.float32)


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)}, got {activation!r}")


@torch.library.register_fake("prunq::int8_linear_prepacked")
def _(x_q, x_scale, w_q, w_packed, w_colsum, w_scale, bias, out_dtype, activation="none"):
    _check_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype)
    _check_activation(activation)
    return x_q.new_empty((*x_q.shape[:-1], w_q.shape[0]), dtype=out_dtype or torch.float32)


def _check_channel_scale(x, x_channel_scale):
    if x_channel_scale is None:
        return
    if x_channel_scale.dtype != torch.float32:
        raise TypeError(f"x_channel_scale: expected float32, got {x_channel_scale.dtype}")
    if x_channel_scale.shape != (x.shape[-1],):
        raise ValueError(f"x_channel_scale: expected shape ({x.shape[-1]},) (K of x), got {tuple(x_channel_scale.shape)}")
    if x_channel_scale.device != x.device:
        raise ValueError(f"x_channel_scale: expected a tensor on {x.device} like x, got {x_channel_scale.device}")


@torch.library.register_fake("prunq::int8_dynamic_linear_prepacked")
def _(x, w_q, w_packed, w_colsum, w_scale, bias, activation="none", x_channel_scale=None):
    _check_weight_only(x, w_q, w_scale, bias)
    _check_activation(activation)
    _check_channel_scale(x, x_channel_scale)
    _check_int32_range("x", x.shape[-1])
    return x.new_empty((*x.shape[:-1], w_q.shape[0]))


@torch.library.register_fake("prunq::int8_weight_only_linear")
def _(x, w_q, w_scale, bias):
    _check_weight_only(x, w_q, w_scale, bias)
    return x.new_empty((*x.shape[:-1], w_q.shape[0]))


@torch.library.register_fake("prunq::int8_weight_only_linear_prepacked")
def _(x, w_q, w_packed, w_scale, bias):
    _check_weight_only(x, w_q, w_scale, bias)
    return x.new_empty((*x.shape[:-1], w_q.shape[0]))


# --- reference: the specification ------------------------------------------------------------


def quantize_per_token_ref(x):
    xf = x.float()
    absmax = xf.abs().amax(dim=-1, keepdim=True) if x.shape[-1] else xf.new_zeros(*x.shape[:-1], 1)
    # A true division: `127.0 / tensor` would multiply by a rounded reciprocal instead.
    inv = torch.where(absmax > 0, torch.full_like(absmax, 127.0) / absmax, torch.zeros_like(absmax))
    q = torch.round(xf * inv).clamp(-127, 127)
    q = torch.where(torch.isfinite(absmax), q, 0).to(torch.int8)
    return q, (absmax / torch.full_like(absmax, 127.0)).squeeze(-1)


def int8_linear_ref(x_q, x_scale, w_q, w_scale, bias=None, out_dtype=None):
    # float64 holds every int8 dot product exactly (|sum| < 2^53).
    acc = x_q.double() @ w_q.double().T
    y = acc * x_scale.double().unsqueeze(-1) * w_scale.double()
    if bias is not None:
        y = y + bias.double()
    return y.to(out_dtype or torch.float32)


def int8_linear_prepacked_ref(x_q, x_scale, w_q, w_scale, bias=None, out_dtype=None, activation="none"):
    """int8_linear_ref, then the activation on the float64 result."""
    y = int8_linear_ref(x_q, x_scale, w_q, w_scale, bias, torch.float64)
    return (torch.nn.functional.gelu(y) if activation == "gelu" else y).to(out_dtype or torch.float32)


def int8_dynamic_linear_prepacked_ref(x, w_q, w_scale, bias=None, activation="none", x_channel_scale=None):
    x_q, x_scale = quantize_per_token_ref(x if x_channel_scale is None else x.float() * x_channel_scale)
    return int8_linear_prepacked_ref(x_q, x_scale, w_q, w_scale, bias, x.dtype, activation)


def int8_weight_only_linear_ref(x, w_q, w_scale, bias=None):
    y = x.float() @ (w_q.float() * w_scale[:, None]).T
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


# --- device kernels ----------------------------------------------------------------------------


def _rows(t):
    """[..., K] -> [M, K] (K may be 0)."""
    return t.reshape(math.prod(t.shape[:-1]), t.shape[-1])


def _empty_k(x, n, bias, dtype, activation="none"):
    """The product of x [..., 0] with a weight of N rows: bias (or zeros) in every row, then the
    activation."""
    y = torch.zeros((*x.shape[:-1], n), dtype=torch.float32, device=x.device)
    if bias is not None:
        y += bias.float()
    return (torch.nn.functional.gelu(y) if activation == "gelu" else y).to(dtype)


def _native_quantize(x):
    x2 = _native.native_tensor(_rows(x), "x", x.dtype, x.device)
    q = _native.empty_output(x2.shape, torch.int8, x.device)
    scale = torch.empty(x2.shape[0], dtype=torch.float32, device=x.device)
    _native.launch(x.device, "quantize_per_token", x2.data_ptr(), _native.dtype_code(x.dtype), q.data_ptr(),
                   scale.data_ptr(), x2.shape[0], x2.shape[1])
    return q.view(x.shape), scale.view(x.shape[:-1])


def _native_weight(w_q, w_packed, w_colsum, w_scale, bias):
    """(w, colsum, w_scale, bias) ready for prunq._C: the VNNI packing when w_packed is given
    (colsum None otherwise), bias as float32."""
    device = w_q.device
    if w_packed is not None:
        w = _native.native_tensor(w_packed, "w_packed", torch.int8, device)
        colsum = _native.native_tensor(w_colsum, "w_colsum", torch.int32, device)
    else:
        w, colsum = _native.native_tensor(w_q, "w_q", torch.int8, device), None
    ws = _native.native_tensor(w_scale, "w_scale", torch.float32, device)
    b = None if bias is None else _native.native_tensor(bias.float(), "bias", torch.float32, device)
    return w, colsum, ws, b


def _narrow(w: torch.Tensor) -> bool:
    """Whether every weight lies within +-NARROW_WEIGHT_MAX (4-bit ones, as Int8Linear(weight_bits=4)
    holds): the AVX2 kernel that is exact only for those (vpmaddubsw, sums in int16) may take them."""
    if w.numel() == 0:
        return False
    low, high = torch.aminmax(w)
    return max(-int(low), int(high)) <= _native.C.NARROW_WEIGHT_MAX


def _cpu_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype, w_packed=None, w_colsum=None, activation="none",
                     narrow=False):
    """w_packed / w_colsum: the VNNI packing of w_q (prunq.formats.int8.vnni_pack), or None;
    narrow: every weight within +-NARROW_WEIGHT_MAX (_narrow)."""
    x2 = _native.native_tensor(_rows(x_q), "x_q", torch.int8, x_q.device)
    xs = _native.native_tensor(x_scale.reshape(-1), "x_scale", torch.float32, x_q.device)
    w, colsum, ws, b = _native_weight(w_q, w_packed, w_colsum, w_scale, bias)
    n, k = w_q.shape
    out = _native.empty_output((x2.shape[0], n), out_dtype, x_q.device)
    _native.C.int8_gemm(x2.data_ptr(), xs.data_ptr(), w.data_ptr(), _native.address(colsum), ws.data_ptr(), _native.address(b),
                        out.data_ptr(), _native.dtype_code(out_dtype), x2.shape[0], n, k, torch.get_num_threads(),
                        ACTIVATIONS[activation], narrow and w_packed is not None)
    return out.view(*x_q.shape[:-1], n)


def _native_weight_only(x, w_q, w_scale, bias, w_packed=None):
    """w_packed: weight_only_pack(w_q), read instead of w_q (CPU, bf16 x), or None."""
    device = x.device
    x2 = _native.native_tensor(_rows(x), "x", x.dtype, device)
    w = _native.native_tensor(w_q if w_packed is None else w_packed, "w_q", torch.int8, device)
    ws = _native.native_tensor(w_scale, "w_scale", torch.float32, device)
    b = None if bias is None else _native.native_tensor(bias.float(), "bias", torch.float32, device)
    n, k = w_q.shape
    out = _native.empty_output((x2.shape[0], n), x.dtype, device)
    name = "int8_weight_only_gemm" if w_packed is None else "int8_weight_only_gemm_packed"
    _native.launch(device, name, x2.data_ptr(), _native.dtype_code(x.dtype), w.data_ptr(), ws.data_ptr(),
                   _native.address(b), out.data_ptr(), x2.shape[0], n, k)
    return out.view(*x.shape[:-1], n)


def _triton_quantize(x: torch.Tensor, channel_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    from ..triton_kernels import int8_gemm as kernels

    q, scale = kernels.quantize_per_token(_rows(x).contiguous(),
                                          None if channel_scale is None else channel_scale.contiguous())
    return q.view(x.shape), scale.view(x.shape[:-1])


def _triton_int8_linear(x_q: torch.Tensor, x_scale: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor,
                        bias: torch.Tensor | None, out_dtype: torch.dtype | None, activation: str = "none") -> torch.Tensor:
    from ..triton_kernels import int8_gemm as kernels

    y = kernels.int8_linear(_rows(x_q).contiguous(), x_scale.reshape(-1).contiguous(), w_q.contiguous(),
                            w_scale.contiguous(), None if bias is None else bias.float().contiguous(),
                            out_dtype or torch.float32, gelu=activation == "gelu")
    return y.view(*x_q.shape[:-1], w_q.shape[0])


def _triton_weight_only(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor,
                        bias: torch.Tensor | None) -> torch.Tensor:
    from ..triton_kernels import int8_gemm as kernels

    y = kernels.int8_weight_only_linear(_rows(x).contiguous(), w_q.contiguous(), w_scale.contiguous(),
                                        None if bias is None else bias.float().contiguous())
    return y.view(*x.shape[:-1], w_q.shape[0])


@torch.compiler.assume_constant_result
def _path(device_type: str, has_cuda_kernel: bool = False) -> str:
    """"native", "cuda", "triton" or "reference" for tensors on `device_type`, as PRUNQ_BACKEND
    allows. CPU: prunq._C. CUDA: Triton; prunq._cuda when PRUNQ_BACKEND is cuda or native and
    the op has a CUDA C++ kernel (has_cuda_kernel). Elsewhere: reference. Constant within a
    compiled graph."""
    backend = forced_backend()
    if backend == "reference" or device_type not in ("cpu", "cuda"):
        return "reference"
    if device_type == "cuda" and backend in ("cuda", "native"):
        if not has_cuda_kernel:
            raise RuntimeError(f"PRUNQ_BACKEND={backend}: this INT8 op has no CUDA C++ kernel (Triton runs it)")
        if _native.CUDA is None:
            raise RuntimeError(f"prunq._cuda is not available: {_native.load_error('_cuda')}")
        return "cuda"
    if backend == "triton" or (device_type == "cuda" and backend is None):
        return triton_or_reference(backend)
    if backend == "cuda":
        raise RuntimeError(f"PRUNQ_BACKEND=cuda: the INT8 family has no such kernel for {device_type} tensors")
    return native_or_reference(backend)


def _path_with_cuda_kernel(device_type: str) -> str:
    """_path for the ops prunq._cuda has a kernel for."""
    return _path(device_type, True)


# On an H200 (RESULTS, "GPU"), prunq._cuda's quantize beat Triton's at every shape timed (4.8
# against 20.1 us at one row of 4096), and its weight-only GEMM beat Triton's at one row (0.015
# against 0.049 ms at 4096 x 4096) but not at 16 (0.115 against 0.049 ms).
_CUDA_WEIGHT_ONLY_MAX_ROWS = 4


def _cuda_kernel_chosen(path: str, rows: int = 0) -> bool:
    """Whether an eager call routed to Triton (`path`) takes prunq._cuda's kernel instead, as
    measured faster: always for quantize, up to _CUDA_WEIGHT_ONLY_MAX_ROWS rows for weight-only.
    Only where no backend is forced and _cuda is built; compiled graphs keep the Triton kernels."""
    return (path == "triton" and forced_backend() is None and _native.CUDA is not None
            and rows <= _CUDA_WEIGHT_ONLY_MAX_ROWS)


def _quantize(x):
    _check_quantize(x)
    path = _path_with_cuda_kernel(x.device.type)
    if path in ("native", "cuda") or _cuda_kernel_chosen(path):
        return _native_quantize(x)
    return _triton_quantize(x) if path == "triton" else quantize_per_token_ref(x)


# From this many rows, packing w for the packed-panel kernel on every call costs less than it saves.
_PACK_PER_CALL_ROWS = 64


def _int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype):
    _check_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype)
    if w_q.shape[1] == 0:
        return _empty_k(x_q, w_q.shape[0], bias, out_dtype or torch.float32)
    path = _path(x_q.device.type)
    if path == "triton":
        return _triton_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype)
    if path == "reference":
        return int8_linear_ref(x_q, x_scale, w_q, w_scale, bias, out_dtype)
    if x_q.numel() >= _PACK_PER_CALL_ROWS * x_q.shape[-1] and _native.C.packed_gemm_available():
        return _cpu_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype or torch.float32, *vnni_pack(w_q),
                                narrow=_narrow(w_q))
    return _cpu_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype or torch.float32)


def _check_packed(w_q, w_packed, w_colsum=None):
    """w_packed (and w_colsum, where the op takes it) against w_q's shape; empty means none."""
    if w_packed.numel() == 0:
        return
    if w_packed.dtype != torch.int8 or (w_colsum is not None and w_colsum.dtype != torch.int32):
        raise TypeError("w_packed, w_colsum: expected int8 and int32 (from prunq.formats.int8)")
    n_padded, k_padded = _native.C.vnni_padded_shape(*w_q.shape)
    if w_packed.numel() != n_padded * k_padded or (w_colsum is not None and w_colsum.numel() != n_padded):
        raise ValueError(f"w_packed: does not match w_q of shape {tuple(w_q.shape)}; pack it again")


def _int8_linear_prepacked(x_q, x_scale, w_q, w_packed, w_colsum, w_scale, bias, out_dtype, activation="none"):
    _check_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype)
    _check_activation(activation)
    if w_q.shape[1] == 0:
        return _empty_k(x_q, w_q.shape[0], bias, out_dtype or torch.float32, activation)
    path = _path(x_q.device.type)
    if path == "triton":
        return _triton_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype, activation)
    if path == "reference":
        return int8_linear_prepacked_ref(x_q, x_scale, w_q, w_scale, bias, out_dtype, activation)
    _check_packed(w_q, w_packed, w_colsum)
    packed = w_packed.numel() > 0 and _native.C.packed_gemm_available()
    return _cpu_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype or torch.float32,
                            w_packed if packed else None, w_colsum if packed else None, activation)


def _cpu_dynamic_linear(x, w_q, w_packed, w_colsum, w_scale, bias, activation, x_channel_scale):
    x2 = _native.native_tensor(_rows(x), "x", x.dtype, x.device)
    w, colsum, ws, b = _native_weight(w_q, w_packed, w_colsum, w_scale, bias)
    n, k = w_q.shape
    cs = None if x_channel_scale is None else _native.native_tensor(x_channel_scale, "x_channel_scale", torch.float32,
                                                                    x.device)
    out = _native.empty_output((x2.shape[0], n), x.dtype, x.device)
    _native.C.int8_dynamic_gemm(x2.data_ptr(), _native.dtype_code(x.dtype), _native.address(cs), 0, w.data_ptr(),
                                _native.address(colsum), ws.data_ptr(), _native.address(b), out.data_ptr(),
                                _native.dtype_code(x.dtype), x2.shape[0], n, k, torch.get_num_threads(),
                                ACTIVATIONS[activation])
    return out.view(*x.shape[:-1], n)


def _int8_dynamic_linear_prepacked(x, w_q, w_packed, w_colsum, w_scale, bias, activation="none",
                                   x_channel_scale=None):
    _check_weight_only(x, w_q, w_scale, bias)
    _check_activation(activation)
    _check_channel_scale(x, x_channel_scale)
    _check_int32_range("x", x.shape[-1])
    if w_q.shape[1] == 0:
        return _empty_k(x, w_q.shape[0], bias, x.dtype, activation)
    path = _path(x.device.type)
    if path == "triton":
        cuda_quantize = x_channel_scale is None and _cuda_kernel_chosen(path)
        x_q, x_scale = _native_quantize(x) if cuda_quantize else _triton_quantize(x, x_channel_scale)
        return _triton_int8_linear(x_q, x_scale, w_q, w_scale, bias, x.dtype, activation)
    if path == "reference":
        return int8_dynamic_linear_prepacked_ref(x, w_q, w_scale, bias, activation, x_channel_scale)
    _check_packed(w_q, w_packed, w_colsum)
    packed = w_packed.numel() > 0 and _native.C.packed_gemm_available()
    return _cpu_dynamic_linear(x, w_q, w_packed if packed else None, w_colsum if packed else None, w_scale, bias,
                               activation, x_channel_scale)


def _weight_only(x, w_q, w_scale, bias):
    _check_weight_only(x, w_q, w_scale, bias)
    if w_q.shape[1] == 0:
        return _empty_k(x, w_q.shape[0], bias, x.dtype)
    path = _path_with_cuda_kernel(x.device.type)
    if path in ("native", "cuda") or _cuda_kernel_chosen(path, x.numel() // x.shape[-1]):
        return _native_weight_only(x, w_q, w_scale, bias)
    return _triton_weight_only(x, w_q, w_scale, bias) if path == "triton" else int8_weight_only_linear_ref(
        x, w_q, w_scale, bias)


def _weight_only_prepacked(x, w_q, w_packed, w_scale, bias):
    _check_weight_only(x, w_q, w_scale, bias)
    if _path_with_cuda_kernel(x.device.type) == "native":
        _check_packed(w_q, w_packed)
        if w_packed.numel() > 0 and _native.C.weight_only_packed_available(_native.dtype_code(x.dtype)):
            return _native_weight_only(x, w_q, w_scale, bias, w_packed)
    return _weight_only(x, w_q, w_scale, bias)


def direct_linear(w_q, w_packed, w_colsum, w_scale, bias, activation="none", x_channel_scale=None,
                  weight_only=False):
    """For a module whose weights stay put between calls (prunq.nn.Int8Linear): a function of x
    that runs int8_dynamic_linear_prepacked (or, weight_only, int8_weight_only_linear_prepacked)
    on prunq._C for an eager call (see _eager), returning None where x must take the op instead
    or where new memory was put under a weight (`.data =`) since; or None where the weights are
    not plain CPU tensors."""
    required = (w_q, w_packed, w_scale) + (() if weight_only else (w_colsum,))
    optional = (bias, x_channel_scale)
    if (_native.C is None or not all(_eager.plain_cpu(t) for t in required)
            or not all(t is None or (_eager.plain_cpu(t) and t.dtype == torch.float32) for t in optional)):
        return None
    n, k = w_q.shape
    if k == 0 or k > MAX_K:
        return None
    C, codes, act = _native.C, _eager.DTYPE_CODES, ACTIVATIONS[activation]
    colsum = w_packed if weight_only else w_colsum  # weight-only has no sums: w_packed stands in
    narrow = not weight_only and _narrow(w_packed)  # the packed copy: what the kernel multiplies

    def pointers():
        return (w_q.data_ptr(), w_packed.data_ptr(), colsum.data_ptr(), w_scale.data_ptr(),
                0 if bias is None else bias.data_ptr(), 0 if x_channel_scale is None else x_channel_scale.data_ptr())
    bound = pointers()

    def run(x):
        code = codes.get(x.dtype)
        if code is None or not x.shape or x.shape[-1] != k or not x.is_contiguous():
            return None
        ptrs = pointers()
        if ptrs != bound:
            return None
        w_q_ptr, w_packed_ptr, colsum_ptr, w_scale_ptr, bias_ptr, channel_scale_ptr = ptrs
        out = _eager.empty_output((*x.shape[:-1], n), x.dtype)
        if weight_only:
            if w_packed.numel() > 0 and C.weight_only_packed_available(code):
                C.int8_weight_only_gemm_packed(x.data_ptr(), code, w_packed_ptr, w_scale_ptr, bias_ptr, out.data_ptr(),
                                               x.numel() // k, n, k, torch.get_num_threads())
            else:
                C.int8_weight_only_gemm(x.data_ptr(), code, w_q_ptr, w_scale_ptr, bias_ptr, out.data_ptr(),
                                        x.numel() // k, n, k, torch.get_num_threads())
        else:
            packed = w_packed.numel() > 0 and C.packed_gemm_available()
            C.int8_dynamic_gemm(x.data_ptr(), code, channel_scale_ptr, 0, w_packed_ptr if packed else w_q_ptr,
                                colsum_ptr if packed else 0, w_scale_ptr, bias_ptr, out.data_ptr(), code,
                                x.numel() // k, n, k, torch.get_num_threads(), act, packed and narrow)
        return out
    return run


# The functional ops' short road (see _eager): None where an argument is anything but what the
# kernel on plain w takes as it is, and the op, with its full checks, runs instead.


def _direct_quantize(x):
    code = _eager.DTYPE_CODES.get(x.dtype)
    if code is None or not x.shape or not x.shape[-1] or not x.is_contiguous():
        return None
    k = x.shape[-1]
    q = torch.empty_like(x, dtype=torch.int8)
    scale = torch.empty(x.shape[:-1], dtype=torch.float32)
    _native.C.quantize_per_token(x.data_ptr(), code, q.data_ptr(), scale.data_ptr(), x.numel() // k, k,
                                 torch.get_num_threads())
    return q, scale


def _direct_weight(w_q, w_scale, bias, k):
    """N of a plain w_q [N, k] with w_scale [N] and bias [N] (float32, or None), or None."""
    if w_q.dtype != torch.int8 or w_q.dim() != 2 or w_q.shape[1] != k or not 0 < k <= MAX_K:
        return None
    n = w_q.shape[0]
    if (w_scale.dtype != torch.float32 or w_scale.shape != (n,) or not _eager.plain_cpu(w_q)
            or not _eager.plain_cpu(w_scale)
            or (bias is not None and (bias.dtype != torch.float32 or bias.shape != (n,) or not _eager.plain_cpu(bias)))):
        return None
    return n


def _direct_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype):
    shape = x_q.shape
    out_code = _eager.DTYPE_CODES.get(out_dtype or torch.float32)
    if (x_q.dtype != torch.int8 or not shape or out_code is None or x_scale.dtype != torch.float32
            or x_scale.shape != shape[:-1] or not x_q.is_contiguous() or not _eager.plain_cpu(x_scale)):
        return None
    k = shape[-1]
    n = _direct_weight(w_q, w_scale, bias, k)
    m = x_q.numel() // k if k else 0
    if n is None or m >= _PACK_PER_CALL_ROWS:  # many rows pack w on the way (the op)
        return None
    out = torch.empty((*shape[:-1], n), dtype=out_dtype or torch.float32)
    _native.C.int8_gemm(x_q.data_ptr(), x_scale.data_ptr(), w_q.data_ptr(), 0, w_scale.data_ptr(),
                        0 if bias is None else bias.data_ptr(), out.data_ptr(), out_code, m, n, k,
                        torch.get_num_threads(), 0)
    return out


def _direct_weight_only(x, w_q, w_scale, bias):
    code = _eager.DTYPE_CODES.get(x.dtype)
    if code is None or not x.shape or not x.is_contiguous():
        return None
    k = x.shape[-1]
    n = _direct_weight(w_q, w_scale, bias, k)
    if n is None:
        return None
    out = _eager.empty_output((*x.shape[:-1], n), x.dtype)
    _native.C.int8_weight_only_gemm(x.data_ptr(), code, w_q.data_ptr(), w_scale.data_ptr(),
                                    0 if bias is None else bias.data_ptr(), out.data_ptr(), x.numel() // k, n, k,
                                    torch.get_num_threads())
    return out


_quantize_triton = define_triton_op("quantize_per_token_triton", _triton_quantize)
_int8_linear_triton = define_triton_op("int8_linear_triton", _triton_int8_linear)
_weight_only_triton = define_triton_op("int8_weight_only_linear_triton", _triton_weight_only)

for _name, _impl in (("quantize_per_token", _quantize), ("int8_linear", _int8_linear),
                     ("int8_linear_prepacked", _int8_linear_prepacked),
                     ("int8_dynamic_linear_prepacked", _int8_dynamic_linear_prepacked),
                     ("int8_weight_only_linear", _weight_only),
                     ("int8_weight_only_linear_prepacked", _weight_only_prepacked)):
    for _key in ("CPU", "CUDA", "CompositeExplicitAutograd"):
        lib.impl(_name, _impl, _key)


# --- public functions ---------------------------------------------------------------------------


def quantize_per_token(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantization with one fp32 scale per row (last dimension)."""
    if _eager.direct(x):
        result = _direct_quantize(x)
        return _quantize(x) if result is None else result
    if compiling_for_triton(x, _path_with_cuda_kernel):
        _check_quantize(x)
        return _quantize_triton(x, None)
    return torch.ops.prunq.quantize_per_token(x)


def int8_linear(x_q: torch.Tensor, x_scale: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor,
                bias: torch.Tensor | None = None, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """(x_q @ w_q.T) * x_scale[:, None] * w_scale[None, :] + bias with int32 accumulation."""
    if _eager.direct(x_q, x_scale, w_q, w_scale, bias):
        result = _direct_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype)
        return _int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype) if result is None else result
    if compiling_for_triton(x_q, _path):
        _check_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype)
        return _int8_linear_triton(x_q, x_scale, w_q, w_scale, bias, out_dtype, "none")
    return torch.ops.prunq.int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype)


def int8_linear_prepacked(x_q: torch.Tensor, x_scale: torch.Tensor, w_q: torch.Tensor, w_packed: torch.Tensor,
                          w_colsum: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None,
                          out_dtype: torch.dtype | None = None, activation: str = "none") -> torch.Tensor:
    """int8_linear where the CPU kernel reads (w_packed, w_colsum) = vnni_pack(w_q), followed by
    `activation` ("none" or "gelu"); with empty packed tensors, or on other devices, it reads w_q."""
    if _eager.direct(x_q, x_scale, w_q, w_packed, w_colsum, w_scale, bias):
        return _int8_linear_prepacked(x_q, x_scale, w_q, w_packed, w_colsum, w_scale, bias, out_dtype, activation)
    if compiling_for_triton(x_q, _path):
        _check_int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype)
        _check_activation(activation)
        return _int8_linear_triton(x_q, x_scale, w_q, w_scale, bias, out_dtype, activation)
    return torch.ops.prunq.int8_linear_prepacked(x_q, x_scale, w_q, w_packed, w_colsum, w_scale, bias, out_dtype,
                                                 activation)


def int8_dynamic_linear_prepacked(x: torch.Tensor, w_q: torch.Tensor, w_packed: torch.Tensor,
                                  w_colsum: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None,
                                  activation: str = "none", x_channel_scale: torch.Tensor | None = None) -> torch.Tensor:
    """int8_linear_prepacked(*quantize_per_token(x * x_channel_scale), ...) in x's dtype, in one call."""
    if _eager.direct(x, w_q, w_packed, w_colsum, w_scale, bias, x_channel_scale):
        return _int8_dynamic_linear_prepacked(x, w_q, w_packed, w_colsum, w_scale, bias, activation, x_channel_scale)
    if compiling_for_triton(x, _path):
        _check_weight_only(x, w_q, w_scale, bias)
        _check_activation(activation)
        _check_channel_scale(x, x_channel_scale)
        _check_int32_range("x", x.shape[-1])
        return _int8_linear_triton(*_quantize_triton(x, x_channel_scale), w_q, w_scale, bias, x.dtype, activation)
    return torch.ops.prunq.int8_dynamic_linear_prepacked(x, w_q, w_packed, w_colsum, w_scale, bias, activation,
                                                         x_channel_scale)


def int8_weight_only_linear(x: torch.Tensor, w_q: torch.Tensor, w_scale: torch.Tensor,
                            bias: torch.Tensor | None = None) -> torch.Tensor:
    """x @ (w_q * w_scale[:, None]).T + bias, activations in floating point."""
    if _eager.direct(x, w_q, w_scale, bias):
        result = _direct_weight_only(x, w_q, w_scale, bias)
        return _weight_only(x, w_q, w_scale, bias) if result is None else result
    if compiling_for_triton(x, _path_with_cuda_kernel):
        _check_weight_only(x, w_q, w_scale, bias)
        return _weight_only_triton(x, w_q, w_scale, bias)
    return torch.ops.prunq.int8_weight_only_linear(x, w_q, w_scale, bias)


def int8_weight_only_linear_prepacked(x: torch.Tensor, w_q: torch.Tensor, w_packed: torch.Tensor,
                                      w_scale: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """int8_weight_only_linear where the CPU kernel for bf16 x reads w_packed =
    weight_only_pack(w_q); with an empty w_packed, other dtypes or other devices it reads w_q."""
    if _eager.direct(x, w_q, w_packed, w_scale, bias):
        return _weight_only_prepacked(x, w_q, w_packed, w_scale, bias)
    if compiling_for_triton(x, _path_with_cuda_kernel):
        _check_weight_only(x, w_q, w_scale, bias)
        return _weight_only_triton(x, w_q, w_scale, bias)
    return torch.ops.prunq.int8_weight_only_linear_prepacked(x, w_q, w_packed, w_scale, bias)
