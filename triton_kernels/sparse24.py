"""2:4 semi-structured GEMM in Triton, for few rows of x (the decode case, where the weight's
bytes set the time): each program takes a block of output channels and walks K in blocks of
kept values, decoding each value's position from its 4-bit group code and gathering the x it
multiplies. Same math and layout as prunq.ops.sparse24 (prunq.formats.sparse24)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .layernorm import _to_storage, on_device, wrap_triton

# (BLOCK_M, BLOCK_N, BLOCK_J: kept values per step, num_warps): few rows of x, many channels. A
# step gathers BLOCK_M x BLOCK_N x BLOCK_J elements of x; at 16 x 32 x 64 that spilled 4 to 14 KB
# per thread (ptxas), at 8 x 32 x 16 nothing (128 registers, sm_80 and sm_90a).
TILES = ((8, 32, 16, 4),)


@triton.jit
def _sparse24_kernel(X, VALUES, META, W_SCALE, BIAS, OUT, M, N, K, KP,
                     HAS_SCALE: tl.constexpr, HAS_BIAS: tl.constexpr,
                     BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_J: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    half = KP // 2
    for j0 in range(0, half, BLOCK_J):
        js = j0 + tl.arange(0, BLOCK_J)
        live = (cols[:, None] < N) & (js[None, :] < half)
        values = tl.load(VALUES + cols[:, None].to(tl.int64) * half + js[None, :], mask=live, other=0).to(tl.float32)
        codes = tl.load(META + cols[:, None].to(tl.int64) * (KP // 8) + js[None, :] // 4, mask=live, other=0)
        ks = 4 * (js[None, :] // 2) + ((codes.to(tl.int32) >> (2 * (js[None, :] % 4))) & 3)  # [BLOCK_N, BLOCK_J]
        x = tl.load(X + rows[:, None, None].to(tl.int64) * K + ks[None, :, :],
                    mask=(rows[:, None, None] < M) & live[None, :, :] & (ks[None, :, :] < K), other=0.0)
        acc += tl.sum(x.to(tl.float32) * values[None, :, :], axis=2)
    if HAS_SCALE:
        acc *= tl.load(W_SCALE + cols, mask=cols < N, other=0.0)[None, :]
    if HAS_BIAS:
        acc += tl.load(BIAS + cols, mask=cols < N, other=0.0)[None, :]
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    tl.store(OUT + rows[:, None].to(tl.int64) * N + cols[None, :], _to_storage(acc, OUT.dtype.element_ty), mask=mask)


def sparse24_linear(x: torch.Tensor, values: torch.Tensor, meta: torch.Tensor, bias: torch.Tensor | None,
                    w_scale: torch.Tensor | None) -> torch.Tensor:
    """x [M, K] float, values [N, Kp / 2], meta [N, Kp / 8] uint8, bias and w_scale [N] float32,
    all contiguous; y [M, N] in x's dtype."""
    m, k = x.shape
    n = values.shape[0]
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m == 0 or n == 0:
        return out
    block_m, block_n, block_j, warps = TILES[0]
    grid = (triton.cdiv(m, block_m), triton.cdiv(n, block_n))
    with on_device(x):
        wrap_triton(_sparse24_kernel)[grid](
            x, values, meta, w_scale if w_scale is not None else x, bias if bias is not None else x, out,
            m, n, k, values.shape[1] * 2, HAS_SCALE=w_scale is not None, HAS_BIAS=bias is not None,
            BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_J=block_j, num_warps=warps)
    return out
