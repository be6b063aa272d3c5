"""Quantization-aware training: train with the rounding the kernels will do, then convert.

    prepare_qat(model, recipe="int8", include=None, exclude=DEFAULT_EXCLUDE) -> model
        swaps the selected nn.Linear layers for training layers that run the kernel modules'
        arithmetic (on float32 CPU tensors the int8 layers run the integer GEMM itself, elsewhere
        the same rounding in float): "int8", FakeQuantLinear (int8 weights per output channel and int8
        activations per token, as Int8Linear(mode="dynamic")); "int8:w4", the same with the
        weights on 4 bits (Int8Linear(weight_bits=4)); "binary" and "binary:connect",
        BinarizedLinear. Rounding passes gradients straight through.
    prunq.compress.convert(model) -> model
        turns the training layers into Int8Linear / BinaryLinear with the same outputs (int8:
        the integer products are exact, so only fp32 rounding of the scales differs).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from .. import _native
from ..formats.int8 import checked_weight_bits, quantize_weight
from ..nn import Int8Linear
from ..ops.int8_gemm import MAX_K, int8_linear, quantize_per_token
from .binarize import binarize
from .convert import TrainingLinear, linear_from
from .swap import DEFAULT_EXCLUDE, swap_selected_linears


class _StraightThrough(torch.autograd.Function):
    """rounding(t) in the forward pass, the identity's gradient in the backward pass: one node
    and no float copies beyond the rounded tensor itself (a training step runs it on every
    activation and weight)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor, rounding) -> torch.Tensor:
        q, scale = rounding(t)
        return torch.mul(q, scale.unsqueeze(-1)).to(torch.promote_types(t.dtype, torch.float32))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def fake_quantize(t: torch.Tensor) -> torch.Tensor:
    """t rounded as the kernels round it (symmetric int8 per row, scale absmax / 127; the
    kernels' own quantize_per_token, on t in float32 as the kernels take it), with the gradient of
    the identity."""
    return _StraightThrough.apply(t, lambda t: quantize_per_token(t.float()))


def fake_quantize_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """w rounded per output channel as Int8Linear(weight_bits=bits) stores it, with the gradient
    of the identity."""
    return _StraightThrough.apply(w, lambda w: _rounded_weight(w, bits))


def _rounded_weight(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(levels, scale per row) of w as Int8Linear(weight_bits=bits) stores it: 8-bit weights round
    per row exactly as activations do, by the kernels' quantize_per_token."""
    return quantize_per_token(w.float()) if bits == 8 else quantize_weight(w, bits)


def _integer_gemm_takes(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether _IntegerLinear runs this layer: float32 CPU tensors where prunq._C has its packed
    kernels (AVX2, AVX-512). Elsewhere the float GEMM on the rounded tensors: the portable integer
    kernel runs a training batch at about a sixth of F.linear's speed, and off the CPU the integer
    path has not been measured."""
    return (_native.C is not None and _native.C.packed_gemm_available() and x.is_cpu
            and x.dtype == weight.dtype == torch.float32 and weight.is_cpu
            and (bias is None or bias.dtype == torch.float32) and 0 < x.shape[-1] <= MAX_K)


class _IntegerLinear(torch.autograd.Function):
    """fq(x) @ fq(W).T + bias computed as Int8Linear computes it, by the kernels' integer GEMM
    (prunq.ops.int8_linear, exact int32 sums), with the gradients of F.linear on the rounded
    tensors (straight through the rounding). At a training batch's rows on an AVX2 CPU the integer
    GEMM, packing included, takes about half of F.linear's time on the rounded floats with 4-bit
    weights and 0.64x to 0.99x with 8-bit ones (bench/RESULTS.md)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, bits: int) -> torch.Tensor:
        x_q, x_scale = quantize_per_token(x)
        w_q, w_scale = _rounded_weight(weight, bits)
        ctx.save_for_backward(x_q, x_scale, w_q, w_scale)
        return int8_linear(x_q, x_scale, w_q, w_scale, bias)

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor):
        x_q, x_scale, w_q, w_scale = ctx.saved_tensors
        grad = grad_y.reshape(-1, grad_y.shape[-1])
        grad_x = grad_w = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = (grad @ (w_q * w_scale[:, None])).view(*grad_y.shape[:-1], w_q.shape[1])
        if ctx.needs_input_grad[1]:
            grad_w = grad.T @ (x_q * x_scale.unsqueeze(-1)).reshape(-1, w_q.shape[1])
        if ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_x, grad_w, grad_bias, None


class FakeQuantLinear(TrainingLinear):
    """A Linear trained for Int8Linear: y = act(fq(x * x_channel_scale) @ fq(W).T + bias), fq the
    per-row int8 rounding of Int8Linear (weights per output channel, activations per token; the
    activations stay float in mode "weight_only"), x_channel_scale SmoothQuant's fixed factors
    (none by default), act the GELU an Int8Linear may run in its epilogue, and W rounded to
    weight_bits (8, or 4 for Int8Linear(weight_bits=4))."""

    def __init__(self, linear: nn.Linear, mode: str = "dynamic", activation: str = "none",
                 x_channel_scale: torch.Tensor | None = None, weight_bits: int = 8):
        super().__init__(linear)
        self.mode, self.activation, self.weight_bits = mode, activation, checked_weight_bits(weight_bits)
        self.register_buffer("x_channel_scale", None if x_channel_scale is None else x_channel_scale.detach().clone())

    @classmethod
    def from_int8(cls, module: Int8Linear) -> FakeQuantLinear:
        """The training form of an Int8Linear: its dequantized weight as the shadow weight."""
        linear = linear_from(module.w_q.float() * module.w_scale[:, None], module.bias)
        return cls(linear, module.mode, module.activation, module.x_channel_scale, module.weight_bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.x_channel_scale is not None:
            x = x * self.x_channel_scale
        if self.mode == "dynamic" and _integer_gemm_takes(x, self.weight, self.bias):
            y = _IntegerLinear.apply(x, self.weight, self.bias, self.weight_bits)
        else:
            if self.mode == "dynamic":
                x = fake_quantize(x)
            y = nn.functional.linear(x, fake_quantize_weight(self.weight, self.weight_bits), self.bias)
        return nn.functional.gelu(y) if self.activation == "gelu" else y

    def converted(self) -> Int8Linear:
        module = Int8Linear(self.in_features, self.out_features, self.bias is not None, self.mode, self.weight.device,
                            activation=self.activation, smooth=self.x_channel_scale is not None,
                            weight_bits=self.weight_bits)
        w_q, w_scale = quantize_weight(self.weight.detach().float(), self.weight_bits)
        with torch.no_grad():
            module.w_q.copy_(w_q)
            module.w_scale.copy_(w_scale)
            if self.bias is not None:
                module.bias.copy_(self.bias)
            if self.x_channel_scale is not None:
                module.x_channel_scale.copy_(self.x_channel_scale)
        module._repack()
        return module

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, int8 fake-quant ({self.mode}"
                f"{', 4-bit weights' if self.weight_bits == 4 else ''}"
                f"{', ' + self.activation if self.activation != 'none' else ''}"
                f"{', smoothed' if self.x_channel_scale is not None else ''})")


def prepare_qat(model: nn.Module, recipe: str = "int8", include: Iterable[str] | None = None,
                exclude: Iterable[str] = DEFAULT_EXCLUDE) -> nn.Module:
    """Swaps the selected nn.Linear layers of `model` (fnmatch patterns over module names; by
    default every Linear except classifier and language-model heads) for training layers, in
    place, and returns the model. ValueError naming the recipe or the patterns when nothing fits."""
    if recipe in ("binary", "binary:xnor", "binary:connect"):
        return binarize(model, include, exclude, binarize_x=recipe != "binary:connect")
    if recipe not in ("int8", "int8:w4"):
        raise ValueError(f"recipe: prepare_qat takes 'int8', 'int8:w4', 'binary' or 'binary:connect', got {recipe!r}")
    bits = 4 if recipe == "int8:w4" else 8
    return swap_selected_linears(model, include, exclude, lambda linear: FakeQuantLinear(linear, weight_bits=bits))
