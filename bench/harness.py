"""Timing and reporting shared by the benchmarks.

CPU timings: wall clock around each call, median of several runs. CUDA timings: CUDA events
(triton.testing.do_bench), since a wall clock does not wait for the GPU. Inputs can be rotated
among several copies so that one call's data is not already in the last-level cache; each table
says which figure it reports.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

LAST_LEVEL_CACHE_BYTES = {"cpu": 32 << 20, "cuda": 50 << 20}


def copies_to_exceed_cache(bytes_per_call: int, device: str) -> int:
    """How many input sets to rotate among so that their total is twice the last-level cache."""
    return max(1, -(-2 * LAST_LEVEL_CACHE_BYTES[device] // max(1, bytes_per_call)))


def median_seconds(fn: Callable[[int], object], device: str, rotate: int = 1, repeats: int = 15) -> float:
    """Median time of fn(i), i cycling over range(rotate). CPU: each sample times one pass over
    all rotations, divided by their number."""
    if device == "cuda":
        import triton.testing

        counter = iter(range(1 << 62))
        return triton.testing.do_bench(lambda: fn(next(counter) % rotate), return_mode="median") / 1e3
    for i in range(rotate):  # warm-up
        fn(i)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(rotate):
            fn(i)
        samples.append((time.perf_counter() - start) / rotate)
    return statistics.median(samples)


def in_turns(calls: list, *args) -> Callable[[], object]:
    """A call of `calls` in turn on args: with enough copies, each call finds its weights out of
    the caches."""
    turn = itertools.cycle(calls)
    return lambda: next(turn)(*args)


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int = 9) -> dict[str, float]:
    """CPU: median seconds of each callable, measured in turns (a, b, c, a, b, c, ...) so that a
    change in machine load shifts all of them alike."""
    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def page_faults_per_call(fn: Callable[[int], object], rotate: int = 1) -> float:
    """CPU: minor page faults (pages the OS maps in on first touch) per call of fn(i), over one
    pass of the rotation. Outputs placed in memory the allocator had handed back to the OS fault
    in 4 KB at a time, which can cost more than a memory-bound kernel; this shows when a timing
    includes that.
    NaN where the OS does not report it."""
    try:
        import resource
    except ImportError:
        return float("nan")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for i in range(rotate):
        fn(i)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / rotate


def copy_bandwidth(device: str, nbytes: int = 256 << 20) -> float:
    """Bytes per second that a plain copy moves (read + write), measured now on `device`."""
    src = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    dst = torch.empty_like(src)
    seconds = median_seconds(lambda _: dst.copy_(src), device, repeats=10)
    return 2 * nbytes / seconds


def machine_description(device: str) -> str:
    if device == "cuda":
        return torch.cuda.get_device_name()
    from prunq import _native
    from prunq.info import cpu_model

    path = f", prunq's {_native.C.active_isa()} path" if _native.C is not None else ""
    return f"{cpu_model()}{path}, {torch.get_num_threads()} threads"


@dataclass
class Table:
    """One benchmark's results: the printed table, and prunq's speed-up over the baseline per row
    (for the chart)."""

    title: str
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    speedups: dict[str, float] = field(default_factory=dict)
    baseline: str = ""

    def markdown(self) -> str:
        widths = [max(len(str(c)) for c in column) for column in zip(self.header, *self.rows)]
        lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(line, widths)) + " |"
                 for line in [self.header, *self.rows]]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return f"{self.title}\n\n" + "\n".join(lines)


def main(doc: str, cpu_tables: Callable[[bool], list], cuda_tables: Callable[[bool], list]) -> None:
    """A family benchmark's command line, [--quick] [--device cpu|cuda]: prints the tables of the
    device's run."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, fewer repeats")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    tables = (cuda_tables if args.device == "cuda" else cpu_tables)(args.quick)
    print("\n\n".join(table.markdown() for table in tables))
