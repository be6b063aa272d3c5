"""Which implementation an op runs: PRUNQ_BACKEND forces one, for tests and benchmarks.

  reference  plain PyTorch, on any device
  native     prunq._C on CPU tensors, prunq._cuda on CUDA tensors
  triton     the Triton kernel (on CPU tensors only with TRITON_INTERPRET=1)
  cuda       prunq._cuda
Unset, each op picks the fastest path it has for the device and shape. The variable is read
once, at import (reading the environment on every call costs a microsecond at decode sizes);
`use_backend` changes the choice at run time.
"""

from __future__ import annotations

import contextlib
import functools
import os

BACKENDS = ("reference", "native", "triton", "cuda")


def _validated(value: str | None) -> str | None:
    if value and value not in BACKENDS:
        raise ValueError(f"PRUNQ_BACKEND={value!r}: expected one of {', '.join(BACKENDS)}")
    return value or None


_forced = _validated(os.environ.get("PRUNQ_BACKEND"))


def forced_backend() -> str | None:
    """The path every op must take, or None to let each op choose."""
    return _forced


@contextlib.contextmanager
def use_backend(name: str | None):
    """Force `name` (one of BACKENDS, or None for automatic) inside the block."""
    global _forced
    previous, _forced = _forced, _validated(name)
    try:
        yield
    finally:
        _forced = previous


@functools.cache
def triton_usable() -> tuple[bool, str]:
    """Whether Triton kernels can run here, and if not, why (decided once per process)."""
    try:
        import triton  # noqa: F401
    except ImportError as error:
        return False, f"triton is not installed ({error})"
    import torch

    if torch.cuda.is_available():
        return True, "CUDA device"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True, "interpreter (TRITON_INTERPRET=1), CPU tensors"
    return False, "no CUDA device; set TRITON_INTERPRET=1 to run Triton kernels on CPU tensors"
