import os

import torch

# Without a GPU, Triton kernels run through Triton's interpreter on CPU tensors. The variable
# must be set before triton is first imported.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from prunq import _native  # noqa: E402

settings.register_profile("default", deadline=None, print_blob=True)
settings.load_profile("default")


def available_isas() -> list[str]:
    """The CPU paths this machine can run; on AVX-512 also "avx512-novnni", the path of AVX-512
    CPUs without VNNI (the CPU's VNNI masked)."""
    if _native.C is None:
        return []
    order = ["portable", "avx2", "avx512"]
    isas = order[: order.index(_native.C.best_isa()) + 1]
    return isas + ["avx512-novnni"] if "avx512" in isas else isas


@pytest.fixture(params=available_isas())
def cpu_isa(request):
    """Runs the test once per CPU path this machine supports."""
    previous = _native.C.active_isa()
    _native.C.set_active_isa(request.param.removesuffix("-novnni"))
    _native.C.set_avx512_vnni_enabled(not request.param.endswith("-novnni"))
    yield request.param
    _native.C.set_avx512_vnni_enabled(True)
    _native.C.set_active_isa(previous)


# Where tests run Triton kernels: on the GPU where there is one, else on CPU tensors through the
# interpreter (which is off where a GPU is present).
TRITON_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
