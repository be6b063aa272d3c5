"""Swap-in modules for a residual add followed by LayerNorm or RMSNorm.

    out, sum = AddLayerNorm.from_norm(layer_norm)(x, residual)

computes sum = x + residual and out = layer_norm(sum) in one kernel. Parameters keep the names
of the module they replace (weight, bias), so the original's state_dict loads as it is.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..ops import _eager
from ..ops.layernorm import check_direct, run_direct


class _DirectNorm(nn.Module):
    """Checks weight and bias once for eager CPU calls that skip torch.ops
    (prunq.ops.layernorm.check_direct). Assigning either, or moving or casting the module, checks
    them again on the next call, and so does a new data pointer under either (`.data =`); a call
    the short road does not take goes through the op."""

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name in ("weight", "bias"):
            self.__dict__.pop("_direct", None)

    def _apply(self, fn, recurse=True):
        self.__dict__.pop("_direct", None)
        return super()._apply(fn, recurse)

    def __getstate__(self):
        return {key: value for key, value in self.__dict__.items() if key != "_direct"}

    def _run_direct(self, x, residual, eps, rms):
        """(out, sum) from prunq._C, or None where the call must take the op."""
        bound = self.__dict__.get("_direct")
        if bound is None:
            if not _eager.direct(x):
                return None
            weight, bias = self.weight, getattr(self, "bias", None)
            checked = check_direct(weight, bias)
            if checked is None:
                return None
            bound = self.__dict__["_direct"] = (weight, bias, 0 if weight is None else weight.data_ptr(),
                                                0 if bias is None else bias.data_ptr(), checked)
        elif not _eager.direct(x):
            return None
        weight, bias, weight_ptr, bias_ptr, checked = bound
        if (weight is not None and weight.data_ptr() != weight_ptr) or (bias is not None and bias.data_ptr() != bias_ptr):
            self.__dict__.pop("_direct")  # `.data =` put new memory under a parameter: check it again
            return None
        return run_direct(x, residual, weight_ptr, bias_ptr, checked, eps, rms)


def _copy_param(param: torch.Tensor | None) -> nn.Parameter | None:
    return None if param is None else nn.Parameter(param.detach().clone(), requires_grad=param.requires_grad)


class AddLayerNorm(_DirectNorm):
    """sum = x + residual; out = LayerNorm(sum) over the last dimension. forward -> (out, sum)."""

    def __init__(self, hidden_size: int, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.hidden_size = hidden_size
        self.eps = eps
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(hidden_size, **factory)) if elementwise_affine else None
        self.bias = nn.Parameter(torch.zeros(hidden_size, **factory)) if elementwise_affine and bias else None

    @classmethod
    def from_norm(cls, norm: nn.LayerNorm) -> AddLayerNorm:
        """The same LayerNorm (parameters copied), fused with the residual add before it."""
        if not isinstance(norm, nn.LayerNorm):
            raise TypeError(f"norm: expected an nn.LayerNorm, got {type(norm).__name__}")
        if len(norm.normalized_shape) != 1:
            raise ValueError(f"norm: expected a LayerNorm over one dimension, got normalized_shape {norm.normalized_shape}")
        fused = cls(norm.normalized_shape[0], eps=norm.eps, elementwise_affine=False)
        fused.weight = _copy_param(norm.weight)
        fused.bias = _copy_param(norm.bias)
        return fused

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        result = self._run_direct(x, residual, self.eps, False)
        return ops.add_layer_norm(x, residual, self.weight, self.bias, self.eps) if result is None else result

    def extra_repr(self) -> str:
        return (f"{self.hidden_size}, eps={self.eps}, elementwise_affine={self.weight is not None}, "
                f"bias={self.bias is not None}")


class AddRMSNorm(_DirectNorm):
    """sum = x + residual; out = RMSNorm(sum) over the last dimension. forward -> (out, sum).

    eps=None means torch.finfo(x.dtype).eps, as in nn.RMSNorm."""

    def __init__(self, hidden_size: int, eps: float | None = 1e-6, elementwise_affine: bool = True,
                 device=None, dtype=None):
        super().__init__()
        self.hidden_size = hidden_size
        self.eps = eps
        factory = {"device": device, "dtype": dtype}
        self.weight = nn.Parameter(torch.ones(hidden_size, **factory)) if elementwise_affine else None

    @classmethod
    def from_norm(cls, norm: nn.Module) -> AddRMSNorm:
        """From nn.RMSNorm, or an RMSNorm module of another library holding `weight` and `eps` or
        `variance_epsilon` (Hugging Face's Llama, Mistral, Qwen ...)."""
        weight = getattr(norm, "weight", None)
        if isinstance(norm, nn.RMSNorm):
            if len(norm.normalized_shape) != 1:
                raise ValueError(f"norm: expected an RMSNorm over one dimension, got normalized_shape {norm.normalized_shape}")
            hidden, eps = norm.normalized_shape[0], norm.eps
        elif isinstance(weight, torch.Tensor) and weight.dim() == 1 and (
                hasattr(norm, "variance_epsilon") or hasattr(norm, "eps")):
            hidden = weight.shape[0]
            eps = getattr(norm, "variance_epsilon", getattr(norm, "eps", None))
        else:
            raise TypeError(f"norm: expected nn.RMSNorm or an RMSNorm with a 1-D weight and eps, got {type(norm).__name__}")
        fused = cls(hidden, eps=eps, elementwise_affine=False)
        fused.weight = _copy_param(weight)
        return fused

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        eps = torch.finfo(x.dtype).eps if self.eps is None else self.eps
        result = self._run_direct(x, residual, eps, True)
        return ops.add_rms_norm(x, residual, self.weight, eps) if result is None else result

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, eps={self.eps}, elementwise_affine={self.weight is not None}"
