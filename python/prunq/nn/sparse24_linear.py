"""Sparse24Linear: a swap-in for nn.Linear whose weight keeps two of every four consecutive
weights along K (2:4 semi-structured sparsity), stored packed: the kept values and their 4-bit
positions (prunq.formats.sparse24). With int8=True the values are int8 with one scale per output
channel (weight-only: activations stay float), 5/16 of a bf16 weight's bytes.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..formats import sparse24 as layout
from ..formats.int8 import quantize_weight
from ..ops import _eager
from ._buffers import read_tensors
from ._sparse_linear import SparseLinearBase, value_dtype
from ..ops.sparse24 import direct_linear



class Sparse24Linear(SparseLinearBase):
    """y = x @ W.T + bias, W = unpack(values, meta) (times w_scale[:, None] for int8 values).
    state_dict: values [N, Kp / 2], meta [N, Kp / 8] uint8, w_scale [N] (int8 values), bias [N]
    float32. The packing is checked once, when the module is built or loaded, not on each call."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, values_dtype: str = "float32",
                 device=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        kp = layout.padded_k(in_features)
        dtype = value_dtype(values_dtype)
        self.register_buffer("values", torch.zeros(out_features, kp // 2, dtype=dtype, device=device))
        # Positions 0 and 1 in every group: a valid packing of the zero weight.
        self.register_buffer("meta", torch.full((out_features, kp // 8), 0x44, dtype=torch.uint8, device=device))
        self.register_buffer("w_scale", torch.ones(out_features, device=device) if dtype == torch.int8 else None)
        self.register_buffer("bias", torch.zeros(out_features, device=device) if bias else None)
        self.register_load_state_dict_post_hook(Sparse24Linear._check_after_load)

    @classmethod
    def from_linear(cls, linear: nn.Linear, int8: bool = False, criterion: str = "magnitude",
                    input_norms: torch.Tensor | None = None) -> Sparse24Linear:
        """Prunes linear's weight to 2:4 first (criterion "magnitude", or "wanda" with the input
        channels' norms over calibration data) unless it already is; the Linear is not changed."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear: expected an nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach().float().clone()
        from ..compress.prune import prune  # compress imports the nn modules

        prune(w, pattern="2:4", criterion=criterion, input_norms=input_norms)
        values_dtype = "int8" if int8 else str(linear.weight.dtype).removeprefix("torch.")
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, values_dtype,
                     linear.weight.device)
        if int8:
            w_q, w_scale = quantize_weight(w)
            values, meta = layout.pack(w_q)
            module.w_scale.copy_(w_scale)
        else:
            values, meta = layout.pack(w.to(linear.weight.dtype))
        module.values.copy_(values)
        module.meta.copy_(meta)
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach().float())
        return module

    @staticmethod
    def _check_after_load(module, incompatible_keys) -> None:  # a named function: modules stay picklable
        layout.check(module.values, module.meta, module.in_features)

    def config(self) -> dict:
        return {"type": "Sparse24Linear", "in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "values_dtype": str(self.values.dtype).removeprefix("torch.")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values, meta, bias, w_scale = read_tensors(self, "values", "meta", "bias", "w_scale")
        if _eager.direct(x, values, meta, bias, w_scale):
            y = direct_linear(x, values, meta, bias, w_scale)
            if y is not None:
                return y
        return ops.sparse24_linear(x, values, meta, bias, w_scale)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"values={str(self.values.dtype).removeprefix('torch.')}")
