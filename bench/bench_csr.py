"""CSR unstructured-sparse GEMM against dense fp32, torch.sparse.mm on the same CSR matrix, and
prunq's dense int8; and the sparsity from which CSR beats dense fp32.

    python -m bench.bench_csr [--quick] [--device cpu|cuda]    comparison tables (Markdown)

prunq.nn.CSRLinear at 90% sparsity (float and int8 non-zeros) against nn.Linear fp32,
torch.sparse.mm (x @ W.T computed as W @ x.T on torch's CSR tensor) and prunq's int8 weight-only
Int8Linear, timed in turns, median of the runs; up to M = 16 each candidate rotates among enough
weight sets to exceed the last-level cache (one set with --quick). The second table times CSRLinear at 30/50/70/90/95%
against dense fp32 at each shape: the break-even sparsity lies between the last ratio below 1
and the first above.
"""

from __future__ import annotations

import functools
import warnings
from unittest import mock

import torch
from torch import nn

import prunq
from prunq.nn import CSRLinear, Int8Linear, csr_linear

from .harness import (Table, copies_to_exceed_cache, in_turns, interleaved_medians, machine_description, main,
                      median_seconds)
from .shapes import SPARSE, SPARSE_QUICK

SPARSITIES = (0.3, 0.5, 0.7, 0.9, 0.95)


def candidates(m, k, n, copies=1, sparsity=0.9):
    torch.manual_seed(0)
    linears = [nn.Linear(k, n) for _ in range(copies)]
    for linear in linears:
        prunq.compress.prune(linear, sparsity)
    x = torch.randn(m, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's "sparse CSR support is in beta"
        sparse = [linear.weight.detach().to_sparse_csr() for linear in linears]
    x_t = x.T.contiguous()
    return {
        "csr": in_turns([CSRLinear.from_linear(linear) for linear in linears], x),
        "csr int8": in_turns([CSRLinear.from_linear(linear, int8=True) for linear in linears], x),
        "dense fp32": in_turns(linears[:max(1, copies // 4)], x),
        "torch.sparse.mm": in_turns([functools.partial(torch.sparse.mm, w) for w in sparse], x_t),
        "dense int8": in_turns([Int8Linear.from_linear(linear, mode="weight_only") for linear in linears], x),
    }


def compare(quick: bool) -> Table:
    table = Table(f"CSR GEMM at 90% sparsity: {machine_description('cpu')}; weight sets rotated beyond the "
                  "last-level cache up to M = 16",
                  ["M x K x N", "csr ms", "vs torch.sparse.mm", "vs dense fp32", "csr int8 ms", "vs dense int8"],
                  baseline="torch.sparse.mm")
    for m, k, n in SPARSE_QUICK if quick else SPARSE:
        repeats = 3 if quick or m * k * n > 2**32 else 9
        # interleaved_medians calls each candidate repeats + 1 times, so no more copies are ever
        # read; building the 41 a 90%-sparse 4096 x 4096 weight asks for took 4 of the run's 4.5 minutes.
        copies = min(copies_to_exceed_cache(n * k // 10, "cpu"), repeats + 1) if m <= 16 and not quick else 1
        with torch.no_grad():
            t = interleaved_medians(candidates(m, k, n, copies), repeats)
        table.speedups[f"csr {m}x{k}x{n}"] = t["torch.sparse.mm"] / t["csr"]
        table.rows.append([f"{m}x{k}x{n}", f"{t['csr'] * 1e3:.3f}", f"{t['torch.sparse.mm'] / t['csr']:.2f}x",
                           f"{t['dense fp32'] / t['csr']:.2f}x", f"{t['csr int8'] * 1e3:.3f}",
                           f"{t['dense int8'] / t['csr int8']:.2f}x"])
    return table


def break_even(quick: bool) -> Table:
    """The CSR kernel (CSRLinear's dense fallback off) against dense fp32 by sparsity: where it
    crosses 1 is what csr_linear.DENSE_BELOW records for the CPU path."""
    table = Table(f"CSR kernel against dense fp32 by sparsity: {machine_description('cpu')}",
                  ["M x K x N", *(f"{s:.0%}" for s in SPARSITIES)], baseline="dense fp32")
    with mock.patch.dict(csr_linear.DENSE_BELOW, {isa: 0.0 for isa in csr_linear.DENSE_BELOW}):
        for m, k, n in SPARSE_QUICK if quick else SPARSE[:3]:
            table.rows.append(break_even_row(m, k, n, quick, table))
    return table


def break_even_row(m, k, n, quick, table):
    row = [f"{m}x{k}x{n}"]
    for sparsity in SPARSITIES:
        with torch.no_grad():
            calls = candidates(m, k, n, 1, sparsity)
            t = interleaved_medians({name: calls[name] for name in ("csr", "dense fp32")}, 3 if quick else 7)
        row.append(f"{t['dense fp32'] / t['csr']:.2f}x")
        table.speedups[f"csr {sparsity:.0%} {m}x{k}x{n}"] = t["dense fp32"] / t["csr"]
    return row


def compare_cuda(quick: bool) -> Table:
    """CSRLinear (Triton, fp16) at 90% sparsity against torch.sparse.mm (cuSPARSE) on the same
    CSR matrix and fp16 nn.Linear (cuBLAS), CUDA-event medians."""
    table = Table(f"CSR GEMM at 90% sparsity on {machine_description('cuda')}", ["M x K x N", "prunq ms",
                  "vs torch.sparse.mm", "vs fp16 dense"], baseline="torch.sparse.mm")
    for m, k, n in SPARSE_QUICK if quick else SPARSE:
        torch.manual_seed(0)
        linear = nn.Linear(k, n, device="cuda", dtype=torch.float16)
        prunq.compress.prune(linear, 0.9)
        x = torch.randn(m, k, device="cuda", dtype=torch.float16)
        ours = CSRLinear.from_linear(linear)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sparse = linear.weight.detach().to_sparse_csr()
        x_t = x.T.contiguous()
        t = {"prunq": median_seconds(lambda _: ours(x), "cuda"), "dense": median_seconds(lambda _: linear(x), "cuda"),
             "cusparse": median_seconds(lambda _: torch.sparse.mm(sparse, x_t), "cuda")}
        table.speedups[f"csr {m}x{k}x{n}"] = t["cusparse"] / t["prunq"]
        table.rows.append([f"{m}x{k}x{n}", f"{t['prunq'] * 1e3:.3f}", f"{t['cusparse'] / t['prunq']:.2f}x",
                           f"{t['dense'] / t['prunq']:.2f}x"])
    return table


if __name__ == "__main__":
    main(__doc__, lambda quick: [compare(quick), break_even(quick)], lambda quick: [compare_cuda(quick)])
