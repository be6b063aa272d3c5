"""2:4 semi-structured GEMM against the dense GEMM of the same dtype.

    python -m bench.bench_sparse24 [--quick] [--device cpu|cuda]   comparison table (Markdown)

prunq.nn.Sparse24Linear (float values in x's dtype, and int8 values) against nn.Linear in fp32
and bf16 and prunq's dense int8 weight-only Int8Linear, timed in turns, median of the runs. Up
to M = 16 each candidate rotates among enough weight sets to exceed the last-level cache (the
decode case reads its weights from memory; one set with --quick); beyond, one set. On CUDA (--device cuda): the Triton
kernel against fp16 cuBLAS and torch's own 2:4 kernels (to_sparse_semi_structured).
"""

from __future__ import annotations


import torch
from torch import nn

import prunq
from prunq.nn import Int8Linear, Sparse24Linear

from .harness import (Table, copies_to_exceed_cache, in_turns, interleaved_medians, machine_description, main,
                      median_seconds)
from .shapes import SPARSE, SPARSE_QUICK


def candidates(m, k, n, copies=1):
    torch.manual_seed(0)
    linears = [nn.Linear(k, n) for _ in range(copies)]
    for linear in linears:
        prunq.compress.prune(linear, pattern="2:4")
    x = torch.randn(m, k)
    x16 = x.bfloat16()
    return {
        "2:4 fp32": in_turns([Sparse24Linear.from_linear(linear) for linear in linears], x),
        "dense fp32": in_turns(linears[:max(1, copies // 4)], x),
        "2:4 bf16": in_turns([Sparse24Linear.from_linear(linear).bfloat16() for linear in linears], x16),
        "dense bf16": in_turns([nn.Linear(k, n).bfloat16() for _ in range(max(1, copies // 2))], x16),
        "2:4 int8": in_turns([Sparse24Linear.from_linear(linear, int8=True) for linear in linears], x),
        "dense int8": in_turns([Int8Linear.from_linear(linear, mode="weight_only") for linear in linears], x),
    }


def compare(quick: bool) -> Table:
    table = Table(f"2:4 GEMM against the dense GEMM of the same dtype: {machine_description('cpu')}; weight sets "
                  "rotated beyond the last-level cache up to M = 16",
                  ["M x K x N", "2:4 fp32 ms", "vs dense fp32", "2:4 bf16 ms", "vs dense bf16", "2:4 int8 ms",
                   "vs dense int8 weight-only"], baseline="the dense GEMM of the same dtype")
    for m, k, n in SPARSE_QUICK if quick else SPARSE:
        repeats = 3 if quick or m * k * n > 2**32 else 9
        copies = copies_to_exceed_cache(n * k, "cpu") if m <= 16 and not quick else 1
        with torch.no_grad():
            t = interleaved_medians(candidates(m, k, n, copies), repeats)
        row = [f"{m}x{k}x{n}"]
        for kind in ("fp32", "bf16", "int8"):
            ratio = t[f"dense {kind}"] / t[f"2:4 {kind}"]
            row += [f"{t[f'2:4 {kind}'] * 1e3:.3f}", f"{ratio:.2f}x"]
            table.speedups[f"2:4 {kind} {m}x{k}x{n}"] = ratio
        table.rows.append(row)
    return table


def compare_cuda(quick: bool) -> Table:
    """Sparse24Linear (Triton, fp16) against fp16 nn.Linear (cuBLAS) and torch's own 2:4 kernels
    (to_sparse_semi_structured: cuSPARSELt or CUTLASS), CUDA-event medians."""
    from torch.sparse import to_sparse_semi_structured

    table = Table(f"2:4 GEMM on {machine_description('cuda')}: prunq's Triton kernel against fp16 cuBLAS and "
                  "torch's semi-structured kernels", ["M x K x N", "prunq ms", "vs fp16", "torch 2:4 ms", "vs torch 2:4"],
                  baseline="fp16 nn.Linear")
    for m, k, n in SPARSE_QUICK if quick else SPARSE:
        torch.manual_seed(0)
        linear = nn.Linear(k, n, device="cuda", dtype=torch.float16)
        prunq.compress.prune(linear, pattern="2:4")
        x = torch.randn(m, k, device="cuda", dtype=torch.float16)
        ours = Sparse24Linear.from_linear(linear)
        times = {"prunq": median_seconds(lambda _: ours(x), "cuda"), "fp16": median_seconds(lambda _: linear(x), "cuda")}
        try:
            sparse_weight = to_sparse_semi_structured(linear.weight.detach())
            times["torch"] = median_seconds(lambda _: torch.nn.functional.linear(x, sparse_weight), "cuda")
        except (RuntimeError, ValueError):  # shapes or devices torch's kernels do not take
            pass
        torch_time = times.get("torch")
        table.speedups[f"2:4 {m}x{k}x{n}"] = times["fp16"] / times["prunq"]
        table.rows.append([f"{m}x{k}x{n}", f"{times['prunq'] * 1e3:.3f}", f"{times['fp16'] / times['prunq']:.2f}x",
                           "-" if torch_time is None else f"{torch_time * 1e3:.3f}",
                           "-" if torch_time is None else f"{torch_time / times['prunq']:.2f}x"])
    return table


if __name__ == "__main__":
    main(__doc__, lambda quick: [compare(quick)], lambda quick: [compare_cuda(quick)])
