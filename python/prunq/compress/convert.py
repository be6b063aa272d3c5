"""convert(model): the end of training-time compression. Every training layer (one that has a
`converted()` method: BinarizedLinear, FakeQuantLinear) is replaced by the kernel module it
stands for."""

from __future__ import annotations

from torch import nn

from .swap import set_submodule


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
