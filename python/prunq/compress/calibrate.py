"""Statistics of the inputs each layer sees on calibration data."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .progress import progress


def run_batch(model: nn.Module, batch) -> None:
    if isinstance(batch, dict):
        model(**batch)
    elif isinstance(batch, torch.Tensor):
        model(batch)
    else:
        raise TypeError(f"calibration: expected batches that are dicts of model arguments or tensors, "
                        f"got {type(batch).__name__}")


@torch.no_grad()
def _observe_inputs(model: nn.Module, names: list[str], calibration: Iterable, show_progress: bool, record) -> None:
    """Runs the calibration batches through `model`, calling record(name, rows [n, K]) with the
    input of each module named in `names`."""
    def hook(name):
        return lambda _module, args: record(name, args[0].detach().reshape(-1, args[0].shape[-1]))

    handles = [model.get_submodule(name).register_forward_pre_hook(hook(name)) for name in names]
    try:
        batches = 0
        for batch in progress(calibration, "calibrate", show_progress, unit="batch"):
            run_batch(model, batch)
            batches += 1
    finally:
        for handle in handles:
            handle.remove()
    if batches == 0:
        raise ValueError("calibration: no batches")


def input_grams(model: nn.Module, names: list[str], calibration: Iterable, show_progress: bool) -> dict[str, torch.Tensor]:
    """{name: mean of x x^T over every input row x [K] the module `name` received}, in float64."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def record(name, rows):
        rows = rows.double()
        sums[name] = sums.get(name, 0) + rows.T @ rows
        counts[name] = counts.get(name, 0) + rows.shape[0]

    _observe_inputs(model, names, calibration, show_progress, record)
    return {name: sums[name] / counts[name] for name in sums}


def input_absmax(model: nn.Module, names: list[str], calibration: Iterable, show_progress: bool) -> dict[str, torch.Tensor]:
    """{name: max |x[k]| per input channel k over every input row the module `name` received}."""
    peaks: dict[str, torch.Tensor] = {}

    def record(name, rows):
        peak = rows.abs().amax(0).float()
        peaks[name] = torch.maximum(peaks[name], peak) if name in peaks else peak

    _observe_inputs(model, names, calibration, show_progress, record)
    return peaks
