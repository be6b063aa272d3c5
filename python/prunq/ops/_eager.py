"""The short road for eager CPU calls.

torch.ops dispatch into a kernel registered from Python costs 6 to 14 us a call, more than a
one-row LayerNorm or a decode-size GEMM takes. So the public ops and the modules, called
eagerly on plain CPU tensors, call prunq._C themselves, with checks kept to what the kernel needs.
Everything else goes through torch.ops.prunq.* as before: torch.compile tracing, fake tensors
and other tensor subclasses, active dispatch or function modes, a PRUNQ_BACKEND that forces
another path, and any argument the short road does not take as it is (it then returns None and
the op's full checks raise the error a user should see). opcheck, fake kernels and compiled
graphs therefore see exactly the ops they saw before.
"""

from __future__ import annotations

import torch

from .. import _backend, _native

DTYPE_CODES = _native.DTYPE_CODES
# Tensor types whose data pointer is the data: plain tensors, and parameters (which only mark a
# tensor as trainable). Subclasses in general, fake tensors among them, take the op.
PLAIN = (torch.Tensor, torch.nn.Parameter)
_DIRECT_BACKENDS = (None, "native")


def direct(x, *others) -> bool:
    """Whether a call on x (and the optional tensors `others`, None or plain tensors) may skip
    torch.ops and run prunq._C's kernel itself."""
    if not (type(x) in PLAIN and not torch.compiler.is_compiling() and x.is_cpu
            and _native.C is not None and _backend.forced_backend() in _DIRECT_BACKENDS
            and not torch._C._len_torch_dispatch_stack() and not torch._C._is_torch_function_mode_enabled()):
        return False
    for t in others:  # a loop, not all(...): a generator costs more than these checks
        if t is not None and type(t) not in PLAIN:
            return False
    return True


def plain_cpu(t) -> bool:
    """A contiguous CPU tensor (or parameter) of no other subclass: safe to read through its data
    pointer."""
    return type(t) in PLAIN and t.is_cpu and t.is_contiguous()


def empty_output(shape, dtype: torch.dtype, like: torch.Tensor | None = None) -> torch.Tensor:
    """A CPU output: empty_like(like) where that has the shape (the cheapest allocation torch
    has), huge-page advised from _native.HUGE_PAGE_OUTPUT_BYTES as _native.empty_output does."""
    if like is not None and like.numel() * like.element_size() < _native.HUGE_PAGE_OUTPUT_BYTES:
        return torch.empty_like(like)
    return _native.empty_output(shape, dtype, torch.device("cpu"))
