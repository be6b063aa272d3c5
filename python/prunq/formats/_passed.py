"""Which tensors passed a layout check, so that a module's weights are checked once rather than on
every call. This is for checks in torch (device tensors), which read every index and wait for the
device to answer. The verdict is kept on the tensor itself, keyed on its memory, version and
shape and on the check's other arguments, so any change to the tensor or its memory means a fresh
check."""

from __future__ import annotations

import torch

_ATTRIBUTE = "_prunq_layout_passed"
# Tensors whose data pointer and version describe their contents: plain tensors and parameters.
# Fake tensors and other subclasses are checked every time.
_PLAIN = (torch.Tensor, torch.nn.Parameter)


def state(tensors: tuple, *args) -> tuple | None:
    """What a check's verdict on `tensors` depends on; None where it cannot be told (a subclass,
    or an inference tensor, which keeps no version)."""
    if any(type(t) not in _PLAIN for t in tensors):
        return None
    try:
        return tuple((t.data_ptr(), t._version, t.shape, t.dtype, t.device) for t in tensors) + args
    except RuntimeError:
        return None


def passed(holder: torch.Tensor, key: tuple | None) -> bool:
    return key is not None and getattr(holder, _ATTRIBUTE, None) == key


def remember(holder: torch.Tensor, key: tuple | None) -> None:
    if key is not None:
        setattr(holder, _ATTRIBUTE, key)
