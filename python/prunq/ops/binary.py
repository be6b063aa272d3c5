"""Packed binary matmul: weights (and activations) of +1 / -1, 32 to a word.

    pack_bits(x) -> bits
        bits [..., ceil(K / 32)] int32 of x [..., K] float: bit j % 32 of word j // 32 is 1 where
        x[..., j] >= 0, 0 where x < 0 or NaN; padding bits are 0 (prunq.formats.bits).
    binary_matmul(a_bits, b_bits, k) -> int32 [M, N]
        the dot products of the +-1 vectors, k - 2 * popcount(a xor b) over the first k bits,
        exact for every k; a_bits [M, W], b_bits [N, W], W = ceil(k / 32).
    binary_linear(x, w_bits, w_scale, bias=None, binarize_x=True) -> y
        binarize_x=True (XNOR-Net): y = alpha * (sign(x) . sign(W)) * w_scale + bias, alpha the
        mean |x| of each row of x, sign(0) = +1; binarize_x=False (BinaryConnect): y = x @
        (sign(W) * w_scale[:, None]).T + bias. x [..., K] float32, bfloat16 or float16, w_bits
        [N, ceil(K / 32)], w_scale and bias [N] float32; y in x's dtype.

CPU tensors run on prunq._C: popcount of 512 bits per instruction with AVX-512 VPOPCNTDQ, a
nibble table (vpshufb) on AVX2, 64-bit words on the portable path; BinaryConnect adds the x
under each weight word's bits (AVX-512 masks, AVX2 a table of 0/1 floats per byte), never
unpacking W to floats in memory. Other devices run the reference.
"""

from __future__ import annotations

import torch

from .. import _native
from ..formats import bits as layout
from . import _eager
from ._library import lib, native_or_triton
from ._sparse import FLOAT_DTYPES, check_channel_vectors, check_devices, rows

lib.define("pack_bits(Tensor x) -> Tensor")
lib.define("binary_matmul(Tensor a_bits, Tensor b_bits, int k) -> Tensor")
lib.define("binary_linear(Tensor x, Tensor w_bits, Tensor w_scale, Tensor? bias, bool binarize_x) -> Tensor")


def _check_x(x):
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x: expected float32, bfloat16 or float16, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError("x: expected at least one dimension")


def _check_bits(name, bits, words, k_name):
    if bits.dtype != torch.int32:
        raise TypeError(f"{name}: expected int32 words (from pack_bits), got {bits.dtype}")
    if bits.dim() != 2 or bits.shape[1] != words:
        raise ValueError(f"{name}: expected [rows, {words}] (ceil({k_name} / 32) words), got shape "
                         f"{tuple(bits.shape)}")


def _check_matmul(a_bits, b_bits, k):
    if not isinstance(k, int) or k <= 0:
        raise ValueError(f"k: expected a positive number of bits, got {k!r}")
    words = layout.words(k)
    if a_bits.dim() == 2 and a_bits.dtype == torch.int32 and k > a_bits.shape[1] * 32:
        raise ValueError(f"k: {k} is larger than a_bits' packed width of {a_bits.shape[1] * 32} bits")
    _check_bits("a_bits", a_bits, words, "k")
    _check_bits("b_bits", b_bits, words, "k")
    check_devices(a_bits, b_bits=b_bits)


def _check_linear(x, w_bits, w_scale, bias):
    _check_x(x)
    k = x.shape[-1]
    if k == 0:
        raise ValueError("x: expected K >= 1 features")
    _check_bits("w_bits", w_bits, layout.words(k), "K")
    check_channel_vectors(w_bits.shape[0], w_scale=w_scale, bias=bias)
    check_devices(x, w_bits=w_bits, w_scale=w_scale, bias=bias)


@torch.library.register_fake("prunq::pack_bits")
def _(x):
    _check_x(x)
    return x.new_empty((*x.shape[:-1], layout.words(x.shape[-1])), dtype=torch.int32)


@torch.library.register_fake("prunq::binary_matmul")
def _(a_bits, b_bits, k):
    _check_matmul(a_bits, b_bits, k)
    return a_bits.new_empty((a_bits.shape[0], b_bits.shape[0]))


@torch.library.register_fake("prunq::binary_linear")
def _(x, w_bits, w_scale, bias, binarize_x):
    _check_linear(x, w_bits, w_scale, bias)
    return x.new_empty((*x.shape[:-1], w_bits.shape[0]))


# --- reference: the specification ------------------------------------------------------------


def pack_bits_ref(x):
    return layout.pack(x)


def binary_matmul_ref(a_bits, b_bits, k):
    return (layout.signs(a_bits, k) @ layout.signs(b_bits, k).T).to(torch.int32)


def binary_linear_ref(x, w_bits, w_scale, bias=None, binarize_x=True):
    k = x.shape[-1]
    w = layout.signs(w_bits, k).double() * w_scale.double()[:, None]
    xd = x.double()
    if binarize_x:
        xd = torch.where(xd >= 0, 1.0, -1.0) * xd.abs().mean(-1, keepdim=True)
    y = xd @ w.T
    if bias is not None:
        y = y + bias.double()
    return y.to(x.dtype)


# --- device kernels ----------------------------------------------------------------------------


def _native_pack(x):
    x2 = _native.native_tensor(rows(x), "x", x.dtype, x.device)
    m, k = x2.shape
    bits = torch.empty((m, layout.words(k)), dtype=torch.int32, device=x.device)
    _native.C.pack_bits(x2.data_ptr(), _native.dtype_code(x.dtype), m, k, bits.shape[1], bits.data_ptr(), 0,
                        torch.get_num_threads())
    return bits.view(*x.shape[:-1], bits.shape[1])


def _native_matmul(a_bits, b_bits, k):
    a = a_bits.contiguous()
    b = b_bits.contiguous()
    dots = torch.empty((a.shape[0], b.shape[0]), dtype=torch.int32)
    _native.C.binary_gemm(a.data_ptr(), b.data_ptr(), a.shape[0], b.shape[0], k, a.shape[1], dots.data_ptr(), 0, 0,
                          0, 0, 0, torch.get_num_threads())
    return dots


def columns(w_bits):
    """w_bits [N, W] transposed in groups of 16 channels, [ceil(N / 16), W, 16] (zero-padded):
    the layout the CPU kernels' many-row GEMMs read; a module derives it once, the op when it
    needs it."""
    w = w_bits.contiguous()
    out = torch.empty(((w.shape[0] + 15) // 16, w.shape[1], 16), dtype=torch.int32)
    _native.C.binary_columns(w.data_ptr(), w.shape[0], w.shape[1], out.data_ptr())
    return out


def _native_linear(x, w_bits, w_scale, bias, binarize_x, w_columns=None):
    x2 = _native.native_tensor(rows(x), "x", x.dtype, x.device)
    w = w_bits.contiguous()
    scale = w_scale.contiguous()
    b = None if bias is None else bias.contiguous()
    out = _native.empty_output((x2.shape[0], w.shape[0]), x.dtype, x.device)
    _native.C.binary_linear(x2.data_ptr(), _native.dtype_code(x.dtype), w.data_ptr(), _native.address(w_columns),
                            scale.data_ptr(), _native.address(b), out.data_ptr(), x2.shape[0], w.shape[0], x2.shape[1],
                            w.shape[1], binarize_x, torch.get_num_threads())
    return out.view(*x.shape[:-1], w.shape[0])


def _triton_matmul(a_bits, b_bits, k):
    from ..triton_kernels.binary import binary_matmul as kernel

    return kernel(a_bits.contiguous(), b_bits.contiguous(), k)


def _triton_linear(x, w_bits, w_scale, bias, binarize_x):
    from ..triton_kernels.binary import binary_linear as kernel

    x2 = rows(x).contiguous()
    x_bits = alpha = None
    if binarize_x:
        x_bits, alpha = layout.pack(x2), x2.float().abs().mean(-1)
    y = kernel(x2, x_bits, alpha, w_bits.contiguous(), w_scale.contiguous(), None if bias is None else bias.contiguous())
    return y.view(*x.shape[:-1], w_bits.shape[0])


_PACK_PATHS = {"native": _native_pack, "triton": pack_bits_ref, "reference": pack_bits_ref}
_MATMUL_PATHS = {"native": _native_matmul, "triton": _triton_matmul, "reference": binary_matmul_ref}
_LINEAR_PATHS = {"native": _native_linear, "triton": _triton_linear, "reference": binary_linear_ref}


def _pack(x):
    _check_x(x)
    return _PACK_PATHS[native_or_triton(x.device.type, "binary")](x)


def _matmul(a_bits, b_bits, k):
    _check_matmul(a_bits, b_bits, k)
    return _MATMUL_PATHS[native_or_triton(a_bits.device.type, "binary")](a_bits, b_bits, k)


def _linear(x, w_bits, w_scale, bias, binarize_x):
    _check_linear(x, w_bits, w_scale, bias)
    return _LINEAR_PATHS[native_or_triton(x.device.type, "binary")](x, w_bits, w_scale, bias, binarize_x)


for _key in ("CPU", "CUDA", "CompositeExplicitAutograd"):
    lib.impl("pack_bits", _pack, _key)
    lib.impl("binary_matmul", _matmul, _key)
    lib.impl("binary_linear", _linear, _key)


def direct_linear(x, w_bits, w_scale, bias, binarize_x, in_features, w_columns=None):
    """For a module whose buffers are what it built or loaded (w_columns: columns(w_bits), kept
    by the module): the CPU kernel for an eager call (see _eager), or None where x must take the
    op (which checks everything)."""
    if x.dtype not in FLOAT_DTYPES or not x.shape or x.shape[-1] != in_features or not w_bits.is_cpu:
        return None
    return _native_linear(x, w_bits, w_scale, bias, binarize_x, w_columns)


# --- public functions ---------------------------------------------------------------------------


def pack_bits(x: torch.Tensor) -> torch.Tensor:
    """The signs of x [..., K] as bits [..., ceil(K / 32)] int32 (1 where x >= 0)."""
    if _eager.direct(x):
        return _pack(x)
    return torch.ops.prunq.pack_bits(x)


def binary_matmul(a_bits: torch.Tensor, b_bits: torch.Tensor, k: int) -> torch.Tensor:
    """int32 [M, N]: the +-1 dot products of the first k bits of each row of a_bits and b_bits."""
    if _eager.direct(a_bits, b_bits):
        return _matmul(a_bits, b_bits, k)
    return torch.ops.prunq.binary_matmul(a_bits, b_bits, k)


def binary_linear(x: torch.Tensor, w_bits: torch.Tensor, w_scale: torch.Tensor, bias: torch.Tensor | None = None,
                  binarize_x: bool = True) -> torch.Tensor:
    """XNOR-Net (binarize_x) or BinaryConnect linear against sign(W) * w_scale (see the module)."""
    if _eager.direct(x, w_bits, w_scale, bias):
        return _linear(x, w_bits, w_scale, bias, binarize_x)
    return torch.ops.prunq.binary_linear(x, w_bits, w_scale, bias, binarize_x)
