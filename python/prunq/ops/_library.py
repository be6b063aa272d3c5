"""The `prunq` operator namespace (torch.ops.prunq), defined once for every op family.

Ops are declared with torch.library.define + per-device kernels rather than @custom_op: the
dispatch costs about 6 us a call instead of about 10, which counts at decode sizes.
"""

import torch

lib = torch.library.Library("prunq", "DEF")


# torch.library.triton_op arrived in torch 2.6. Without it, compiled code calls the ops' own
# dispatch, as eager code does.
HAS_TRITON_OP = hasattr(torch.library, "triton_op")


def define_triton_op(name: str, fn):
    """Registers `fn` (typed: its schema is read from the annotations), whose kernels launch
    through torch.library.wrap_triton, as the triton_op prunq::<name>, so that torch.compile
    traces into its Triton kernels. Returns the op, or fn itself where HAS_TRITON_OP is False
    (compiling_for_triton then never routes to it)."""
    if not HAS_TRITON_OP:
        return fn
    return torch.library.triton_op(f"prunq::{name}", fn, mutates_args=())


def compiling_for_triton(x: torch.Tensor, route) -> bool:
    """Whether a call should go to its family's triton_op: only while torch.compile traces a CUDA
    call whose route(device_type) is "triton". The compiler then sees the kernels themselves.
    Eager calls keep the op's own dispatch, about 8 us cheaper than a triton_op's. CPU tensors
    never go this way: the Triton interpreter's kernels cannot be traced."""
    return HAS_TRITON_OP and torch.compiler.is_compiling() and x.is_cuda and route(x.device.type) == "triton"
