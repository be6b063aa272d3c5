"""INT8 GEMM family in Triton: per-token quantization, W8A8 GEMM with the scales (and an optional
GELU) in the epilogue, and the weight-only GEMM. Same math as prunq.ops.int8_gemm.

On a GPU the GEMMs are autotuned over tile shapes that suit Hopper (wgmma wants BLOCK_M >= 64);
under the interpreter one small tile is used, since autotuning there would only cost time.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .layernorm import _to_storage, wrap_triton

MAX_QUANTIZE_COLS = 65536
_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# fp32 (x + 1.5 * 2^23) - 1.5 * 2^23 rounds x to an integer, ties to even, for |x| < 2^22; the
# same on the GPU and in the interpreter (which has no rint).
_ROUND_MAGIC = 12582912.0


def _gemm_configs(block_ks):
    if _INTERPRETED:
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32, "GROUP_M": 4}, num_warps=1)]
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "GROUP_M": 8}, num_stages=s, num_warps=w)
            for m, n, k, s, w in ((128, 128, block_ks[1], 4, 8), (128, 256, block_ks[0], 3, 8),
                                  (64, 128, block_ks[1], 4, 4), (64, 64, block_ks[1], 4, 4),
                                  (16, 64, block_ks[1], 4, 4), (16, 128, block_ks[0], 4, 4))]


@triton.jit
def _quantize_kernel(X, MUL, Q, SCALE, cols, HAS_MUL: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0).to(tl.int64)
    offsets = tl.arange(0, BLOCK)
    mask = offsets < cols
    x = tl.load(X + row * cols + offsets, mask=mask, other=0.0).to(tl.float32)
    if HAS_MUL:
        x = x * tl.load(MUL + offsets, mask=mask, other=0.0)
    absmax = tl.max(tl.abs(x), axis=0)
    # A NaN in the row makes its scale NaN (so the row's outputs are NaN) whether or not the max
    # reduction propagates NaN; the row's q is then 0.
    has_nan = tl.sum((x != x).to(tl.int32), axis=0) > 0
    # True divisions, as in the reference.
    inv = tl.where((absmax > 0) & ~has_nan, tl.math.div_rn(127.0, tl.where(absmax > 0, absmax, 1.0)), 0.0)
    v = tl.where(x == x, x * inv, 0.0)
    v = (v + _ROUND_MAGIC) - _ROUND_MAGIC
    q = tl.minimum(tl.maximum(v, -127.0), 127.0)
    tl.store(Q + row * cols + offsets, q.to(tl.int8), mask=mask)
    tl.store(SCALE + row, tl.where(has_nan, float("nan"), tl.math.div_rn(absmax, 127.0)))


@triton.jit
def _tile(M, N, K, X, W, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    """This program's rows and columns, and pointers to the first K block of x [M, K] and of w
    [N, K] read as [BLOCK_K, BLOCK_N]. Grouped ordering: GROUP_M row blocks share each column
    block while it is in L2."""
    pid = tl.program_id(0)
    blocks_m = tl.cdiv(M, BLOCK_M)
    blocks_n = tl.cdiv(N, BLOCK_N)
    first_m = (pid // (GROUP_M * blocks_n)) * GROUP_M
    group_size = min(blocks_m - first_m, GROUP_M)
    pid_m = first_m + (pid % group_size)
    pid_n = (pid % (GROUP_M * blocks_n)) // group_size
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    ks = tl.arange(0, BLOCK_K)
    x_ptrs = X + rows[:, None].to(tl.int64) * K + ks[None, :]
    w_ptrs = W + cols[None, :].to(tl.int64) * K + ks[:, None]
    return rows, cols, ks, x_ptrs, w_ptrs


@triton.jit
def _epilogue(acc, rows, cols, M, N, W_SCALE, BIAS, OUT, HAS_BIAS: tl.constexpr, GELU: tl.constexpr):
    y = acc * tl.load(W_SCALE + cols, mask=cols < N, other=0.0)[None, :]
    if HAS_BIAS:
        y += tl.load(BIAS + cols, mask=cols < N, other=0.0)[None, :]
    if GELU:
        y = 0.5 * y * (1.0 + tl.erf(y * 0.7071067811865476))
    mask = (rows[:, None] < M) & (cols[None, :] < N)
    tl.store(OUT + rows[:, None].to(tl.int64) * N + cols[None, :], _to_storage(y, OUT.dtype.element_ty), mask=mask)


@triton.autotune(configs=_gemm_configs((128, 128)), key=["M", "N", "K"])
@triton.jit
def _int8_gemm_kernel(X, X_SCALE, W, W_SCALE, BIAS, OUT, M, N, K,
                      HAS_BIAS: tl.constexpr, GELU: tl.constexpr,
                      BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    rows, cols, ks, x_ptrs, w_ptrs = _tile(M, N, K, X, W, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32)
    for k0 in range(0, K, BLOCK_K):
        x = tl.load(x_ptrs, mask=(rows[:, None] < M) & (ks[None, :] < K - k0), other=0)
        w = tl.load(w_ptrs, mask=(cols[None, :] < N) & (ks[:, None] < K - k0), other=0)
        acc = tl.dot(x, w, acc, out_dtype=tl.int32)
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    x_scale = tl.load(X_SCALE + rows, mask=rows < M, other=0.0)
    _epilogue(acc.to(tl.float32) * x_scale[:, None], rows, cols, M, N, W_SCALE, BIAS, OUT, HAS_BIAS, GELU)


@triton.autotune(configs=_gemm_configs((64, 64)), key=["M", "N", "K"])
@triton.jit
def _weight_only_kernel(X, W, W_SCALE, BIAS, OUT, M, N, K, HAS_BIAS: tl.constexpr, UPCAST: tl.constexpr,
                        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr):
    rows, cols, ks, x_ptrs, w_ptrs = _tile(M, N, K, X, W, BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        x = tl.load(x_ptrs, mask=(rows[:, None] < M) & (ks[None, :] < K - k0), other=0.0)
        w = tl.load(w_ptrs, mask=(cols[None, :] < N) & (ks[:, None] < K - k0), other=0)
        # int8 values are exact in bf16 and fp16, so the weights convert to x's type losslessly.
        # The interpreter converts int8 to bf16 wrongly (NaN), so there both sides go to fp32.
        if UPCAST:
            acc = tl.dot(x.to(tl.float32), w.to(tl.float32), acc, input_precision="ieee", out_dtype=tl.float32)
        else:
            acc = tl.dot(x, w.to(x.dtype), acc, input_precision="ieee", out_dtype=tl.float32)
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    _epilogue(acc, rows, cols, M, N, W_SCALE, BIAS, OUT, HAS_BIAS, False)


def _grid(m, n):
    return lambda meta: (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)


def quantize_per_token(x: torch.Tensor, channel_scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """x: contiguous [M, K] float (times channel_scale [K] float32, if given) -> (q int8 [M, K],
    scale float32 [M])."""
    m, k = x.shape
    if k > MAX_QUANTIZE_COLS:
        raise ValueError(f"x: the Triton kernel quantizes rows of up to {MAX_QUANTIZE_COLS}, got {k}")
    q = torch.empty((m, k), dtype=torch.int8, device=x.device)
    scale = torch.empty(m, dtype=torch.float32, device=x.device)
    if m > 0:
        wrap_triton(_quantize_kernel)[(m,)](x, channel_scale if channel_scale is not None else scale, q, scale, k,
                               HAS_MUL=channel_scale is not None, BLOCK=triton.next_power_of_2(max(k, 1)))
    return q, scale


def int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype, gelu=False) -> torch.Tensor:
    """x_q [M, K], w_q [N, K] int8, scales and bias float32, all contiguous."""
    m, k = x_q.shape
    n = w_q.shape[0]
    out = torch.empty((m, n), dtype=out_dtype, device=x_q.device)
    if m > 0 and n > 0:
        wrap_triton(_int8_gemm_kernel)[_grid(m, n)](x_q, x_scale, w_q, w_scale, bias if bias is not None else w_scale, out,
                                       m, n, k, HAS_BIAS=bias is not None, GELU=gelu)
    return out


def int8_weight_only_linear(x, w_q, w_scale, bias) -> torch.Tensor:
    """x [M, K] float, w_q [N, K] int8, w_scale and bias float32, all contiguous; y in x's dtype."""
    m, k = x.shape
    n = w_q.shape[0]
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m > 0 and n > 0:
        wrap_triton(_weight_only_kernel)[_grid(m, n)](x, w_q, w_scale, bias if bias is not None else w_scale, out, m, n, k,
                                         HAS_BIAS=bias is not None, UPCAST=_INTERPRETED)
    return out
