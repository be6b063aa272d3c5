"""`prunq demo`: the fused residual add + LayerNorm on one activation-sized input, checked
against its reference and timed against eager PyTorch."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from .ops import add_layer_norm
from .ops.layernorm import add_layer_norm_ref


def _median_ms(fn, repeats: int = 30) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1e3


def run(tokens: int = 4096, hidden: int = 768, dtype: torch.dtype = torch.float32) -> None:
    x = torch.randn(tokens, hidden, dtype=dtype)
    residual = torch.randn(tokens, hidden, dtype=dtype)
    weight, bias = torch.randn(hidden, dtype=dtype), torch.randn(hidden, dtype=dtype)
    out, total = add_layer_norm(x, residual, weight, bias)
    ref_out, ref_total = add_layer_norm_ref(x, residual, weight, bias)
    error = (out.float() - ref_out.float()).abs().max().item()
    print(f"add_layer_norm on [{tokens}, {hidden}] {dtype}: max |out - reference| = {error:.2e}, "
          f"sum exact: {torch.equal(total, ref_total)}")
    fused = _median_ms(lambda: add_layer_norm(x, residual, weight, bias))
    eager = _median_ms(lambda: F.layer_norm(x + residual, (hidden,), weight, bias))
    print(f"prunq {fused:.3f} ms, eager add + layer_norm {eager:.3f} ms: {eager / fused:.2f}x")
