"""BinaryLinear: a swap-in for nn.Linear whose weight is binary, sign(W) * w_scale with one
scale per output channel (BinaryConnect), stored as packed bits, 32 to an int32 word (1/32 of
fp32's bytes). With binarize_x=True the activations are binarized too, per row, scaled by
their mean |x| (XNOR-Net), and the product runs as XOR and popcount.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import _native, ops
from ..formats import bits as layout
from ..ops import _eager
from ..ops.binary import columns, direct_linear
from ._sparse_linear import SparseLinearBase


class BinaryLinear(SparseLinearBase):
    """y = x' @ (sign(W) * w_scale[:, None]).T + bias, x' = sign(x) * mean |x| per row with
    binarize_x, else x. state_dict: w_bits [N, ceil(K / 32)] int32, w_scale [N] and bias [N]
    float32. On the CPU the module also keeps w_columns, the weight bits transposed for the
    many-row kernel, derived when it is built or loaded (never saved)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, binarize_x: bool = True, device=None):
        super().__init__()
        if in_features < 1 or out_features < 0:
            raise ValueError(f"in_features: expected >= 1 (and out_features >= 0), got {in_features}, {out_features}")
        self.in_features, self.out_features, self.binarize_x = in_features, out_features, bool(binarize_x)
        self.register_buffer("w_bits", torch.zeros(out_features, layout.words(in_features), dtype=torch.int32,
                                                   device=device))
        self.register_buffer("w_scale", torch.ones(out_features, device=device))
        self.register_buffer("bias", torch.zeros(out_features, device=device) if bias else None)
        self.register_buffer("w_columns", None, persistent=False)
        self.register_load_state_dict_post_hook(BinaryLinear._derive_columns)

    @classmethod
    def from_linear(cls, linear: nn.Linear, binarize_x: bool = True) -> BinaryLinear:
        """w_scale = mean |W| of each output channel (the L1-optimal scale for sign(W))."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear: expected an nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach().float()
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, binarize_x, w.device)
        module.w_bits.copy_(layout.pack(w))
        module.w_scale.copy_(w.abs().mean(1))
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach().float())
        module._derive_columns(module, None)
        return module

    @staticmethod
    def _derive_columns(module, incompatible_keys) -> None:  # a named function: modules stay picklable
        module.w_columns = columns(module.w_bits) if module.w_bits.is_cpu and _native.C is not None else None

    def config(self) -> dict:
        return {"type": "BinaryLinear", "in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "binarize_x": self.binarize_x}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _eager.direct(x, self.w_bits, self.w_scale, self.bias):
            y = direct_linear(x, self.w_bits, self.w_scale, self.bias, self.binarize_x, self.in_features,
                              self.w_columns)
            if y is not None:
                return y
        return ops.binary_linear(x, self.w_bits, self.w_scale, self.bias, self.binarize_x)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"binarize_x={self.binarize_x}")
