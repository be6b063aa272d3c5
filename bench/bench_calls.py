"""One-row calls: every op and module at a single row, beside what it replaces, on every CPU path.

    python -m bench.bench_calls [--quick]     comparison table (Markdown)

A search service embeds one short query at a time, and a decoder produces one token a step: at
one row a call costs mostly what happens around the kernel (dispatch, checks, allocation). Each
row times prunq's call and the call it replaces (the same width as MiniLM's layers, 384 and
1536), median of several runs of many calls, both in the same run; one column per CPU path this
machine has (PRUNQ_CPU_ISA caps the best one; "avx512-novnni" is the AVX-512 path with the
CPU's VNNI masked, as on CPUs without it). The replacements are PyTorch's own and do not change
with prunq's path.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

import prunq
from prunq import _native
from prunq.formats import csr as csr_format
from prunq.formats.int8 import quantize_weight
from prunq.nn import AddLayerNorm, AddRMSNorm, BinaryLinear, CSRLinear, Int4Embedding, Int8Embedding, Int8Linear, LowRankLinear, Sparse24Linear
from prunq.ops.int8_gemm import quantize_per_token_ref

from .harness import Table, machine_description

HIDDEN, WIDE = 384, 1536


def cpu_paths() -> list[str]:
    """The CPU paths to time, up to the active one."""
    if _native.C is None:
        return []
    order = ["portable", "avx2", "avx512"]
    paths = order[: order.index(_native.C.active_isa()) + 1]
    vnni = "avx512vnni" in _native.C.cpu_features()
    return paths + ["avx512-novnni"] if "avx512" in paths and vnni else paths


def use_path(path: str) -> None:
    _native.C.set_active_isa(path.removesuffix("-novnni"))
    _native.C.set_avx512_vnni_enabled(not path.endswith("-novnni"))


def quantize_dynamic(linear: nn.Linear) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.ao.quantization.quantize_dynamic(nn.Sequential(linear), {nn.Linear}, dtype=torch.qint8)


def cases() -> list[tuple[str, str, Callable[[], Callable], Callable]]:
    """(call, replaced by, make prunq's call for the active path, the replacement), all at one row.
    prunq's modules are made after the path is chosen: they pack their weights for it."""
    torch.manual_seed(0)
    x, residual = torch.randn(1, HIDDEN), torch.randn(1, HIDDEN)
    layer_norm, rms_norm = nn.LayerNorm(HIDDEN), nn.RMSNorm(HIDDEN, eps=1e-6)
    linear, wide = nn.Linear(HIDDEN, HIDDEN), nn.Linear(HIDDEN, WIDE)
    w_q, w_scale = quantize_weight(linear.weight)
    x_q, x_scale = prunq.ops.quantize_per_token(x)
    embedding = nn.Embedding(30522, HIDDEN)
    token = torch.tensor([[2023]])
    fbgemm = quantize_dynamic(wide)
    weight, bias = layer_norm.weight, layer_norm.bias
    pruned = linear.weight.detach().clone()
    prunq.compress.prune(pruned, pattern="2:4")
    values, meta = prunq.ops.sparse24_pack(pruned)
    sparse_wide = nn.Linear(HIDDEN, WIDE)
    sparse_wide.load_state_dict(wide.state_dict())
    prunq.compress.prune(sparse_wide, 0.9)
    ninety = linear.weight.detach().clone()
    prunq.compress.prune(ninety, 0.9)
    csr = csr_format.from_dense(ninety)
    w_bits, w_sign_scale = prunq.ops.pack_bits(linear.weight.detach()), linear.weight.detach().abs().mean(1)
    return [
        ("add_layer_norm op", "F.layer_norm(x + r)",
         lambda: lambda: prunq.ops.add_layer_norm(x, residual, weight, bias),
         lambda: F.layer_norm(x + residual, (HIDDEN,), weight, bias)),
        ("AddLayerNorm", "nn.LayerNorm(x + r)",
         lambda: (lambda m: lambda: m(x, residual))(AddLayerNorm.from_norm(layer_norm)),
         lambda: layer_norm(x + residual)),
        ("add_rms_norm op", "F.rms_norm(x + r)",
         lambda: lambda: prunq.ops.add_rms_norm(x, residual, rms_norm.weight),
         lambda: F.rms_norm(x + residual, (HIDDEN,), rms_norm.weight, 1e-6)),
        ("AddRMSNorm", "nn.RMSNorm(x + r)",
         lambda: (lambda m: lambda: m(x, residual))(AddRMSNorm.from_norm(rms_norm)),
         lambda: rms_norm(x + residual)),
        ("quantize_per_token op", "the same in torch ops",
         lambda: lambda: prunq.ops.quantize_per_token(x),
         lambda: quantize_per_token_ref(x)),
        ("int8_linear op", "F.linear fp32",
         lambda: lambda: prunq.ops.int8_linear(x_q, x_scale, w_q, w_scale, linear.bias),
         lambda: F.linear(x, linear.weight, linear.bias)),
        ("int8_weight_only_linear op", "F.linear fp32",
         lambda: lambda: prunq.ops.int8_weight_only_linear(x, w_q, w_scale, linear.bias),
         lambda: F.linear(x, linear.weight, linear.bias)),
        (f"Int8Linear dynamic {HIDDEN}->{WIDE}", "quantize_dynamic",
         lambda: (lambda m: lambda: m(x))(Int8Linear.from_linear(wide)),
         lambda: fbgemm(x)),
        (f"Int8Linear dynamic {HIDDEN}->{WIDE}", "nn.Linear fp32",
         lambda: (lambda m: lambda: m(x))(Int8Linear.from_linear(wide)),
         lambda: wide(x)),
        (f"Int8Linear dynamic 4-bit w {HIDDEN}->{WIDE}", "nn.Linear fp32",
         lambda: (lambda m: lambda: m(x))(Int8Linear.from_linear(wide, weight_bits=4)),
         lambda: wide(x)),
        (f"Int8Linear weight_only {HIDDEN}->{WIDE}", "nn.Linear fp32",
         lambda: (lambda m: lambda: m(x))(Int8Linear.from_linear(wide, mode="weight_only")),
         lambda: wide(x)),
        ("Int8Embedding", "nn.Embedding",
         lambda: (lambda m: lambda: m(token))(Int8Embedding.from_embedding(embedding)),
         lambda: embedding(token)),
        ("Int4Embedding", "nn.Embedding",
         lambda: (lambda m: lambda: m(token))(Int4Embedding.from_embedding(embedding)),
         lambda: embedding(token)),
        ("sparse24_linear op", "F.linear fp32",
         lambda: lambda: prunq.ops.sparse24_linear(x, values, meta, linear.bias),
         lambda: F.linear(x, linear.weight, linear.bias)),
        (f"Sparse24Linear {HIDDEN}->{WIDE}", "nn.Linear fp32",
         lambda: (lambda m: lambda: m(x))(Sparse24Linear.from_linear(wide)),
         lambda: wide(x)),
        ("csr_linear op, 90% sparse", "F.linear fp32",
         lambda: lambda: prunq.ops.csr_linear(x, *csr, HIDDEN, linear.bias),
         lambda: F.linear(x, linear.weight, linear.bias)),
        (f"CSRLinear {HIDDEN}->{WIDE}, 90% sparse", "nn.Linear fp32",
         lambda: (lambda m: lambda: m(x))(CSRLinear.from_linear(sparse_wide)),
         lambda: wide(x)),
        ("binary_linear op, XNOR", "F.linear fp32",
         lambda: lambda: prunq.ops.binary_linear(x, w_bits, w_sign_scale, linear.bias),
         lambda: F.linear(x, linear.weight, linear.bias)),
        (f"BinaryLinear {HIDDEN}->{WIDE}, XNOR", "nn.Linear fp32",
         lambda: (lambda m: lambda: m(x))(BinaryLinear.from_linear(wide)),
         lambda: wide(x)),
        (f"BinaryLinear {HIDDEN}->{WIDE}, BinaryConnect", "nn.Linear fp32",
         lambda: (lambda m: lambda: m(x))(BinaryLinear.from_linear(wide, binarize_x=False)),
         lambda: wide(x)),
        (f"LowRankLinear rank {HIDDEN // 4}", "nn.Linear fp32",
         lambda: (lambda m: lambda: m(x))(LowRankLinear.from_linear(linear, HIDDEN // 4)),
         lambda: linear(x)),
    ]


def per_call_seconds(fns: dict[str, Callable[[], object]], calls: int, repeats: int) -> dict[str, float]:
    """Median over `repeats` of the time of `calls` back-to-back calls, divided by `calls`; the
    candidates take turns, so a slow spell of the machine is shared."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        for _ in range(calls // 10):
            fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            samples[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(values) for name, values in samples.items()}


def compare(quick: bool) -> Table:
    paths = cpu_paths()
    calls, repeats = (300, 3) if quick else (2000, 7)
    table = Table(f"One-row calls against what they replace: {machine_description('cpu')}; "
                  f"us per call, median of {repeats} runs of {calls} calls",
                  ["call", "replaces", "replacement us", *(f"{p} us" for p in paths), *(f"{p} vs it" for p in paths)],
                  baseline="the call it replaces")
    previous = _native.C.active_isa() if paths else None
    try:
        with torch.inference_mode():
            for name, replaced, make, replacement in cases():
                ours, theirs = {}, {}
                for path in paths:
                    use_path(path)
                    t = per_call_seconds({"prunq": make(), "replacement": replacement}, calls, repeats)
                    ours[path], theirs[path] = t["prunq"], t["replacement"]
                ratios = {path: theirs[path] / ours[path] for path in paths}  # each against its own run
                table.rows.append([name, replaced, f"{statistics.median(theirs.values()) * 1e6:.1f}",
                                   *(f"{ours[p] * 1e6:.1f}" for p in paths), *(f"{ratios[p]:.2f}x" for p in paths)])
                for path in paths:
                    table.speedups[f"{name} vs {replaced} ({path})"] = ratios[path]
    finally:
        if previous:
            use_path(previous)
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and runs")
    print(compare(parser.parse_args().quick).markdown())
