"""Binarization: weights of +1 / -1 times one scale per output channel (BinaryConnect), and with
XNOR-Net activations binarized too, per row, scaled by their mean |x|.

    binary            FFN Linear -> BinaryLinear(binarize_x=True): XNOR-Net (the recipe pass)
    binary:connect    FFN Linear -> BinaryLinear(binarize_x=False): BinaryConnect

    binarize(model, include=None, exclude=DEFAULT_EXCLUDE, binarize_x=True) -> model
        swaps the selected Linear layers for BinarizedLinear, a training layer: float shadow
        weights, a binarized forward, gradients through a straight-through estimator clipped at
        |w| <= 1 (and |x| <= 1 for binarized activations); train, then
    prunq.compress.convert(model) -> model
        turns every training layer into its kernel module (here BinaryLinear), with the same
        outputs.

Without training, a binarized Transformer loses most of its fidelity: recovery by training or
distillation is what makes it usable.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

import torch
from torch import nn

from ..nn import BinaryLinear
from .convert import TrainingLinear
from .passes import BINARY, LINEAR, Context, Pass, register
from .progress import progress
from .swap import DEFAULT_EXCLUDE, as_linear, replace, swap_selected_linears

# The feed-forward Linear layers of the BERT, GPT-2 and Llama families: what "binary" takes by
# default (BERT's attention output projection is also called "output.dense", so it is excluded).
FFN_PATTERNS = ("*.intermediate.dense", "*.output.dense", "*.mlp.*")
NOT_FFN_PATTERNS = ("*.attention.output.dense",)


def is_ffn(name: str) -> bool:
    return (any(fnmatchcase(name, p) for p in FFN_PATTERNS)
            and not any(fnmatchcase(name, p) for p in NOT_FFN_PATTERNS))


class _SignSTE(torch.autograd.Function):
    """sign(x) (+1 at 0) forward; the gradient passed straight through where |x| <= 1, zero
    elsewhere (the clipped straight-through estimator of BinaryConnect and XNOR-Net)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class BinarizedLinear(TrainingLinear):
    """A Linear being trained for binarization: y = x' @ (sign(W) * mean|W| per row).T + bias,
    x' = sign(x) * mean |x| per row with binarize_x, else x. W stays float (the shadow weights
    the optimizer updates); convert() makes the BinaryLinear that computes the same."""

    def __init__(self, linear: nn.Linear, binarize_x: bool = True):
        super().__init__(linear)
        self.binarize_x = binarize_x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = _SignSTE.apply(self.weight) * self.weight.abs().mean(1, keepdim=True)
        if self.binarize_x:
            x = _SignSTE.apply(x) * x.abs().mean(-1, keepdim=True)
        return nn.functional.linear(x, w, self.bias)

    def converted(self) -> BinaryLinear:
        return BinaryLinear.from_linear(self.trained_linear(), binarize_x=self.binarize_x)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, binarize_x={self.binarize_x}"


def binarize(model: nn.Module, include: Iterable[str] | None = None, exclude: Iterable[str] = DEFAULT_EXCLUDE,
             binarize_x: bool = True) -> nn.Module:
    """Swaps the selected nn.Linear layers of `model` (fnmatch patterns over module names; by
    default every Linear except classifier and language-model heads) for BinarizedLinear, in
    place, and returns the model. ValueError when nothing is selected."""
    return swap_selected_linears(model, include, exclude, lambda linear: BinarizedLinear(linear, binarize_x))


@register
class Binarize(Pass):
    names = ("binary",)
    order = 20
    makes = {LINEAR: BINARY}
    repeated = "has two binary steps"

    def parse(self, name: str, value: str) -> bool:
        if value not in ("", "xnor", "connect"):
            raise ValueError(f"recipe: 'binary' takes ':xnor' (the default) or ':connect', got {name}:{value}")
        return value != "connect"  # binarize_x

    def run(self, context: Context, binarize_x: bool) -> None:
        names = [name for name in context.layers[LINEAR] if context.include is not None or is_ffn(name)]
        for name in progress(names, f"{context.recipe} binary", context.show_progress):
            module = replace(context.model, name, lambda m: BinaryLinear.from_linear(as_linear(m), binarize_x))
            context.modules[name] = module.config()
        context.layers[BINARY] = names
        context.layers[LINEAR] = [name for name in context.layers[LINEAR] if name not in names]
