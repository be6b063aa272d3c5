"""trainable(model): a compressed model made trainable, for recovery by distillation.

Every kernel module is swapped for a training layer that computes the same in differentiable
PyTorch, with straight-through estimators where the kernel rounds, and that turns back into the
kernel module (prunq.compress.convert):

    Int8Linear                  FakeQuantLinear (int8 rounding, SmoothQuant factors fixed)
    Sparse24Linear, CSRLinear   MaskedLinear: the zero pattern fixed, the kept weights trained
                                (int8 per-channel rounding where the values are int8)
    BinaryLinear                BinarizedLinear (clipped straight-through sign)
    AddLayerNorm, AddRMSNorm    TrainingNorm: the add and the norm in PyTorch, same parameters

LowRankLinear trains as it is (two nn.Linear); Int8Embedding and other integer tables stay fixed.
"""

from __future__ import annotations

import torch
from torch import nn

from ..formats import csr as csr_layout, sparse24 as sparse24_layout
from ..formats.bits import signs
from ..nn import AddLayerNorm, AddRMSNorm, BinaryLinear, CSRLinear, Int8Linear, Sparse24Linear
from ..ops.layernorm import add_layer_norm_ref, add_rms_norm_ref
from .binarize import BinarizedLinear
from .convert import TrainingLinear, linear_from
from .qat import FakeQuantLinear, fake_quantize
from .swap import set_submodule


class MaskedLinear(TrainingLinear):
    """A sparse layer being trained: y = x @ (W * mask).T + bias with the mask fixed (the
    weights it removes get no gradient), W rounded to int8 per output channel where the sparse
    module stores int8 values; convert() makes the sparse module again, with the same pattern."""

    def __init__(self, module: Sparse24Linear | CSRLinear):
        if isinstance(module, Sparse24Linear):
            dense = sparse24_layout.unpack(module.values, module.meta, module.in_features)
        else:
            dense = csr_layout.to_dense(module.crow_indices, module.col_indices, module.values, module.in_features)
        weight = dense.float() * (module.w_scale[:, None] if module.w_scale is not None else 1)
        super().__init__(linear_from(weight, module.bias))
        self.kind, self.int8 = type(module), module.w_scale is not None
        self.register_buffer("mask", dense != 0)

    def masked_weight(self) -> torch.Tensor:
        w = self.weight * self.mask
        return fake_quantize(w) if self.int8 else w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.masked_weight(), self.bias)

    def converted(self) -> Sparse24Linear | CSRLinear:
        # Only masked positions are non-zero, so 2:4 magnitude pruning keeps exactly them.
        return self.kind.from_linear(linear_from(self.weight.detach() * self.mask, self.bias), int8=self.int8)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, {self.kind.__name__} pattern"
                f"{', int8' if self.int8 else ''}")


class TrainingNorm(nn.Module):
    """A fused add + norm computed by its PyTorch reference (differentiable), holding the fused
    module's own parameters; convert() gives that module back."""

    def __init__(self, norm: AddLayerNorm | AddRMSNorm):
        super().__init__()
        self.norm = norm

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        norm = self.norm
        if isinstance(norm, AddRMSNorm):
            eps = torch.finfo(x.dtype).eps if norm.eps is None else norm.eps
            return add_rms_norm_ref(x, residual, norm.weight, eps)
        return add_layer_norm_ref(x, residual, norm.weight, norm.bias, norm.eps)

    def converted(self) -> nn.Module:
        return self.norm


def _training_form(module: nn.Module) -> nn.Module | None:
    if isinstance(module, Int8Linear):
        return FakeQuantLinear.from_int8(module)
    if isinstance(module, (Sparse24Linear, CSRLinear)):
        return MaskedLinear(module)
    if isinstance(module, BinaryLinear):
        weight = signs(module.w_bits, module.in_features).float() * module.w_scale[:, None]
        return BinarizedLinear(linear_from(weight, module.bias), module.binarize_x)
    if isinstance(module, (AddLayerNorm, AddRMSNorm)):
        return TrainingNorm(module)
    return None


def trainable(model: nn.Module) -> nn.Module:
    """Swaps the kernel modules of `model` for their training layers, in place; returns the model."""
    for name, module in list(model.named_modules()):
        if not name:
            continue
        replacement = _training_form(module)
        if replacement is not None:
            set_submodule(model, name, replacement)
    return model
