"""Latency of whole models, measured side by side."""

from __future__ import annotations

import statistics
import time

import torch


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@torch.inference_mode()
def median_latencies(models: dict[str, torch.nn.Module], batch: dict, runs: int, device: str) -> dict[str, float]:
    """{name: median seconds of one forward pass}. The models take turns, run after run, so that a
    slow spell of the machine is shared by all of them rather than landing on one."""
    samples: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():
        model(**batch)
    for _ in range(runs):
        for name, model in models.items():
            _synchronize(device)
            start = time.perf_counter()
            model(**batch)
            _synchronize(device)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(times) for name, times in samples.items()}
