"""INT8 GEMM (W8A8 dynamic and weight-only) against what a user would run instead.

    python -m bench.bench_int8_gemm [--quick] [--device cpu|cuda]   comparison table (Markdown)
    pytest bench/test_bench_int8_gemm.py                            pytest-benchmark cases (CPU)

W8A8: prunq.nn.Int8Linear (dynamic; per-token quantization of x included) against
torch.ao quantize_dynamic (fbgemm), torch._int_mm plus scaling in torch (quantization by
prunq's op), and fp32 / bf16 nn.Linear. Weight-only: Int8Linear(mode="weight_only") on bf16
activations against bf16 nn.Linear. Candidates are timed in turns, median of the runs. The
weights are not rotated: one set per shape, so they may sit in the last-level cache, as the
weights of a model small enough for that would.

On CUDA: Int8Linear (Triton kernels, quantization of x included) against fp16 nn.Linear
(cuBLAS) and bare torch._int_mm (no quantization, no scaling: the throughput ceiling the W8A8
goal is stated against); weight-only on fp16 activations against fp16 nn.Linear, through Triton
and through prunq._cuda's kernel; per-token quantization of x through Triton and prunq._cuda.
CUDA-event medians (triton.testing.do_bench).
"""

from __future__ import annotations

import argparse
import warnings

import torch
from torch import nn

from prunq._backend import use_backend
from prunq.nn import Int8Linear

from .harness import Table, interleaved_medians, machine_description, median_seconds
from .shapes import GEMM, GEMM_QUICK


def fbgemm_dynamic(linear: nn.Linear) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(nn.Sequential(linear), {nn.Linear}, dtype=torch.qint8)


def int_mm_with_scaling(module: Int8Linear):
    """torch._int_mm for the integer product, the scales and bias applied by torch."""
    w_t = module.w_q.t().contiguous()

    def run(x):
        x_q, x_scale = torch.ops.prunq.quantize_per_token(x)
        acc = torch._int_mm(x_q, w_t)
        return acc.float() * x_scale[:, None] * module.w_scale + module.bias
    return run


def candidates(m, k, n):
    torch.manual_seed(0)
    linear = nn.Linear(k, n)
    x = torch.randn(m, k)
    x_bf16 = x.bfloat16()
    linear_bf16 = nn.Linear(k, n).bfloat16()
    w8a8 = Int8Linear.from_linear(linear)
    weight_only = Int8Linear.from_linear(linear, mode="weight_only")
    fns = {
        "prunq w8a8": lambda: w8a8(x),
        "fbgemm dynamic": (lambda q: lambda: q(x))(fbgemm_dynamic(linear)),
        "fp32 Linear": lambda: linear(x),
        "bf16 Linear": lambda: linear_bf16(x_bf16),
        "prunq weight-only bf16": lambda: weight_only(x_bf16),
    }
    if m > 16:  # torch._int_mm on the CPU wants M > 16
        fns["_int_mm + scaling"] = (lambda f: lambda: f(x))(int_mm_with_scaling(w8a8))
    return fns


def compare(quick: bool) -> Table:
    table = Table(f"INT8 GEMM against fbgemm, torch._int_mm and float Linear: {machine_description('cpu')}",
                  ["M x K x N", "w8a8 ms", "w8a8 TOPS", "fbgemm ms", "vs fbgemm", "vs _int_mm",
                   "vs fp32", "vs bf16", "weight-only ms", "weight-only vs bf16"], baseline="fbgemm dynamic")
    for m, k, n in GEMM_QUICK if quick else GEMM:
        repeats = 3 if quick or m * k * n > 2**32 else 9
        with torch.no_grad():
            t = interleaved_medians(candidates(m, k, n), repeats)
        ops = 2 * m * k * n
        ours, wo = t["prunq w8a8"], t["prunq weight-only bf16"]
        int_mm = t.get("_int_mm + scaling")
        table.speedups[f"w8a8 {m}x{k}x{n}"] = t["fbgemm dynamic"] / ours
        table.rows.append([f"{m}x{k}x{n}", f"{ours * 1e3:.3f}", f"{ops / ours / 1e12:.2f}",
                     f"{t['fbgemm dynamic'] * 1e3:.3f}", f"{t['fbgemm dynamic'] / ours:.2f}x",
                     "-" if int_mm is None else f"{int_mm / ours:.2f}x",
                     f"{t['fp32 Linear'] / ours:.2f}x", f"{t['bf16 Linear'] / ours:.2f}x",
                     f"{wo * 1e3:.3f}", f"{t['bf16 Linear'] / wo:.2f}x"])
    return table


def compare_cuda(quick: bool) -> Table:
    table = Table(f"INT8 GEMM against fp16 cuBLAS and torch._int_mm: {machine_description('cuda')}",
                  ["M x K x N", "w8a8 ms", "w8a8 TOPS", "fp16 ms", "vs fp16", "_int_mm ms", "of _int_mm",
                   "weight-only ms", "weight-only vs fp16", "weight-only CUDA C++ ms", "CUDA C++ vs fp16",
                   "quantize Triton us", "quantize CUDA C++ us"], baseline="fp16 Linear")
    for m, k, n in GEMM_QUICK if quick else GEMM:
        torch.manual_seed(0)
        linear = nn.Linear(k, n, device="cuda", dtype=torch.float16)
        x = torch.randn(m, k, device="cuda", dtype=torch.float16)
        w8a8 = Int8Linear.from_linear(linear)
        weight_only = Int8Linear.from_linear(linear, mode="weight_only")
        with torch.no_grad():
            t = {name: median_seconds(lambda _, f=f: f(), "cuda") for name, f in {
                "w8a8": lambda: w8a8(x), "fp16": lambda: linear(x), "weight-only": lambda: weight_only(x),
                "quantize": lambda: torch.ops.prunq.quantize_per_token(x)}.items()}
            with use_backend("cuda"):
                t["weight-only cuda"] = median_seconds(lambda _: weight_only(x), "cuda")
                t["quantize cuda"] = median_seconds(lambda _: torch.ops.prunq.quantize_per_token(x), "cuda")
            if m > 16:  # torch._int_mm wants M > 16
                x_q, _ = torch.ops.prunq.quantize_per_token(x)
                w_t = w8a8.w_q.t()
                t["_int_mm"] = median_seconds(lambda _: torch._int_mm(x_q, w_t), "cuda")
        ops = 2 * m * k * n
        int_mm = t.get("_int_mm")
        table.speedups[f"w8a8 {m}x{k}x{n}"] = t["fp16"] / t["w8a8"]
        table.rows.append([f"{m}x{k}x{n}", f"{t['w8a8'] * 1e3:.3f}", f"{ops / t['w8a8'] / 1e12:.1f}",
                           f"{t['fp16'] * 1e3:.3f}", f"{t['fp16'] / t['w8a8']:.2f}x",
                           "-" if int_mm is None else f"{int_mm * 1e3:.3f}",
                           "-" if int_mm is None else f"{100 * int_mm / t['w8a8']:.0f}%",
                           f"{t['weight-only'] * 1e3:.3f}", f"{t['fp16'] / t['weight-only']:.2f}x",
                           f"{t['weight-only cuda'] * 1e3:.3f}", f"{t['fp16'] / t['weight-only cuda']:.2f}x",
                           f"{t['quantize'] * 1e6:.1f}", f"{t['quantize cuda'] * 1e6:.1f}"])
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, fewer repeats")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    print((compare_cuda(args.quick) if args.device == "cuda" else compare(args.quick)).markdown())
