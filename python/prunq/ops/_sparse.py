"""What the sparse linear ops (sparse24, csr) share, and the binary ones in part: the dtypes
they take and the checks of x, the values' dtype, w_scale and bias, which are the same whatever
the layout."""

from __future__ import annotations

import math

import torch

FLOAT_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
VALUE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2, torch.int8: 3}  # as prunq._C numbers them


def check_x_and_values(x, values) -> None:
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x: expected float32, bfloat16 or float16, got {x.dtype}")
    if x.dim() == 0:
        raise ValueError("x: expected at least one dimension")
    if values.dtype not in VALUE_CODES:
        raise TypeError(f"values: expected float32, bfloat16, float16 or int8, got {values.dtype}")


def check_channel_vectors(n: int, **tensors) -> None:
    """Each tensor given (None skipped) float32 of shape (n,): one value per output channel."""
    for name, t in tensors.items():
        if t is None:
            continue
        if t.dtype != torch.float32:
            raise TypeError(f"{name}: expected float32, got {t.dtype}")
        if t.shape != (n,):
            raise ValueError(f"{name}: expected shape ({n},), got {tuple(t.shape)}")


def check_scale_and_bias(values, bias, w_scale, n: int, n_name: str) -> None:
    """w_scale [n] float32 with int8 values and none with float ones; bias [n] float32 or None."""
    if (values.dtype == torch.int8) != (w_scale is not None):
        raise ValueError(f"w_scale: expected [{n_name}] float32 with int8 values, and none with float values")
    check_channel_vectors(n, bias=bias, w_scale=w_scale)


def check_devices(x, **tensors) -> None:
    for name, t in tensors.items():
        if t is not None and t.device != x.device:
            raise ValueError(f"{name}: expected a tensor on {x.device} like x, got {t.device}")


def dense_linear_ref(x, w, bias, w_scale):
    """The references' last step: x @ (w * w_scale[:, None]).T + bias in float64, cast to x's dtype."""
    w = w.double()
    if w_scale is not None:
        w = w * w_scale.double()[:, None]
    y = x.double() @ w.T
    if bias is not None:
        y = y + bias.double()
    return y.to(x.dtype)


def rows(x: torch.Tensor) -> torch.Tensor:
    """x [..., K] as [M, K]."""
    return x.reshape(math.prod(x.shape[:-1]), x.shape[-1])


# The modules' short road (see _eager): their buffers were checked when built or loaded, so an eager
# call reads them in place where they still are what the kernel takes.


def direct_operands(*tensors) -> bool:
    """Whether each tensor is contiguous: readable through its data pointer as it is."""
    for t in tensors:  # a loop, not all(...): a generator costs more than the checks
        if not t.is_contiguous():
            return False
    return True


def float32_operands(*tensors) -> bool:
    """Whether each tensor given (None skipped) is a contiguous float32 one."""
    for t in tensors:
        if t is not None and (t.dtype != torch.float32 or not t.is_contiguous()):
            return False
    return True
