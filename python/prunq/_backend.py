"""Which implementation an op runs: PRUNQ_BACKEND forces one, for tests and benchmarks.

  reference  plain PyTorch, on any device
  native     prunq._C on CPU tensors, prunq._cuda on CUDA tensors
  triton     the Triton kernel (on CPU tensors only with TRITON_INTERPRET=1)
  cuda       prunq._cuda
Unset, each op picks the fastest path it has for the device and shape.
"""

from __future__ import annotations

import os

BACKENDS = ("reference", "native", "triton", "cuda")


def forced_backend() -> str | None:
    value = os.environ.get("PRUNQ_BACKEND", "")
    if not value:
        return None
    if value not in BACKENDS:
        raise ValueError(f"PRUNQ_BACKEND={value!r}: expected one of {', '.join(BACKENDS)}")
    return value


def triton_usable() -> tuple[bool, str]:
    """Whether Triton kernels can run here, and if not, why."""
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
