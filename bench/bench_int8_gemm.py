"""INT8 GEMM (W8A8 dynamic and weight-only) against what a user would run instead.

    python -m bench.bench_int8_gemm [--quick] [--device cpu|cuda]   comparison table (Markdown)
    pytest bench/test_bench_int8_gemm.py                            pytest-benchmark cases (CPU)

W8A8: prunq.nn.Int8Linear (dynamic; per-token quantization of x included) against
torch.ao quantize_dynamic (fbgemm), torch._int_mm plus scaling in torch (quantization by
prunq's op), and fp32 nn.Linear, with the fraction of the W8A8 kernel instruction's ceiling
(a register-only loop, measured at the start of the run); and Int8Linear on 4-bit weights
(weight_bits=4), which the AVX2 path multiplies with vpmaddubsw (its fraction of that
instruction's ceiling beside it). Weight-only: Int8Linear(mode=
"weight_only") on fp32 activations against fp32 nn.Linear, and where the CPU has native bf16
(AVX512_BF16), on bf16 activations against bf16 nn.Linear. Candidates are timed in turns, median
of the runs. Up to M = 16, where a call streams its weights, each candidate rotates among enough
weight sets to exceed the last-level cache (one set with --quick); beyond, one set, which the
other candidates' calls evict between two of its calls.

To compare the AVX2 paths on an AVX-512 machine: PRUNQ_CPU_ISA=avx2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2
(both set before Python starts: fbgemm reads its variable when torch loads).

On CUDA: Int8Linear (Triton kernels, quantization of x included) against fp16 nn.Linear
(cuBLAS) and bare torch._int_mm (no quantization, no scaling: the throughput ceiling the W8A8
goal is stated against); weight-only on fp16 activations against fp16 nn.Linear, through Triton
and through prunq._cuda's kernel; per-token quantization of x through Triton and prunq._cuda.
CUDA-event medians (triton.testing.do_bench).
"""

from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from prunq import _native
from prunq._backend import use_backend
from prunq.nn import Int8Linear

from .harness import (Table, copies_to_exceed_cache, in_turns, interleaved_medians, machine_description, main,
                      median_seconds)
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


def has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512_BF16): only there are the bf16 columns
    worth their time (elsewhere torch converts every bf16 Linear to fp32 and back)."""
    return _native.C is not None and "avx512bf16" in _native.C.cpu_features()


def candidates(m, k, n, copies=1, with_int_mm=True):
    """Callables for one shape. `copies`: weight sets the int8 candidates rotate among (fp32
    ones among four times fewer, the same bytes), so that their weights come from memory.
    with_int_mm: whether torch._int_mm is among them."""
    torch.manual_seed(0)
    linears = [nn.Linear(k, n) for _ in range(copies)]
    x = torch.randn(m, k)
    fp32_copies = linears[:max(1, copies // 4)]
    fns = {
        "prunq w8a8": in_turns([Int8Linear.from_linear(linear) for linear in linears], x),
        "prunq w8a8 4-bit w": in_turns([Int8Linear.from_linear(linear, weight_bits=4) for linear in linears], x),
        "fbgemm dynamic": in_turns([fbgemm_dynamic(linear) for linear in linears], x),
        "fp32 Linear": in_turns(fp32_copies, x),
        "prunq weight-only fp32": in_turns([Int8Linear.from_linear(linear, mode="weight_only") for linear in linears], x),
    }
    if has_native_bf16():
        x_bf16 = x.bfloat16()
        fns["bf16 Linear"] = in_turns([copy.deepcopy(linear).bfloat16() for linear in fp32_copies[:max(1, copies // 2)]],
                                      x_bf16)
        fns["prunq weight-only bf16"] = in_turns(
            [Int8Linear.from_linear(linear, mode="weight_only") for linear in linears], x_bf16)
    if m > 16 and with_int_mm:  # torch._int_mm on the CPU wants M > 16
        fns["_int_mm + scaling"] = (lambda f: lambda: f(x))(int_mm_with_scaling(Int8Linear.from_linear(linears[0])))
    return fns


# From this many times the time of prunq's w8a8 at one shape, torch._int_mm is left out of the larger
# ones (on an AVX2-only CPU, AMD Zen 3: 70x at 128 x 768 x 3072, 160x at 512 x 1024 x 4096).
SLOW_INT_MM = 20

# The register-only loop that measures each instruction the kernels multiply with.
CEILING_LOOPS = {"vpdpbusd zmm": "dpbusd_zmm", "vpmaddwd zmm": "madd_zmm", "vpmaddwd ymm": "madd_ymm",
                 "vpmaddubsw ymm": "maddubs_ymm", "vfmadd231ps zmm": "fma_zmm", "vfmadd231ps ymm": "fma_ymm"}
# On the AVX2 path 4-bit weights take their own kernel; elsewhere the W8A8 kernel's instruction.
FOUR_BIT_INSTRUCTION = {"vpmaddwd ymm": "vpmaddubsw ymm"}


def ceilings() -> dict[str, tuple[str, float]]:
    """{"int8": the W8A8 kernel's instruction and its ceiling, "4-bit": the same for 4-bit weights,
    "fp32": the widest fp32 FMA here and its ceiling}, in ops/s on torch's threads, measured now."""
    if _native.C is None:
        return {"int8": ("none", 0.0), "4-bit": ("none", 0.0), "fp32": ("none", 0.0)}
    instruction = _native.C.packed_gemm_instruction()
    fma = "vfmadd231ps zmm" if "avx512f" in _native.C.cpu_features() else "vfmadd231ps ymm"
    threads = torch.get_num_threads()

    def measured(name: str) -> tuple[str, float]:
        return name, _native.C.instruction_ceiling(CEILING_LOOPS[name], threads) if name in CEILING_LOOPS else 0.0

    return {"int8": measured(instruction), "4-bit": measured(FOUR_BIT_INSTRUCTION.get(instruction, instruction)),
            "fp32": measured(fma)}


def of_ceiling(ops: float, seconds: float, ceiling: float) -> str:
    return f"{100 * ops / seconds / ceiling:.0f}%" if ceiling else "-"


def compare(quick: bool) -> Table:
    measured = ceilings()
    (instruction, int8_ceiling), (four_bit, four_bit_ceiling), (fma, fma_ceiling) = (
        measured["int8"], measured["4-bit"], measured["fp32"])
    bf16 = has_native_bf16()
    table = Table(f"INT8 GEMM against fbgemm, torch._int_mm and float Linear: {machine_description('cpu')}; "
                  f"ceilings measured now: {instruction} {int8_ceiling / 1e12:.2f} TOPS"
                  + (f", {four_bit} (4-bit weights) {four_bit_ceiling / 1e12:.2f} TOPS" if four_bit != instruction else "")
                  + f", {fma} {fma_ceiling / 1e12:.2f} TFLOP/s; weight sets rotated beyond the last-level cache up to M = 16",
                  ["M x K x N", "w8a8 ms", "w8a8 TOPS", "of ceiling", "fbgemm ms", "vs fbgemm", "vs _int_mm",
                   "vs fp32", "4-bit w ms", "4-bit w vs fbgemm", "4-bit w of ceiling", "weight-only fp32 ms",
                   "vs fp32 Linear", *(["weight-only bf16 ms", "vs bf16 Linear"] if bf16 else [])],
                  baseline="fbgemm dynamic (w8a8), fp32 Linear (weight-only)")
    with_int_mm = True
    for m, k, n in GEMM_QUICK if quick else GEMM:
        repeats = 3 if quick or m * k * n > 2**32 else 9
        copies = copies_to_exceed_cache(n * k, "cpu") if m <= 16 and not quick else 1
        with torch.no_grad():
            t = interleaved_medians(candidates(m, k, n, copies, with_int_mm), repeats)
        if t.get("_int_mm + scaling", 0.0) > SLOW_INT_MM * t["prunq w8a8"]:
            with_int_mm = False  # where it has no fast kernel, its larger shapes would take most of the run
            table.title += (f"; torch._int_mm left out after {m}x{k}x{n}, where it took "
                            f"{t['_int_mm + scaling'] / t['prunq w8a8']:.0f}x prunq's time")
        ops = 2 * m * k * n
        ours, wo = t["prunq w8a8"], t["prunq weight-only fp32"]
        int_mm = t.get("_int_mm + scaling")
        table.speedups[f"w8a8 {m}x{k}x{n}"] = t["fbgemm dynamic"] / ours
        table.speedups[f"weight-only {m}x{k}x{n}"] = t["fp32 Linear"] / wo
        table.rows.append([f"{m}x{k}x{n}", f"{ours * 1e3:.3f}", f"{ops / ours / 1e12:.2f}",
                           of_ceiling(ops, ours, int8_ceiling),
                           f"{t['fbgemm dynamic'] * 1e3:.3f}", f"{t['fbgemm dynamic'] / ours:.2f}x",
                           "-" if int_mm is None else f"{int_mm / ours:.2f}x", f"{t['fp32 Linear'] / ours:.2f}x",
                           f"{t['prunq w8a8 4-bit w'] * 1e3:.3f}", f"{t['fbgemm dynamic'] / t['prunq w8a8 4-bit w']:.2f}x",
                           of_ceiling(ops, t["prunq w8a8 4-bit w"], four_bit_ceiling),
                           f"{wo * 1e3:.3f}", f"{t['fp32 Linear'] / wo:.2f}x",
                           *([f"{t['prunq weight-only bf16'] * 1e3:.3f}",
                              f"{t['bf16 Linear'] / t['prunq weight-only bf16']:.2f}x"] if bf16 else [])])
    return table


def compare_cuda(quick: bool) -> Table:
    table = Table(f"INT8 GEMM against fp16 cuBLAS and torch._int_mm: {machine_description('cuda')}",
                  ["M x K x N", "w8a8 ms", "w8a8 TOPS", "fp16 ms", "vs fp16", "_int_mm ms", "of _int_mm",
                   "weight-only Triton ms", "Triton vs fp16", "weight-only CUDA C++ ms", "CUDA C++ vs fp16",
                   "quantize Triton us", "quantize CUDA C++ us"], baseline="fp16 Linear")
    for m, k, n in GEMM_QUICK if quick else GEMM:
        torch.manual_seed(0)
        linear = nn.Linear(k, n, device="cuda", dtype=torch.float16)
        x = torch.randn(m, k, device="cuda", dtype=torch.float16)
        w8a8 = Int8Linear.from_linear(linear)
        weight_only = Int8Linear.from_linear(linear, mode="weight_only")
        with torch.no_grad():
            t = {"w8a8": median_seconds(lambda _: w8a8(x), "cuda"), "fp16": median_seconds(lambda _: linear(x), "cuda")}
            with use_backend("triton"):
                t["weight-only"] = median_seconds(lambda _: weight_only(x), "cuda")
                t["quantize"] = median_seconds(lambda _: torch.ops.prunq.quantize_per_token(x), "cuda")
            if _native.CUDA is not None:  # prunq._cuda is built only where nvcc was found
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
                           *((f"{t['weight-only cuda'] * 1e3:.3f}", f"{t['fp16'] / t['weight-only cuda']:.2f}x")
                             if "weight-only cuda" in t else ("-", "-")),
                           f"{t['quantize'] * 1e6:.1f}", f"{t['quantize cuda'] * 1e6:.1f}" if "quantize cuda" in t else "-"])
    return table


if __name__ == "__main__":
    main(__doc__, lambda quick: [compare(quick)], lambda quick: [compare_cuda(quick)])
