"""CSRLinear: a swap-in for nn.Linear whose weight is unstructured-sparse, stored in CSR (the
non-zeros, their columns, and where each row's begin). With int8=True the values are int8 with
one scale per output channel (weight-only: activations stay float). Below the sparsity at which
the CSR kernel beats the dense GEMM on the CPU path in use, the module runs the dense GEMM on a
dense copy of the weight instead (what it saves stays CSR).
"""

from __future__ import annotations

import torch
from torch import nn

from .. import _native, ops
from ..formats import csr as layout
from ..formats.int8 import quantize_weight
from ..ops import _eager
from ..ops.csr import direct_linear
from ._buffers import read_tensors
from ._sparse_linear import SparseLinearBase, value_dtype

# Per prunq CPU path, the sparsity below which the dense GEMM runs: the lowest sparsity of
# `python -m bench.bench_csr`'s break-even table at which the CSR kernel beats nn.Linear fp32 at
# every shape (bench/RESULTS.md; Zen 5, each path with torch capped to the same instructions).
DENSE_BELOW = {"avx512": 0.5, "avx2": 0.7, "portable": 0.9}


def dense_below() -> float:
    """The break-even sparsity of the CPU path in use (prunq.info: "cpu path")."""
    return DENSE_BELOW[_native.C.active_isa()] if _native.C is not None else 0.0


class CSRLinear(SparseLinearBase):
    """y = x @ W.T + bias, W [out_features, in_features] in CSR (times w_scale per row for int8
    values). state_dict: crow_indices [N + 1] and col_indices [nnz] int32, values [nnz], w_scale
    [N] (int8 values), bias [N] float32. The indices are checked once, when the module is built or
    loaded, not on each call. Where the weight is sparser than dense_below() when the module is
    built or loaded, the CSR kernel runs; otherwise the dense GEMM on dense_weight, a buffer that
    is derived, never saved (extra_repr names the path)."""

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
        self.register_buffer("dense_weight", None, persistent=False)
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
        module._choose_path()
        return module

    @staticmethod
    def _check_after_load(module, incompatible_keys) -> None:  # a named function: modules stay picklable
        layout.check(module.crow_indices, module.col_indices, module.values, module.out_features, module.in_features)
        module._choose_path()

    def sparsity(self) -> float:
        total = self.in_features * self.out_features
        return 1 - self.values.shape[0] / total if total else 0.0

    def _choose_path(self) -> None:
        if self.sparsity() >= dense_below():
            self.dense_weight = None
            return
        w = layout.to_dense(self.crow_indices, self.col_indices, self.values, self.in_features)
        self.dense_weight = w.float() * self.w_scale[:, None] if self.w_scale is not None else w

    def config(self) -> dict:
        return {"type": "CSRLinear", "in_features": self.in_features, "out_features": self.out_features,
                "nnz": self.values.shape[0], "bias": self.bias is not None,
                "values_dtype": str(self.values.dtype).removeprefix("torch.")}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        crow, col, values, bias, w_scale, dense_weight = read_tensors(
            self, "crow_indices", "col_indices", "values", "bias", "w_scale", "dense_weight")
        if dense_weight is not None:
            return nn.functional.linear(x, dense_weight.to(x.dtype), None if bias is None else bias.to(x.dtype))
        if _eager.direct(x, crow, col, values, bias, w_scale):
            y = direct_linear(x, crow, col, values, self.in_features, self.out_features, bias, w_scale)
            if y is not None:
                return y
        return ops.csr_linear(x, crow, col, values, self.out_features, bias, w_scale)

    def extra_repr(self) -> str:
        path = ("csr kernel" if self.dense_weight is None else
                f"dense GEMM (sparsity below the CSR kernel's break-even, {dense_below():.0%} here)")
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"values={str(self.values.dtype).removeprefix('torch.')}, sparsity={self.sparsity():.1%}, path={path}")
