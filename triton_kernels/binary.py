"""Packed binary GEMMs in Triton, on 32-bit words (prunq.formats.bits; same math as
prunq.ops.binary):
  _xnor_kernel     k - 2 popcount(a xor b) for a tile of rows of a and b, written as int32 or
                   scaled (alpha[m] * w_scale[n] * dot + bias[n]) into a float output; popc.b32
                   on the GPU.
  _connect_kernel  BinaryConnect: real x against the signs of W's bits, expanded in registers.
The 1-bit tensor-core MMA (mma.sync.m16n8k256 .b1) compiles for sm_80 and sm_90 with .xor.popc
and .and.popc (nvcc 13.0), but for sm_90 the .xor.popc form comes out larger (22 registers against
16 for .and.popc, where sm_80 gives both the same 14): an emulation, while AND-popcount is native
(Hopper's b1 wgmma is AND-popcount too). A tensor-core kernel would therefore use AND, with
popc(a xor b) = popc(a) + popc(b) - 2 popc(a and b). Triton has no 1-bit dot, so these kernels
count with popc.b32 on the CUDA cores; a CUDA C++ b1-MMA kernel is not written."""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .layernorm import _to_storage, on_device, wrap_triton

_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"

# (BLOCK_M, BLOCK_N, BLOCK_W words per step, num_warps)
XNOR_TILES = ((32, 32, 8, 4),)
CONNECT_TILES = ((16, 32, 1, 4),)


@triton.jit
def _popcount(x, PTX: tl.constexpr):
    """Set bits of each int32 x: popc.b32 on the GPU, a bit-parallel count in the interpreter."""
    if PTX:
        return tl.inline_asm_elementwise("popc.b32 $0, $1;", "=r,r", [x], dtype=tl.int32, is_pure=True, pack=1)
    else:
        u = x.to(tl.uint32, bitcast=True)
        u = u - ((u >> 1) & 0x55555555)
        u = (u & 0x33333333) + ((u >> 2) & 0x33333333)
        u = (u + (u >> 4)) & 0x0F0F0F0F
        return ((u * 0x01010101) >> 24).to(tl.int32)


@triton.jit
def _xnor_kernel(A, B, ALPHA, W_SCALE, BIAS, OUT, M, N, K, WORDS, FLOAT_OUT: tl.constexpr, HAS_ALPHA: tl.constexpr,
                 HAS_BIAS: tl.constexpr, PTX: tl.constexpr,
                 BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    ones = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for w0 in range(0, WORDS, BLOCK_W):
        ws = w0 + tl.arange(0, BLOCK_W)
        # Bits past K in the last word are ignored: masked off here.
        valid = tl.where(ws == WORDS - 1, tl.where(K % 32 == 0, -1, (1 << (K % 32)) - 1), -1)
        valid = tl.where(ws < WORDS, valid, 0)
        a = tl.load(A + rows[:, None].to(tl.int64) * WORDS + ws[None, :], mask=(rows[:, None] < M) & (ws[None, :] < WORDS),
                    other=0)
        b = tl.load(B + cols[:, None].to(tl.int64) * WORDS + ws[None, :], mask=(cols[:, None] < N) & (ws[None, :] < WORDS),
                    other=0)
        differ = (a[:, None, :] ^ b[None, :, :]) & valid[None, None, :]
        ones += tl.sum(_popcount(differ, PTX), axis=2)
    dots = K - 2 * ones
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    offsets = rows[:, None].to(tl.int64) * N + cols[None, :]
    if FLOAT_OUT:
        y = dots.to(tl.float32) * tl.load(W_SCALE + cols, mask=cols < N, other=0.0)[None, :]
        if HAS_ALPHA:
            y *= tl.load(ALPHA + rows, mask=rows < M, other=0.0)[:, None]
        if HAS_BIAS:
            y += tl.load(BIAS + cols, mask=cols < N, other=0.0)[None, :]
        tl.store(OUT + offsets, _to_storage(y, OUT.dtype.element_ty), mask=mask)
    else:
        tl.store(OUT + offsets, dots, mask=mask)


@triton.jit
def _connect_kernel(X, B, W_SCALE, BIAS, OUT, M, N, K, WORDS, HAS_BIAS: tl.constexpr,
                    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_W: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    bit = tl.arange(0, 32)
    for w0 in range(0, WORDS, BLOCK_W):
        ws = w0 + tl.arange(0, BLOCK_W)
        words = tl.load(B + cols[:, None].to(tl.int64) * WORDS + ws[None, :],
                        mask=(cols[:, None] < N) & (ws[None, :] < WORDS), other=0)  # [BLOCK_N, BLOCK_W]
        signs = 2.0 * ((words[:, :, None] >> bit[None, None, :]) & 1).to(tl.float32) - 1.0
        ks = 32 * ws[:, None] + bit[None, :]  # [BLOCK_W, 32]
        x = tl.load(X + rows[:, None, None].to(tl.int64) * K + ks[None, :, :],
                    mask=(rows[:, None, None] < M) & (ks[None, :, :] < K), other=0.0).to(tl.float32)
        acc += tl.sum(tl.sum(x[:, None, :, :] * signs[None, :, :, :], axis=3), axis=2)
    acc *= tl.load(W_SCALE + cols, mask=cols < N, other=0.0)[None, :]
    if HAS_BIAS:
        acc += tl.load(BIAS + cols, mask=cols < N, other=0.0)[None, :]
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    tl.store(OUT + rows[:, None].to(tl.int64) * N + cols[None, :], _to_storage(acc, OUT.dtype.element_ty), mask=mask)


def _xnor(a, b, k, out, alpha=None, w_scale=None, bias=None):
    m, n = a.shape[0], b.shape[0]
    if m == 0 or n == 0:
        return out
    block_m, block_n, block_w, warps = XNOR_TILES[0]
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    with on_device(a):
        wrap_triton(_xnor_kernel)[grid](
            a, b, alpha if alpha is not None else out, w_scale if w_scale is not None else out,
            bias if bias is not None else out, out, m, n, k, a.shape[1], FLOAT_OUT=w_scale is not None,
            HAS_ALPHA=alpha is not None, HAS_BIAS=bias is not None, PTX=not _INTERPRETED,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_W=block_w, num_warps=warps)
    return out


def binary_matmul(a_bits: torch.Tensor, b_bits: torch.Tensor, k: int) -> torch.Tensor:
    """a_bits [M, W], b_bits [N, W] int32, contiguous; int32 [M, N]."""
    out = torch.empty((a_bits.shape[0], b_bits.shape[0]), dtype=torch.int32, device=a_bits.device)
    return _xnor(a_bits, b_bits, k, out)


def binary_linear(x: torch.Tensor, x_bits: torch.Tensor | None, alpha: torch.Tensor | None, w_bits: torch.Tensor,
                  w_scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x [M, K] float, contiguous; with x_bits [M, W] and alpha [M] float32 (XNOR-Net) the
    popcount GEMM, else BinaryConnect on x. y [M, N] in x's dtype."""
    m, k = x.shape
    n = w_bits.shape[0]
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if x_bits is not None:
        return _xnor(x_bits, w_bits, k, out, alpha, w_scale, bias)
    if m == 0 or n == 0:
        return out
    block_m, block_n, block_w, warps = CONNECT_TILES[0]
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    with on_device(x):
        wrap_triton(_connect_kernel)[grid](
            x, w_bits, w_scale, bias if bias is not None else w_scale, out, m, n, k, w_bits.shape[1],
            HAS_BIAS=bias is not None, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_W=block_w, num_warps=warps)
    return out
