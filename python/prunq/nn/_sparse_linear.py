"""What the packed linear modules (Sparse24Linear, CSRLinear, BinaryLinear) share: the value
dtypes they store and how a model's cast reaches them."""

from __future__ import annotations

import torch
from torch import nn

VALUE_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "int8": torch.int8}


def value_dtype(name: str) -> torch.dtype:
    if name not in VALUE_DTYPES:
        raise ValueError(f"values_dtype: expected one of {', '.join(VALUE_DTYPES)}, got {name!r}")
    return VALUE_DTYPES[name]


class SparseLinearBase(nn.Module):
    """A model's cast (model.half(), .to(bfloat16)) reaches the float values; w_scale and bias
    stay float32, and integer buffers are not cast."""

    w_scale: torch.Tensor | None
    bias: torch.Tensor | None

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self.w_scale is not None:
            self.w_scale = self.w_scale.float()
        if self.bias is not None:
            self.bias = self.bias.float()
        return self
