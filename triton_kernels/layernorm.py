"""Fused residual add + LayerNorm / RMSNorm in Triton: one program per row, the whole row in
registers, fp32 statistics (two-pass variance). Same math as prunq.ops.layernorm."""

from __future__ import annotations

import contextlib
import threading

import torch
import triton
import triton.language as tl

# One program holds a row in registers; longer rows go to the CUDA kernel. At 16384 (16 warps) a
# thread spills at most 272 bytes (ptxas, sm_80 and sm_90a); at 65536 it spilled 7 to 11 KB.
MAX_HIDDEN = 16384

_tracing = threading.local()


@contextlib.contextmanager
def wrapping_launches():
    """Inside: kernels launch through torch.library.wrap_triton (torch >= 2.6), as the bodies of
    prunq's triton_ops must so that torch.compile records them in its graph."""
    previous, _tracing.on = getattr(_tracing, "on", False), True
    try:
        yield
    finally:
        _tracing.on = previous


def wrap_triton(kernel):
    """The kernel to launch: wrapped inside wrapping_launches, else the kernel itself. Eager calls
    must not take the wrapper: it sends each launch through torch's higher-order-op dispatch,
    which cost 240 us a launch against 19 us (H200, torch 2.11)."""
    return torch.library.wrap_triton(kernel) if getattr(_tracing, "on", False) else kernel


def on_device(x: torch.Tensor):
    """The launch context for kernels on x: Triton launches on the current CUDA device and its
    stream, so tensors on another device need it made current (the interpreter needs nothing)."""
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def num_warps_for(block: int, element_size: int) -> int:
    """Warps for a program that holds a row of `block` elements: one per 2 KB of the row, 1 to 16."""
    return min(max(block * element_size // 2048, 1), 16)


@triton.jit
def _to_storage(x, dtype: tl.constexpr):
    """fp32 -> dtype, rounding to nearest even. bf16 is rounded with integer arithmetic because
    Triton's interpreter does not round fp32 -> bf16 to nearest even (the GPU does); this way
    both give PyTorch's result."""
    if dtype == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        rounded = tl.where(x != x, 0x7FC0, rounded)
        return rounded.to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        return x.to(dtype)


@triton.jit
def _add_norm_kernel(
    X, R, W, B, OUT, SUM,
    hidden, eps,
    HAS_W: tl.constexpr, HAS_B: tl.constexpr, RMS: tl.constexpr, BLOCK: tl.constexpr,
):
    row = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)
    mask = cols < hidden
    offsets = row * hidden + cols
    x = tl.load(X + offsets, mask=mask, other=0.0).to(tl.float32)
    r = tl.load(R + offsets, mask=mask, other=0.0).to(tl.float32)
    # The stored (rounded) sum is what gets normalized, as in the unfused x + residual.
    s = _to_storage(x + r, SUM.dtype.element_ty)
    tl.store(SUM + offsets, s, mask=mask)
    s = s.to(tl.float32)
    if RMS:
        mean = 0.0
        var = tl.sum(s * s, axis=0) / hidden
    else:
        mean = tl.sum(s, axis=0) / hidden
        d = tl.where(mask, s - mean, 0.0)
        var = tl.sum(d * d, axis=0) / hidden
    y = (s - mean) * tl.rsqrt(var + eps)
    if HAS_W:
        y = y * tl.load(W + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_B:
        y = y + tl.load(B + cols, mask=mask, other=0.0).to(tl.float32)
    tl.store(OUT + offsets, _to_storage(y, OUT.dtype.element_ty), mask=mask)


def add_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    eps: float,
    rms: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """x and residual: contiguous [rows, hidden]; weight and bias: contiguous [hidden] or None."""
    rows, hidden = x.shape
    if hidden > MAX_HIDDEN:
        raise ValueError(f"x: the Triton kernel handles hidden sizes up to {MAX_HIDDEN}, got {hidden}")
    out = torch.empty_like(x)
    total = torch.empty_like(x)
    if rows == 0:
        return out, total
    block = triton.next_power_of_2(hidden)
    num_warps = num_warps_for(block, x.element_size())
    with on_device(x):
        wrap_triton(_add_norm_kernel)[(rows,)](
            x, residual,
            weight if weight is not None else x,  # never read: HAS_W is False
            bias if bias is not None else x,
            out, total, hidden, eps,
            HAS_W=weight is not None, HAS_B=bias is not None, RMS=rms, BLOCK=block,
            num_warps=num_warps,
        )
    return out, total
