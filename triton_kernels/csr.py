"""CSR sparse GEMM in Triton: one program per output channel and block of rows of x, walking the
channel's non-zeros in chunks and gathering the x each multiplies. Channels are launched longest
first (the row swizzle of Gale et al., "Sparse GPU Kernels for Deep Learning", 2020), so that the
programs with the most work start first and the short ones fill in behind them. Same math and
layout as prunq.ops.csr (prunq.formats.csr)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from .layernorm import _to_storage, on_device, wrap_triton

# (BLOCK_M, BLOCK_J: non-zeros per step, num_warps)
TILES = ((16, 64, 4),)


@triton.jit
def _csr_kernel(X, CROW, COL, VALUES, ORDER, W_SCALE, BIAS, OUT, M, N, K,
                HAS_SCALE: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_J: tl.constexpr):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    n = tl.load(ORDER + tl.program_id(1))
    start = tl.load(CROW + n)
    end = tl.load(CROW + n + 1)
    acc = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for j0 in range(start, end, BLOCK_J):
        js = j0 + tl.arange(0, BLOCK_J)
        live = js < end
        cols = tl.load(COL + js, mask=live, other=0)
        values = tl.load(VALUES + js, mask=live, other=0).to(tl.float32)
        x = tl.load(X + rows[:, None].to(tl.int64) * K + cols[None, :], mask=(rows[:, None] < M) & live[None, :],
                    other=0.0)
        acc += tl.sum(x.to(tl.float32) * values[None, :], axis=1)
    if HAS_SCALE:
        acc *= tl.load(W_SCALE + n)
    if HAS_BIAS:
        acc += tl.load(BIAS + n)
    tl.store(OUT + rows.to(tl.int64) * N + n, _to_storage(acc, OUT.dtype.element_ty), mask=rows < M)


def csr_linear(x: torch.Tensor, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, out_features: int,
               bias: torch.Tensor | None, w_scale: torch.Tensor | None) -> torch.Tensor:
    """x [M, K] float, CSR arrays of W [out_features, K] (checked), bias and w_scale float32, all
    contiguous; y [M, out_features] in x's dtype."""
    m, k = x.shape
    out = torch.empty((m, out_features), dtype=x.dtype, device=x.device)
    if m == 0 or out_features == 0:
        return out
    order = torch.argsort(crow[1:] - crow[:-1], descending=True, stable=True).to(torch.int32)
    block_m, block_j, warps = TILES[0]
    with on_device(x):
        wrap_triton(_csr_kernel)[(triton.cdiv(m, block_m), out_features)](
            x, crow, col, values, order, w_scale if w_scale is not None else x, bias if bias is not None else x, out,
            m, out_features, k, HAS_SCALE=w_scale is not None, HAS_BIAS=bias is not None,
            BLOCK_M=block_m, BLOCK_J=block_j, num_warps=warps)
    return out
