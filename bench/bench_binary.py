"""Packed binary GEMM (XNOR-Net and BinaryConnect binary_linear) against fp32 nn.Linear and
prunq's int8.

    python -m bench.bench_binary [--quick] [--device cpu|cuda]   comparison table (Markdown)

prunq.nn.BinaryLinear with binarize_x=True (XNOR-popcount; x's binarization included) against
fp32 nn.Linear and prunq's W8A8 Int8Linear, with the binary multiply-adds per second and their
fraction of the XOR+popcount ceiling (a register-only loop of the kernel's step, measured at the
start of the run); with binarize_x=False (BinaryConnect: real x, binary weights) against fp32
nn.Linear and prunq's int8 weight-only Int8Linear. Timed in turns, medians of the runs. Up to M =
16 each candidate rotates among enough weight sets to exceed the last-level cache (one set with
--quick). On CUDA: the Triton kernels against fp16 cuBLAS, CUDA-event medians.
"""

from __future__ import annotations


import torch
from torch import nn

from prunq import _native
from prunq.nn import BinaryLinear, Int8Linear

from .harness import (Table, copies_to_exceed_cache, in_turns, interleaved_medians, machine_description, main,
                      median_seconds)
from .shapes import BINARY, BINARY_QUICK


def binary_path() -> tuple[str, str]:
    """(the binary kernels' CPU path here, its ceiling loop)."""
    isa = _native.C.active_isa()
    if isa == "avx512" and "avx512vpopcntdq" in _native.C.cpu_features():
        return "avx512 vpopcntq", "xor_popcnt_zmm"
    return ("avx2 vpshufb", "xor_popcnt_ymm") if isa != "portable" else ("portable", "")


def random_binary(k, n, binarize_x, copies):
    modules = []
    for _ in range(copies):
        module = BinaryLinear(k, n, binarize_x=binarize_x)
        state = {name: t.clone() for name, t in module.state_dict().items()}
        state["w_bits"].random_(-2**31, 2**31 - 1)
        state["w_scale"].uniform_(0.01, 0.02)
        module.load_state_dict(state)  # as a loaded model: derived layouts built
        modules.append(module)
    return modules


def candidates(m, k, n, rotate: bool):
    def copies(bytes_per_call):
        return copies_to_exceed_cache(bytes_per_call, "cpu") if rotate else 1

    torch.manual_seed(0)
    linears = [nn.Linear(k, n) for _ in range(copies(4 * k * n))]
    int8_sets = linears * -(-copies(k * n) // len(linears))
    x = torch.randn(m, k)
    return {
        "xnor": in_turns(random_binary(k, n, True, copies(k * n // 8)), x),
        "connect": in_turns(random_binary(k, n, False, copies(k * n // 8)), x),
        "fp32": in_turns(linears, x),
        "int8 w8a8": in_turns([Int8Linear.from_linear(linear) for linear in int8_sets[:copies(k * n)]], x),
        "int8 weight-only": in_turns([Int8Linear.from_linear(linear, mode="weight_only")
                                      for linear in int8_sets[:copies(k * n)]], x),
    }


def compare(quick: bool) -> Table:
    path, loop = binary_path()
    threads = torch.get_num_threads()
    ceiling = _native.C.instruction_ceiling(loop, threads) / 2 if loop else 0.0  # binary multiply-adds/s
    table = Table(f"Binary GEMM: {machine_description('cpu')}; binary kernels on {path}, XOR+popcount ceiling "
                  f"measured now {ceiling / 1e12:.2f} T binary multiply-adds/s; weight sets rotated beyond the "
                  "last-level cache up to M = 16",
                  ["M x K x N", "xnor ms", "vs fp32", "vs int8 w8a8", "T bin-MAC/s", "of ceiling", "connect ms",
                   "vs fp32", "vs int8 weight-only"], baseline="fp32 nn.Linear")
    for m, k, n in BINARY_QUICK if quick else BINARY:
        with torch.no_grad():
            t = interleaved_medians(candidates(m, k, n, m <= 16 and not quick), 3 if quick or m >= 1024 else 7)
        rate = m * k * n / t["xnor"]
        row = [f"{m}x{k}x{n}", f"{t['xnor'] * 1e3:.3f}", f"{t['fp32'] / t['xnor']:.1f}x",
               f"{t['int8 w8a8'] / t['xnor']:.1f}x", f"{rate / 1e12:.2f}", f"{rate / ceiling:.0%}" if ceiling else "-",
               f"{t['connect'] * 1e3:.3f}", f"{t['fp32'] / t['connect']:.1f}x",
               f"{t['int8 weight-only'] / t['connect']:.1f}x"]
        table.speedups[f"xnor {m}x{k}x{n}"] = t["fp32"] / t["xnor"]
        table.speedups[f"connect {m}x{k}x{n}"] = t["fp32"] / t["connect"]
        table.rows.append(row)
    return table


def compare_cuda(quick: bool) -> Table:
    """BinaryLinear (Triton, fp16 x) in both modes against fp16 nn.Linear (cuBLAS)."""
    table = Table(f"Binary GEMM on {machine_description('cuda')}: prunq's Triton kernels against fp16 cuBLAS",
                  ["M x K x N", "xnor ms", "vs fp16", "connect ms", "vs fp16"], baseline="fp16 nn.Linear")
    for m, k, n in BINARY_QUICK if quick else BINARY:
        torch.manual_seed(0)
        linear = nn.Linear(k, n, device="cuda", dtype=torch.float16)
        x = torch.randn(m, k, device="cuda", dtype=torch.float16)
        xnor, connect = (BinaryLinear.from_linear(linear, binarize_x=b) for b in (True, False))
        t = {name: median_seconds(lambda _, f=f: f(x), "cuda") for name, f in
             (("xnor", xnor), ("connect", connect), ("fp16", linear))}
        table.speedups[f"xnor {m}x{k}x{n}"] = t["fp16"] / t["xnor"]
        table.rows.append([f"{m}x{k}x{n}", f"{t['xnor'] * 1e3:.3f}", f"{t['fp16'] / t['xnor']:.2f}x",
                           f"{t['connect'] * 1e3:.3f}", f"{t['fp16'] / t['connect']:.2f}x"])
    return table


if __name__ == "__main__":
    main(__doc__, lambda quick: [compare(quick)], lambda quick: [compare_cuda(quick)])
