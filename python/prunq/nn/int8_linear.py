"""Int8Linear: a swap-in for nn.Linear with int8 weights (per-channel symmetric scales).

mode="dynamic": activations are quantized per token on the fly and the product runs on int8
(W8A8). mode="weight_only": activations stay in floating point, weights are int8 (the decode
case: a quarter of the fp32 weight bytes). activation="gelu" applies the exact GELU to the
output inside the kernel's epilogue (dynamic mode; compress sets it for BERT's intermediate layer).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..formats.int8 import quantize_weight, vnni_pack

MODES = ("dynamic", "weight_only")
ACTIVATIONS = ("none", "gelu")


class Int8Linear(nn.Module):
    """y = x @ (w_q * w_scale[:, None]).T + bias. state_dict: w_q [N, K] int8, w_scale [N] fp32,
    bias [N] fp32 (if any). The CPU kernel's packed copy of w_q is rebuilt after loading a
    state_dict or moving the module, never saved."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, mode: str = "dynamic", device=None,
                 activation: str = "none"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if activation not in ACTIVATIONS or (activation != "none" and mode != "dynamic"):
            raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)} (gelu in dynamic mode only), "
                             f"got {activation!r} in mode {mode!r}")
        self.in_features, self.out_features, self.mode, self.activation = in_features, out_features, mode, activation
        self.register_buffer("w_q", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("w_scale", torch.zeros(out_features, dtype=torch.float32, device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float32, device=device) if bias else None)
        self.register_buffer("w_packed", None, persistent=False)
        self.register_buffer("w_colsum", None, persistent=False)
        self._repack()
        self.register_load_state_dict_post_hook(lambda module, _: module._repack())

    @classmethod
    def from_linear(cls, linear: nn.Linear, mode: str = "dynamic") -> Int8Linear:
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear: expected an nn.Linear, got {type(linear).__name__}")
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, mode, linear.weight.device)
        w_q, w_scale = quantize_weight(linear.weight)
        module.w_q.copy_(w_q)
        module.w_scale.copy_(w_scale)
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach().float())
        module._repack()
        return module

    def config(self) -> dict:
        """The constructor arguments that rebuild this module's shape (for prunq.load)."""
        return {"type": "Int8Linear", "in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "mode": self.mode, "activation": self.activation}

    def _repack(self) -> None:
        self.w_packed, self.w_colsum = vnni_pack(self.w_q) if self.mode == "dynamic" else (None, None)

    def _apply(self, fn, recurse=True):
        # Scales and bias stay fp32 when the model is cast (model.half() or .to(bfloat16)); the
        # packed weight follows the device.
        super()._apply(fn, recurse)
        self.w_scale = self.w_scale.float()
        if self.bias is not None:
            self.bias = self.bias.float()
        self._repack()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "weight_only":
            return ops.int8_weight_only_linear(x, self.w_q, self.w_scale, self.bias)
        return ops.int8_dynamic_linear_prepacked(x, self.w_q, self.w_packed, self.w_colsum, self.w_scale, self.bias,
                                                 self.activation)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, mode={self.mode}"
                + (f", activation={self.activation}" if self.activation != "none" else ""))
