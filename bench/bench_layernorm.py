"""Fused residual add + LayerNorm / RMSNorm against eager PyTorch (x + residual, then the norm).

    python -m bench.bench_layernorm [--device cpu|cuda] [--quick]   comparison table (Markdown)
    pytest bench/test_bench_layernorm.py                             pytest-benchmark cases

Each call moves 4 * tokens * hidden elements (reads x and residual, writes out and sum); GB/s is
that over the median time, and "% copy" compares it with a plain copy measured in the same run.
Inputs rotate among enough copies to exceed the last-level cache where one call's data fits in
it (at most 64 copies), so small shapes are the hot-cache figure, as activations a layer has
just written would be. On the CPU the table also counts the page faults per call: where the
allocator has handed freed outputs back to the OS, both sides fault them in again on every call,
and that, not the kernel, sets the time.
"""

from __future__ import annotations

import argparse
import itertools

import torch
import torch.nn.functional as F

import prunq
from prunq import _native
from prunq._backend import use_backend

from .harness import (Table, copies_to_exceed_cache, copy_bandwidth, machine_description, median_seconds,
                      page_faults_per_call)
from .shapes import NORM_HIDDEN, NORM_QUICK, NORM_TOKENS

MAX_ROTATE = 64


def make_sets(tokens, hidden, dtype, device, count):
    weight = torch.randn(hidden, dtype=dtype, device=device)
    bias = torch.randn(hidden, dtype=dtype, device=device)
    sets = [(torch.randn(tokens, hidden, dtype=dtype, device=device),
             torch.randn(tokens, hidden, dtype=dtype, device=device)) for _ in range(count)]
    return sets, weight, bias


def candidates(norm, weight, bias, hidden):
    """(prunq, eager) callables taking (x, residual)."""
    if norm == "layer_norm":
        return (lambda x, r: prunq.ops.add_layer_norm(x, r, weight, bias),
                lambda x, r: F.layer_norm(x + r, (hidden,), weight, bias))
    return (lambda x, r: prunq.ops.add_rms_norm(x, r, weight),
            lambda x, r: F.rms_norm(x + r, (hidden,), weight, 1e-6))


def timed_backends(device: str) -> list[str | None]:
    """prunq's paths to time: on CUDA both kernels, so the table shows which to pick per shape."""
    if device != "cuda":
        return [None]
    return ["cuda", "triton"] if _native.CUDA is not None else ["triton"]  # _cuda is built only with nvcc


def compare(device: str, quick: bool) -> Table:
    copy = copy_bandwidth(device, (32 if quick else 256) << 20)
    backends = timed_backends(device)
    names = [f"prunq {b} us" if b else "prunq us" for b in backends]
    faults = ["page faults/call (prunq, eager)"] if device == "cpu" else []
    table = Table(f"Fused add + norm against eager add + norm: {machine_description(device)}; "
                  f"plain copy {copy / 1e9:.1f} GB/s",
                  ["op", "dtype", "tokens x hidden", *names, "eager us", "speed-up (best)", "best GB/s", "% copy", *faults],
                  baseline="eager")
    repeats = 5 if quick else 15
    shapes = NORM_QUICK if quick else list(itertools.product(NORM_TOKENS, NORM_HIDDEN))
    for norm, dtype, (tokens, hidden) in itertools.product(
            ["layer_norm", "rms_norm"], [torch.float32, torch.bfloat16], shapes):
        moved = 4 * tokens * hidden * dtype.itemsize
        rotate = 1 if quick else min(MAX_ROTATE, copies_to_exceed_cache(moved, device))
        sets, weight, bias = make_sets(tokens, hidden, dtype, device, rotate)
        ours, eager = candidates(norm, weight, bias, hidden)
        t_ours = []
        for backend in backends:
            with use_backend(backend):
                t_ours.append(median_seconds(lambda i: ours(*sets[i]), device, rotate, repeats))
        t_eager = median_seconds(lambda i: eager(*sets[i]), device, rotate, repeats)
        if faults:
            faults_ours = page_faults_per_call(lambda i: ours(*sets[i]), rotate)
            faults_eager = page_faults_per_call(lambda i: eager(*sets[i]), rotate)
        best = min(t_ours)
        rate = moved / best
        label = f"{norm} {str(dtype).removeprefix('torch.')} {tokens}x{hidden}"
        table.rows.append([norm, str(dtype).removeprefix("torch."), f"{tokens}x{hidden}",
                           *(f"{t * 1e6:.1f}" for t in t_ours), f"{t_eager * 1e6:.1f}", f"{t_eager / best:.2f}x",
                           f"{rate / 1e9:.1f}", f"{100 * rate / copy:.0f}%",
                           *([f"{faults_ours:.0f}, {faults_eager:.0f}"] if faults else [])])
        table.speedups[label] = t_eager / best
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="the small shapes, fewer repeats")
    args = parser.parse_args()
    print(compare(args.device, args.quick).markdown())
