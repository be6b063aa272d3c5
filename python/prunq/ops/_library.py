"""The `prunq` operator namespace (torch.ops.prunq), defined once for every op family.

Ops are declared with torch.library.define + per-device kernels rather than @custom_op: the
dispatch costs about 6 us a call instead of about 10, which counts at decode sizes.
"""

import functools

import torch

from .. import _native
from .._backend import forced_backend, triton_usable

lib = torch.library.Library("prunq", "DEF")


# torch.library.triton_op arrived in torch 2.6. Without it, compiled code calls the ops' own
# dispatch, as eager code does.
HAS_TRITON_OP = hasattr(torch.library, "triton_op")


def define_triton_op(name: str, fn):
    """Registers `fn` (typed: its schema is read from the annotations) as the triton_op
    prunq::<name>, its kernels launched through torch.library.wrap_triton, so that torch.compile
    traces into them. Returns the op, or fn itself where HAS_TRITON_OP is False
    (compiling_for_triton then never routes to it)."""
    if not HAS_TRITON_OP:
        return fn

    @functools.wraps(fn)
    def launching_wrapped(*args, **kwargs):
        from ..triton_kernels.layernorm import wrapping_launches

        with wrapping_launches():
            return fn(*args, **kwargs)

    return torch.library.triton_op(f"prunq::{name}", launching_wrapped, mutates_args=())


def compiling_for_triton(x: torch.Tensor, route) -> bool:
    """Whether a call should go to its family's triton_op: only while torch.compile traces a CUDA
    call whose route(device_type) is "triton". The compiler then sees the kernels themselves.
    Eager calls keep the op's own dispatch, about 8 us cheaper than a triton_op's. CPU tensors
    never go this way: the Triton interpreter's kernels cannot be traced."""
    return HAS_TRITON_OP and torch.compiler.is_compiling() and x.is_cuda and route(x.device.type) == "triton"


@torch.compiler.assume_constant_result
def native_or_triton(device_type: str, family: str) -> str:
    """The path of an op `family` with a prunq._C kernel and a Triton kernel (and no CUDA C++ one):
    "native" for CPU tensors, "triton" for CUDA ones, "reference" elsewhere, as PRUNQ_BACKEND
    allows. Constant within a compiled graph."""
    backend = forced_backend()
    if backend == "reference" or device_type not in ("cpu", "cuda"):
        return "reference"
    if backend == "cuda":
        raise RuntimeError(f"PRUNQ_BACKEND=cuda: the {family} family has no CUDA C++ kernel (Triton runs it)")
    if backend == "triton" or device_type == "cuda":
        return triton_or_reference(backend)
    return native_or_reference(backend)


def triton_or_reference(backend: str | None) -> str:
    """"triton" where Triton kernels run here, else "reference", or the error a forced backend asks for."""
    usable, reason = triton_usable()
    if usable:
        return "triton"
    if backend == "triton":
        raise RuntimeError(f"PRUNQ_BACKEND=triton: {reason}")
    return "reference"


def native_or_reference(backend: str | None) -> str:
    """"native" where prunq._C loaded, else "reference", or the error a forced backend asks for."""
    if _native.C is None:
        if backend == "native":
            raise RuntimeError(f"prunq._C is not available: {_native.load_error('_C')}")
        return "reference"
    return "native"
