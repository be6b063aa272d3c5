"""The native modules, and the one door every tensor goes through on its way into them.

prunq._C (CPU) and prunq._cuda (CUDA) do not link libtorch: they take data pointers and sizes.
A pointer is only meaningful for a contiguous tensor of the expected dtype on the expected
device, so every tensor handed to a native kernel passes through `native_tensor` first.
Importing prunq never fails because a module is missing; `load_error` says why it is.
"""

from __future__ import annotations

import importlib
import os

import torch

_load_errors: dict[str, str] = {}


def _load(name: str):
    try:
        return importlib.import_module(f"prunq.{name}")
    except ImportError as error:
        _load_errors[name] = str(error)
        return None


C = _load("_C")
CUDA = _load("_cuda")

if C is not None and os.environ.get("PRUNQ_CPU_ISA"):
    # Lets a user cap the CPU path (portable, avx2, avx512), e.g. to compare them.
    C.set_active_isa(os.environ["PRUNQ_CPU_ISA"])

# Codes shared with csrc/common/dtypes.h.
DTYPE_CODES = {torch.float32: 0, torch.bfloat16: 1, torch.float16: 2}


def load_error(name: str) -> str | None:
    """Why prunq.<name> did not load, or None if it did."""
    return _load_errors.get(name)


def native_tensor(t: torch.Tensor, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`t` as a tensor a native kernel may read through its data pointer: checked for dtype and
    device, made contiguous (a copy) when it is not, so a strided or offset view is never read
    as if it were dense."""
    if t.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, got {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name}: expected a tensor on {device}, got {t.device}")
    return t.contiguous()


# glibc maps allocations from 32 MB up afresh on every call, and the OS then maps them in 4 KB
# page by page as a kernel first writes them: for a 90 MB GEMM output that was a fifth of the
# call, for a 4096 x 4096 LayerNorm's two outputs most of it. From that size, outputs are advised
# onto 2 MB pages (Linux transparent huge pages, where the system allows them).
HUGE_PAGE_OUTPUT_BYTES = 1 << 25


def empty_output(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """torch.empty for a native kernel's output; large CPU outputs are advised onto huge pages."""
    out = torch.empty(shape, dtype=dtype, device=device)
    if out.nbytes >= HUGE_PAGE_OUTPUT_BYTES and out.device.type == "cpu" and C is not None:
        C.advise_huge_pages(out.data_ptr(), out.nbytes)
    return out


def address(t: torch.Tensor | None) -> int:
    """Data pointer for a native call; 0 stands for an absent optional tensor."""
    return 0 if t is None else t.data_ptr()


def dtype_code(dtype: torch.dtype) -> int:
    return DTYPE_CODES[dtype]


def launch(device: torch.device, name: str, *args) -> None:
    """prunq._C.<name>(*args, thread count) for tensors on the CPU, prunq._cuda.<name>(*args,
    current stream) for tensors on a CUDA device: the last argument every native op takes."""
    if device.type == "cuda":
        with torch.cuda.device(device):
            getattr(CUDA, name)(*args, torch.cuda.current_stream(device).cuda_stream)
    else:
        getattr(C, name)(*args, torch.get_num_threads())
