"""Quantization-aware training: train with the rounding the kernels will do, then convert.

    prepare_qat(model, recipe="int8", include=None, exclude=DEFAULT_EXCLUDE) -> model
        swaps the selected nn.Linear layers for training layers that run the kernel modules'
        arithmetic in float: "int8", FakeQuantLinear (int8 weights per output channel and int8
        activations per token, as Int8Linear(mode="dynamic")); "binary" and "binary:connect",
        BinarizedLinear. Rounding passes gradients straight through.
    prunq.compress.convert(model) -> model
        turns the training layers into Int8Linear / BinaryLinear with the same outputs (int8:
        the integer products are exact, so only fp32 rounding of the scales differs).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..nn import Int8Linear
from ..ops.int8_gemm import quantize_per_token_ref
from .binarize import binarize
from .convert import TrainingLinear
from .swap import DEFAULT_EXCLUDE, is_linear, modules_of_kind, selected, set_submodule


def _fake_quantize(t: torch.Tensor) -> torch.Tensor:
    """t rounded as the kernels round it (symmetric int8 per row, scale absmax / 127), with the
    gradient of the identity."""
    q, scale = quantize_per_token_ref(t)
    return t + (q.float() * scale.unsqueeze(-1) - t).detach()


class FakeQuantLinear(TrainingLinear):
    """A Linear trained for W8A8: y = fq(x) @ fq(W).T + bias, fq the per-row int8 rounding of
    Int8Linear (weights per output channel, activations per token)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(_fake_quantize(x), _fake_quantize(self.weight), self.bias)

    def converted(self) -> Int8Linear:
        return Int8Linear.from_linear(self.trained_linear())

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 fake-quant"


def prepare_qat(model: nn.Module, recipe: str = "int8", include: Iterable[str] | None = None,
                exclude: Iterable[str] = DEFAULT_EXCLUDE) -> nn.Module:
    """Swaps the selected nn.Linear layers of `model` (fnmatch patterns over module names; by
    default every Linear except classifier and language-model heads) for training layers, in
    place, and returns the model. ValueError naming the recipe or the patterns when nothing fits."""
    if recipe in ("binary", "binary:xnor", "binary:connect"):
        return binarize(model, include, exclude, binarize_x=recipe != "binary:connect")
    if recipe != "int8":
        raise ValueError(f"recipe: prepare_qat takes 'int8', 'binary' or 'binary:connect', got {recipe!r}")
    include = None if include is None else tuple(include)
    names = [name for name, module in modules_of_kind(model, is_linear)
             if isinstance(module, nn.Linear) and selected(name, include, tuple(exclude))]
    if not names:
        raise ValueError(f"include: no nn.Linear of the model matches {include!r} (exclude {tuple(exclude)!r})")
    for name in names:
        set_submodule(model, name, FakeQuantLinear(model.get_submodule(name)))
    return model
