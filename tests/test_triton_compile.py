"""Every Triton kernel compiled for the GPUs prunq targets (sm_80, sm_90a) by Triton's own
compiler, without a GPU: the interpreter the other tests run accepts code that real compilation
rejects (globals, fused rounding, dtype conversions)."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("triton", reason="the compile check needs Triton")


def test_every_triton_kernel_compiles_for_sm80_and_sm90a():
    """prunq.triton_kernels.aot compiles each kernel at each of its configs, checks the quantize
    kernel's PTX for fused multiply-adds on its rounding path, and bounds the spills."""
    env = {key: value for key, value in os.environ.items() if key != "TRITON_INTERPRET"}
    env.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # the GPU default: contraction must not matter
    result = subprocess.run([sys.executable, "-m", "prunq.triton_kernels.aot"], env=env, capture_output=True,
                            text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-4000:]
    assert " 0 failed" in result.stderr
