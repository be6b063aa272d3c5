"""Per-channel symmetric int8 weights, and the CPU kernel's packed copy of them.

The state_dict form is plain: w_q [N, K] int8 and w_scale [N] float32 with
w ~= w_q * w_scale[:, None]. The CPU's packed-panel kernels read a packed copy (the VNNI packing:
panels of 64 output channels, groups of 4 k; see csrc/cpu/int8_gemm.h): the AVX-512 VNNI GEMM
with the per-channel sums of w_q, the AVX2 GEMM reading it in halves widened to int16, and the
weight-only kernels (AVX2 for any float x, AVX512_BF16 for bf16 x) without the sums. Modules make
it once. The portable path reads w_q as it is.
"""

from __future__ import annotations

import torch

from .. import _native
from . import int4


WEIGHT_BITS = (8, 4)  # what Int8Linear's w_q may be stored as


def checked_weight_bits(bits: int) -> int:
    if bits not in WEIGHT_BITS:
        raise ValueError(f"weight_bits: expected 8 or 4, got {bits!r}")
    return bits


def quantize_weight(w: torch.Tensor, bits: int = 8, input_gram: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(w_q, w_scale): scale = absmax / 127 per output channel (row); rows of zeros get scale 0.
    Per-channel weight quantization is per-row quantization of w [N, K]: the same math as
    quantize_per_token, run once in plain PyTorch. bits=4: w_q on the 16 levels -8..7 with a
    signed scale (prunq.formats.int4), still int8 for the kernels; with input_gram [K, K] (E[x x^T]
    over the inputs w will meet) the levels are chosen by GPTQ (int4.quantize_gptq) on the same grid."""
    from ..ops.int8_gemm import quantize_per_token_ref

    if w.dim() != 2:
        raise ValueError(f"w: expected [N, K], got shape {tuple(w.shape)}")
    if checked_weight_bits(bits) == 4:
        if input_gram is not None:
            return int4.quantize_gptq(w.detach().float(), input_gram)
        return int4.quantize_signed(w.detach().float())
    if input_gram is not None:
        raise ValueError("input_gram: GPTQ rounding is for 4-bit weights; 8-bit ones round to the nearest level")
    return quantize_per_token_ref(w.detach())


def vnni_pack(w_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed, colsum) for the CPU's packed-panel GEMM, or two empty tensors where no such
    kernel runs (the portable path, no prunq._C, or w_q not on the CPU)."""
    if w_q.device.type != "cpu" or _native.C is None or not _native.C.packed_gemm_available():
        return torch.empty(0, dtype=torch.int8, device=w_q.device), torch.empty(0, dtype=torch.int32, device=w_q.device)
    return _pack(w_q)


def weight_only_pack(w_q: torch.Tensor) -> torch.Tensor:
    """The VNNI packing of w_q for the CPU's packed weight-only kernels, or an empty tensor where
    none runs for any activation dtype (no prunq._C, or w_q not on the CPU)."""
    if w_q.device.type != "cpu" or _native.C is None or not any(
            _native.C.weight_only_packed_available(code) for code in _native.DTYPE_CODES.values()):
        return torch.empty(0, dtype=torch.int8, device=w_q.device)
    return _pack(w_q)[0]


def _pack(w_q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = _native.native_tensor(w_q, "w_q", torch.int8, w_q.device)
    n, k = w.shape
    n_padded, k_padded = _native.C.vnni_padded_shape(n, k)
    packed = torch.empty(n_padded * k_padded, dtype=torch.int8)
    colsum = torch.empty(n_padded, dtype=torch.int32)
    _native.C.pack_int8_vnni(w.data_ptr(), n, k, packed.data_ptr(), colsum.data_ptr())
    return packed, colsum
