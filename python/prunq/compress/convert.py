"""convert(model): the end of training-time compression. Every training layer (one that has a
`converted()` method: BinarizedLinear, FakeQuantLinear) is replaced by the kernel module it
stands for."""

from __future__ import annotations

import torch
from torch import nn

from .swap import set_submodule


def linear_from(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An nn.Linear holding copies of weight [out, in] and bias, in the weight's dtype."""
    linear = nn.Linear(weight.shape[1], weight.shape[0], bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        linear.weight.copy_(weight)
        if bias is not None:
            linear.bias.copy_(bias)
    return linear


class TrainingLinear(nn.Module):
    """What the training layers share: float shadow weights the optimizer updates, copied from the
    nn.Linear they replace, and that Linear rebuilt from them for the kernel module's from_linear."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = nn.Parameter(linear.weight.detach().clone())
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone())

    def trained_linear(self) -> nn.Linear:
        return linear_from(self.weight, self.bias)


def convert(model: nn.Module) -> nn.Module:
    """Replaces the training layers of `model` in place and returns it (the model itself if it
    is one). ValueError when the model holds none."""
    if hasattr(model, "converted"):
        return model.converted()
    names = [name for name, module in model.named_modules() if name and hasattr(module, "converted")]
    if not names:
        raise ValueError("model: holds no training layer to convert (see prunq.compress.binarize and prepare_qat)")
    for name in names:
        set_submodule(model, name, model.get_submodule(name).converted())
    return model
