"""Unstructured sparse weights in CSR: W [N, K] as crow_indices [N + 1] (int32, starting at 0,
non-decreasing), col_indices [nnz] (int32, strictly increasing within each row, in [0, K)) and
values [nnz] (float, or int8 with one scale per row). The arrays are what is saved; a kernel that
wants another layout derives it."""

from __future__ import annotations

import torch

from .. import _native
from . import _passed


def from_dense(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(crow_indices, col_indices, values) of the non-zeros of w [N, K]."""
    if w.dim() != 2:
        raise ValueError(f"w: expected [N, K], got shape {tuple(w.shape)}")
    nonzero = w != 0
    crow = torch.zeros(w.shape[0] + 1, dtype=torch.int32, device=w.device)
    crow[1:] = nonzero.sum(1).cumsum(0)
    rows, cols = nonzero.nonzero(as_tuple=True)
    return crow, cols.to(torch.int32), w[rows, cols].contiguous()


def to_dense(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, k: int) -> torch.Tensor:
    n = crow.shape[0] - 1
    rows = torch.repeat_interleave(torch.arange(n, device=crow.device), (crow[1:] - crow[:-1]).long())
    dense = torch.zeros(n, k, dtype=values.dtype, device=values.device)
    dense[rows, col.long()] = values
    return dense


def check(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n: int, k: int) -> None:
    """ValueError or TypeError naming the argument unless the three arrays are a valid CSR matrix
    of shape [n, k]: a kernel reads col_indices as addresses, so none may be out of range."""
    for name, t in (("crow_indices", crow), ("col_indices", col)):
        if t.dtype != torch.int32:
            raise TypeError(f"{name}: expected int32, got {t.dtype}")
        if t.dim() != 1:
            raise ValueError(f"{name}: expected one dimension, got shape {tuple(t.shape)}")
    if crow.shape[0] != n + 1:
        raise ValueError(f"crow_indices: expected {n + 1} entries (out_features + 1), got {crow.shape[0]}")
    native = crow.is_cpu and col.is_cpu and _native.C is not None
    dense_crow, dense_col = (crow.contiguous(), col.contiguous()) if native else (crow, col)  # held while C++ reads
    if native and _native.C.csr_valid(dense_crow.data_ptr(), n, dense_col.data_ptr(), col.shape[0], k):
        # One pass in C++ (the check runs on every op call); what is left is the values' length.
        if values.dim() != 1 or values.shape[0] != col.shape[0]:
            raise ValueError(f"values: expected [{col.shape[0]}] (crow_indices[-1]), got shape {tuple(values.shape)}")
        return
    key = _passed.state((crow, col), values.shape, n, k)
    if _passed.passed(col, key):
        return
    _check_contents(crow, col, values, n, k)
    _passed.remember(col, key)


def _check_contents(crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor, n: int, k: int) -> None:
    if int(crow[0]) != 0:
        raise ValueError(f"crow_indices: expected to start at 0, got {int(crow[0])}")
    steps = crow[1:] - crow[:-1]
    if (steps < 0).any():
        row = int((steps < 0).nonzero()[0])
        raise ValueError(f"crow_indices: decreases at row {row}")
    nnz = int(crow[-1])
    if col.shape[0] != nnz:
        raise ValueError(f"col_indices: expected {nnz} entries (crow_indices[-1]), got {col.shape[0]}")
    if values.dim() != 1 or values.shape[0] != nnz:
        raise ValueError(f"values: expected [{nnz}] (crow_indices[-1]), got shape {tuple(values.shape)}")
    if nnz and (int(col.min()) < 0 or int(col.max()) >= k):
        raise ValueError(f"col_indices: expected values in [0, {k}) (x's K), got {int(col.min())} to {int(col.max())}")
    if nnz > 1:
        rows = torch.repeat_interleave(torch.arange(n, device=crow.device), steps.long())
        same_row = rows[1:] == rows[:-1]
        if (same_row & (col[1:] <= col[:-1])).any():
            at = int((same_row & (col[1:] <= col[:-1])).nonzero()[0]) + 1
            raise ValueError(f"col_indices: not strictly increasing within row {int(rows[at])} (entry {at})")
