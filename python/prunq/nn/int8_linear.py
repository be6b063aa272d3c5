"""Int8Linear: a swap-in for nn.Linear with int8 weights (per-channel symmetric scales).

mode="dynamic": activations are quantized per token on the fly and the product runs on int8
(W8A8). mode="weight_only": activations stay in floating point, weights are int8 (the decode
case: a quarter of the fp32 weight bytes). activation="gelu" applies the exact GELU to the
output inside the kernel's epilogue (dynamic mode; compress sets it for BERT's intermediate layer).

SmoothQuant (dynamic mode, from calibration statistics): activations of Transformers carry a few
outlier channels that inflate every token's quantization step. With input_absmax, the channels
are rescaled by s[k] = absmax_x[k]^alpha / absmax_w[k]^(1 - alpha): w's columns are multiplied by
s before quantization and x's columns by 1 / s (x_channel_scale) inside the quantization kernel,
which leaves x @ w.T unchanged and evens out the ranges both sides are quantized over.

weight_bits=4: w_q holds only the 16 levels -8..7 per channel (a signed scale: prunq.formats.int4)
and is saved as packed nibbles (state_dict key w_q4, half the bytes); in memory it stays int8 and
runs on the int8 kernels. On the AVX2 path its eager calls take the vpmaddubsw kernel that such
weights allow (prunq.ops.int8_gemm.direct_linear); elsewhere it is as fast as 8-bit weights.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..formats import int4
from ..formats.int8 import checked_weight_bits, quantize_weight, vnni_pack, weight_only_pack
from ..ops import _eager
from ..ops.int8_gemm import direct_linear

MODES = ("dynamic", "weight_only")
ACTIVATIONS = ("none", "gelu")
# What an eager CPU call straight into prunq._C is bound to (see _bind_direct).
_DIRECT_STATE = frozenset({"w_q", "w_packed", "w_colsum", "w_scale", "bias", "x_channel_scale", "activation", "mode"})


def smoothing_factors(input_absmax: torch.Tensor, w: torch.Tensor, alpha: float) -> torch.Tensor:
    """s[k] = input_absmax[k]^alpha / max_n |w[n, k]|^(1 - alpha); 1 for channels that are zero on
    either side, and kept within [1e-4, 1e4] so that neither side under- or overflows."""
    if input_absmax.shape != (w.shape[1],):
        raise ValueError(f"input_absmax: expected shape ({w.shape[1]},), got {tuple(input_absmax.shape)}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    x_max, w_max = input_absmax.float(), w.abs().amax(0)
    s = x_max.pow(alpha) / w_max.pow(1 - alpha)
    return torch.where((x_max > 0) & (w_max > 0), s, torch.ones_like(s)).clamp(1e-4, 1e4)


class Int8Linear(nn.Module):
    """y = x @ (w_q * w_scale[:, None]).T + bias. state_dict: w_q [N, K] int8, w_scale [N] fp32,
    bias [N] fp32 (if any); with weight_bits=4, w_q4 [N, ceil(K / 2)] uint8 in place of w_q. The
    CPU kernel's packed copy of w_q is rebuilt after loading a state_dict or moving the module,
    never saved."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, mode: str = "dynamic", device=None,
                 activation: str = "none", smooth: bool = False, weight_bits: int = 8):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
        if activation not in ACTIVATIONS or (activation != "none" and mode != "dynamic"):
            raise ValueError(f"activation: expected one of {', '.join(ACTIVATIONS)} (gelu in dynamic mode only), "
                             f"got {activation!r} in mode {mode!r}")
        if smooth and mode != "dynamic":
            raise ValueError(f"smooth: channel smoothing needs mode='dynamic', got mode {mode!r}")
        self.in_features, self.out_features, self.mode, self.activation = in_features, out_features, mode, activation
        self.weight_bits = checked_weight_bits(weight_bits)
        self.register_buffer("w_q", torch.zeros(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("w_scale", torch.zeros(out_features, dtype=torch.float32, device=device))
        self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float32, device=device) if bias else None)
        self.register_buffer("x_channel_scale", torch.ones(in_features, device=device) if smooth else None)
        self.register_buffer("w_packed", None, persistent=False)
        self.register_buffer("w_colsum", None, persistent=False)
        self._repack()
        self.register_load_state_dict_post_hook(Int8Linear._repack_after_load)

    @classmethod
    def from_linear(cls, linear: nn.Linear, mode: str = "dynamic", input_absmax: torch.Tensor | None = None,
                    alpha: float = 0.5, weight_bits: int = 8, input_gram: torch.Tensor | None = None) -> Int8Linear:
        """input_absmax [in_features]: max |x[:, k]| over calibration inputs, for SmoothQuant with
        migration strength alpha (dynamic mode only). input_gram [in_features, in_features]: E[x x^T]
        over calibration inputs, with weight_bits=4: the 4-bit levels chosen by GPTQ for those
        inputs instead of each weight's nearest (prunq.formats.int4.quantize_gptq)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear: expected an nn.Linear, got {type(linear).__name__}")
        smooth = input_absmax is not None
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, mode, linear.weight.device,
                     smooth=smooth, weight_bits=weight_bits)
        w = linear.weight.detach().float()
        if smooth:
            s = smoothing_factors(input_absmax.to(w.device), w, alpha)
            w = w * s
            module.x_channel_scale.copy_(1 / s)
            if input_gram is not None:  # the weight now meets x / s
                s = s.double().to(input_gram.device)
                input_gram = input_gram.double() / (s[:, None] * s[None, :])
        w_q, w_scale = quantize_weight(w, weight_bits, input_gram)
        module.w_q.copy_(w_q)
        module.w_scale.copy_(w_scale)
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach().float())
        module._repack()
        return module

    def config(self) -> dict:
        """The constructor arguments that rebuild this module's shape (for prunq.load)."""
        return {"type": "Int8Linear", "in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias is not None, "mode": self.mode, "activation": self.activation,
                "smooth": self.x_channel_scale is not None, "weight_bits": self.weight_bits}

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self.weight_bits == 4:
            destination[prefix + "w_q4"] = int4.pack(destination.pop(prefix + "w_q"))

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        if self.weight_bits == 4:
            if state_dict.pop(prefix + "w_q", None) is not None:  # 8-bit weights: not what this module holds
                unexpected_keys.append(prefix + "w_q")
            packed = state_dict.pop(prefix + "w_q4", None)
            shape = (self.out_features, (self.in_features + 1) // 2)
            if packed is not None and (packed.dtype != torch.uint8 or tuple(packed.shape) != shape):
                error_msgs.append(f"{prefix}w_q4: expected {shape} uint8 (4-bit weights, two to a byte), got "
                                  f"{tuple(packed.shape)} {packed.dtype}")
            elif packed is not None:
                state_dict[prefix + "w_q"] = int4.unpack(packed, self.in_features)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)
        if self.weight_bits == 4 and prefix + "w_q" in missing_keys:
            missing_keys[missing_keys.index(prefix + "w_q")] = prefix + "w_q4"

    @staticmethod
    def _repack_after_load(module, incompatible_keys) -> None:  # a named function: modules stay picklable
        module._repack()

    def _repack(self) -> None:
        if self.mode == "dynamic":
            self.w_packed, self.w_colsum = vnni_pack(self.w_q)
        else:
            self.w_packed, self.w_colsum = weight_only_pack(self.w_q), None

    def _bind_direct(self):
        """Eager CPU calls skip torch.ops through a function holding these very tensors (see
        prunq.ops.int8_gemm.direct_linear), made on the first call after anything it holds was
        assigned (__setattr__); copies and pickles make their own."""
        direct = self.__dict__["_direct"] = direct_linear(
            self.w_q, self.w_packed, self.w_colsum, self.w_scale, self.bias, self.activation, self.x_channel_scale,
            self.mode == "weight_only")
        return direct

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name in _DIRECT_STATE:
            self.__dict__.pop("_direct", None)

    def __getstate__(self):
        return {key: value for key, value in self.__dict__.items() if key != "_direct"}

    def _apply(self, fn, recurse=True):
        # Scales and bias stay fp32 when the model is cast (model.half() or .to(bfloat16)); the
        # packed weight follows the device.
        super()._apply(fn, recurse)
        self.w_scale = self.w_scale.float()
        if self.bias is not None:
            self.bias = self.bias.float()
        if self.x_channel_scale is not None:
            self.x_channel_scale = self.x_channel_scale.float()
        self._repack()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _eager.direct(x):
            direct = self.__dict__.get("_direct", False)
            if direct is False:
                direct = self._bind_direct()
            y = None if direct is None else direct(x)
            if y is not None:
                return y
        if self.mode == "weight_only":
            return ops.int8_weight_only_linear_prepacked(x, self.w_q, self.w_packed, self.w_scale, self.bias)
        return ops.int8_dynamic_linear_prepacked(x, self.w_q, self.w_packed, self.w_colsum, self.w_scale, self.bias,
                                                 self.activation, self.x_channel_scale)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, mode={self.mode}"
                + (f", activation={self.activation}" if self.activation != "none" else "")
                + (", smooth=True" if self.x_channel_scale is not None else "")
                + (", weight_bits=4" if self.weight_bits == 4 else ""))
