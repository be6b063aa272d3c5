"""Statistics of the inputs each layer sees on calibration data."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .progress import progress


def run_batch(model: nn.Module, batch, argument: str = "calibration", **options):
    """model's output on one batch: a dict of keyword arguments, or a tensor passed as the first;
    `options` are further keyword arguments (overriding the batch's own)."""
    if isinstance(batch, dict):
        return model(**{**batch, **options})
    if isinstance(batch, torch.Tensor):
        return model(batch, **options)
    raise TypeError(f"{argument}: expected batches that are dicts of model arguments or tensors, "
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


def input_statistics(model: nn.Module, names: list[str], kinds: list[str], calibration: Iterable,
                     show_progress: bool) -> dict[tuple[str, str], torch.Tensor]:
    """{(kind, name): statistic} of every input row x [K] the module `name` received, for each
    kind, from one pass over the calibration batches:
        gram    mean of x x^T [K, K], float64 (low-rank factorisation fitted to the inputs)
        absmax  max |x[k]| per input channel, float32 (SmoothQuant)
        norm    the L2 norm of each input channel over all rows, float32 (Wanda pruning)"""
    unknown = set(kinds) - {"gram", "absmax", "norm"}
    if unknown:
        raise ValueError(f"kinds: unknown statistics {sorted(unknown)}")
    sums: dict[tuple[str, str], torch.Tensor] = {}
    counts: dict[str, int] = {}

    def record(name, rows):
        counts[name] = counts.get(name, 0) + rows.shape[0]
        for kind in kinds:
            if kind == "gram":
                value = rows.double().T @ rows.double()
            elif kind == "absmax":
                value = rows.abs().amax(0).float()
            else:
                value = rows.double().pow(2).sum(0)
            key = (kind, name)
            if key not in sums:
                sums[key] = value
            elif kind == "absmax":
                sums[key] = torch.maximum(sums[key], value)
            else:
                sums[key] = sums[key] + value

    _observe_inputs(model, names, calibration, show_progress, record)
    finish = {"gram": lambda v, n: v / n, "absmax": lambda v, n: v, "norm": lambda v, n: v.sqrt().float()}
    return {(kind, name): finish[kind](value, counts[name]) for (kind, name), value in sums.items()}
