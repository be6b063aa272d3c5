"""CSRLinear: a swap-in for nn.Linear whose weight is unstructured-sparse, stored in CSR (the
non-zeros, their columns, and where each row's begin). With int8=True the values are int8 with
one scale per output channel (weight-only: activations stay float).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..formats import csr as layout
from ..formats.int8 import quantize_weight
from ..ops import _eager
from ._sparse_linear import SparseLinearBase, value_dtype
from ..ops.csr import direct_linear



class CSRLinear(SparseLinearBase):
    """y = x @ W.T + bias, W [out_features, in_features] in CSR (times w_scale per row for int8
    values). state_dict: crow_indices [N + 1] and col_indices [nnz] int32, values [nnz], w_scale
    [N] (int8 values), bias [N] float32. The indices are checked once, when the module is built or
    loaded, not on each call."""

    def __init__(self, in_features: int, out_features: int, nnz: int = 0, bias: bool = True,
                 values_dtype: str = "float32", device=None):
        super().__init__()
        dtype = value_dtype(values_dtype)
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("crow_indices", torch.zeros(out_features + 1, dtype=torch.int32, device=device))
        self.register_buffer("col_indices", torch.zeros(nnz, dtype=torch.int32, device=device))
        self.register_buffer("values", torch.zeros(nnz, dtype=dtype, device=device))
        self.register_buffer("w_scale", torch.ones(out_features, device=device) if values_dtype == "int8" else None)
        self.register_buffer("bias", torch.zeros(out_features, device=device) if bias else None)
        self.register_load_state_dict_post_hook(CSRLinear._check_after_load)

    @classmethod
    def from_linear(cls, linear: nn.Linear, int8: bool = False) -> CSRLinear:
        """Keeps the zero pattern linear's weight has (prune it first: prunq.compress.prune)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear: expected an nn.Linear, got {type(linear).__name__}")
        w = linear.weight.detach()
        scale = None
        if int8:
            w, scale = quantize_weight(w.float())
        crow, col, values = layout.from_dense(w)
        module = cls(linear.in_features, linear.out_features, values.shape[0], linear.bias is not None,
                     str(values.dtype).removeprefix("torch."), w.device)
        module.crow_indices.copy_(crow)
        module.col_indices.copy_(col)
        module.values.copy_(values)
        if scale is not None:
            module.w_scale.copy_(scale)
        if linear.bias is not None:
            module.bias.copy_(linear.bias.detach().float())
        return module

    @staticmethod
    def _check_after_load(module, incompatible_keys) -> None:  # a named function: modules stay picklable
        layout.check(module.crow_indices, module.col_indices, module.values, module.out_features, module.in_features)

    def config(self) -> dict:
        return {"type": "CSRLinear", "in_features": self.in_features, "out_features": self.out_features,
                "nnz": self.values.shape[0], "bias": self.bias is not None,
                "values_dtype": str(self.values.dtype).removeprefix("torch.")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _eager.direct(x, self.crow_indices, self.col_indices, self.values, self.bias, self.w_scale):
            y = direct_linear(x, self.crow_indices, self.col_indices, self.values, self.in_features, self.out_features,
                              self.bias, self.w_scale)
            if y is not None:
                return y
        return ops.csr_linear(x, self.crow_indices, self.col_indices, self.values, self.out_features, self.bias,
                              self.w_scale)

    def extra_repr(self) -> str:
        total = self.in_features * self.out_features
        sparsity = 1 - self.values.shape[0] / total if total else 0.0
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"values={str(self.values.dtype).removeprefix('torch.')}, sparsity={sparsity:.1%}")
