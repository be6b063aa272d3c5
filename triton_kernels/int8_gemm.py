"""INT8 GEMM family in Triton: per-token quantization, W8A8 GEMM with the scales (and an optional
GELU) in the epilogue, and the weight-only GEMM. Same math as prunq.ops.int8_gemm.

On a GPU the GEMMs are autotuned over tile shapes that compile without spilling more than a
stated bound for sm_80 and sm_90a (see INT8_TILES), keyed on M rounded to a power of two; under
the interpreter one small tile is used, since autotuning there would only cost time.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from .layernorm import _to_storage, num_warps_for, on_device, wrap_triton

# Row chunk of the quantize kernel: longer rows are walked in chunks of this many elements.
MAX_QUANTIZE_BLOCK = 4096
_INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
# fp32 (x + 1.5 * 2^23) - 1.5 * 2^23 rounds x to an integer, ties to even, for |x| < 2^22; the
# same on the GPU and in the interpreter (which has no rint). A jitted function may only read a
# global that is a tl.constexpr (the interpreter reads any).
_ROUND_MAGIC = tl.constexpr(12582912.0)
# GEMM tiles (BLOCK_M, BLOCK_N, BLOCK_K, num_stages, num_warps). Each spills at most 512 bytes per
# thread on sm_80 and none to a few hundred on sm_90a (ptxas, `python -m prunq.triton_kernels.aot
# --report`); the larger tiles tried (128 x 128 x 128, 128 x 256, 64 x 128) spilled 0.5 to 8 KB.
INT8_TILES = ((128, 128, 64, 3, 8), (32, 128, 128, 4, 4), (16, 128, 128, 4, 4), (64, 64, 128, 4, 4),
              (16, 64, 128, 4, 4))
# fp32 activations multiply in full fp32 (input_precision "ieee"), which needs smaller tiles.
WEIGHT_ONLY_TILES = {"fp32": ((64, 64, 16, 3, 4), (32, 64, 32, 3, 4), (16, 64, 32, 3, 4)),
                     "16-bit": ((128, 128, 64, 4, 8), (64, 64, 64, 4, 4), (16, 128, 64, 4, 4), (16, 64, 64, 4, 4))}


def gpu_configs(tiles) -> list:
    """The autotune configs of `tiles` on a GPU (the AOT compile check compiles each of them)."""
    return [triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k, "GROUP_M": 8}, num_stages=s, num_warps=w)
            for m, n, k, s, w in tiles]


def _gemm_configs(tiles) -> list:
    if _INTERPRETED:
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 32, "BLOCK_K": 32, "GROUP_M": 4}, num_warps=1)]
    return gpu_configs(tiles)


def weight_only_tiles(dtype: torch.dtype) -> tuple:
    return WEIGHT_ONLY_TILES["fp32" if dtype == torch.float32 else "16-bit"]


def _weight_only_configs_for_x(configs, named_args, **kwargs):
    """Autotune pruning: only the tiles of x's dtype."""
    if _INTERPRETED:
        return configs
    allowed = {(m, n, k) for m, n, k, _, _ in weight_only_tiles(named_args["X"].dtype)}
    return [c for c in configs if (c.kwargs["BLOCK_M"], c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"]) in allowed]


def m_bucket(m: int) -> int:
    """M rounded up to a power of two: the autotune key, so that each new prefill length does not
    tune again (about a second each). A symbolic M (torch.compile with dynamic shapes) is passed
    as it is rather than made concrete by the rounding."""
    return triton.next_power_of_2(max(m, 16)) if isinstance(m, int) else m


@triton.jit
def _mul_rn(a, b, PTX: tl.constexpr):
    """a * b rounded to fp32. Compiled, Triton fuses a product and a following add into one FMA,
    which skips that rounding (q would then differ from the reference's by one step), so on the
    GPU the product is PTX's mul.rn, which the compiler keeps as it is; the interpreter multiplies
    in numpy, unfused."""
    if PTX:
        return tl.inline_asm_elementwise("mul.rn.f32 $0, $1, $2;", "=f,f,f", [a, b], dtype=tl.float32,
                                         is_pure=True, pack=1)
    else:
        return a * b


@triton.jit
def _load_scaled(X, MUL, row, cols, offsets, HAS_MUL: tl.constexpr):
    mask = offsets < cols
    x = tl.load(X + row * cols + offsets, mask=mask, other=0.0).to(tl.float32)
    if HAS_MUL:
        x = x * tl.load(MUL + offsets, mask=mask, other=0.0)
    return x


@triton.jit
def _quantize_kernel(X, MUL, Q, SCALE, cols, HAS_MUL: tl.constexpr, BLOCK: tl.constexpr, PTX: tl.constexpr):
    """One program per row, in chunks of BLOCK: the row's absmax, then its quantization (a second
    read of the row, from L2), so that any row length fits in registers."""
    row = tl.program_id(0).to(tl.int64)
    peak = tl.zeros((BLOCK,), dtype=tl.float32)
    nans = tl.zeros((BLOCK,), dtype=tl.int32)
    for start in range(0, cols, BLOCK):
        x = _load_scaled(X, MUL, row, cols, start + tl.arange(0, BLOCK), HAS_MUL)
        peak = tl.maximum(peak, tl.abs(x))
        nans += (x != x).to(tl.int32)
    absmax = tl.max(peak, axis=0)
    # A row holding inf or NaN quantizes to zeros, and its scale (inf or NaN) makes its outputs
    # NaN. NaN is counted rather than left to the max, which may drop it.
    has_nan = tl.sum(nans, axis=0) > 0
    finite = (absmax < float("inf")) & ~has_nan
    # True divisions, as in the reference.
    inv = tl.where(finite & (absmax > 0), tl.math.div_rn(127.0, tl.where(absmax > 0, absmax, 1.0)), 0.0)
    for start in range(0, cols, BLOCK):
        offsets = start + tl.arange(0, BLOCK)
        x = _load_scaled(X, MUL, row, cols, offsets, HAS_MUL)
        v = tl.where(finite, _mul_rn(x, inv, PTX), 0.0)
        v = (v + _ROUND_MAGIC) - _ROUND_MAGIC
        q = tl.minimum(tl.maximum(v, -127.0), 127.0)
        tl.store(Q + row * cols + offsets, q.to(tl.int8), mask=offsets < cols)
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


@triton.autotune(configs=_gemm_configs(INT8_TILES), key=["M_BUCKET", "N", "K"])
@triton.jit
def _int8_gemm_kernel(X, X_SCALE, W, W_SCALE, BIAS, OUT, M, N, K, M_BUCKET,
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


@triton.autotune(configs=_gemm_configs(WEIGHT_ONLY_TILES["fp32"] + WEIGHT_ONLY_TILES["16-bit"]),
                 key=["M_BUCKET", "N", "K"], prune_configs_by={"early_config_prune": _weight_only_configs_for_x})
@triton.jit
def _weight_only_kernel(X, W, W_SCALE, BIAS, OUT, M, N, K, M_BUCKET, HAS_BIAS: tl.constexpr, UPCAST: tl.constexpr,
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
    q = torch.empty((m, k), dtype=torch.int8, device=x.device)
    scale = torch.empty(m, dtype=torch.float32, device=x.device)
    if m > 0:
        block = min(triton.next_power_of_2(max(k, 1)), MAX_QUANTIZE_BLOCK)
        with on_device(x):
            wrap_triton(_quantize_kernel)[(m,)](x, channel_scale if channel_scale is not None else scale, q, scale, k,
                                                HAS_MUL=channel_scale is not None, BLOCK=block, PTX=not _INTERPRETED,
                                                num_warps=num_warps_for(block, x.element_size()))
    return q, scale


def int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype, gelu=False) -> torch.Tensor:
    """x_q [M, K], w_q [N, K] int8, scales and bias float32, all contiguous."""
    m, k = x_q.shape
    n = w_q.shape[0]
    out = torch.empty((m, n), dtype=out_dtype, device=x_q.device)
    if m > 0 and n > 0:
        with on_device(x_q):
            wrap_triton(_int8_gemm_kernel)[_grid(m, n)](x_q, x_scale, w_q, w_scale,
                                                        bias if bias is not None else w_scale, out, m, n, k,
                                                        m_bucket(m), HAS_BIAS=bias is not None, GELU=gelu)
    return out


def int8_weight_only_linear(x, w_q, w_scale, bias) -> torch.Tensor:
    """x [M, K] float, w_q [N, K] int8, w_scale and bias float32, all contiguous; y in x's dtype."""
    m, k = x.shape
    n = w_q.shape[0]
    out = torch.empty((m, n), dtype=x.dtype, device=x.device)
    if m > 0 and n > 0:
        with on_device(x):
            wrap_triton(_weight_only_kernel)[_grid(m, n)](x, w_q, w_scale, bias if bias is not None else w_scale, out,
                                                          m, n, k, m_bucket(m), HAS_BIAS=bias is not None,
                                                          UPCAST=_INTERPRETED)
    return out
