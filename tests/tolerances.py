"""Tolerances for float kernels, each with its reason. Integer kernels are compared exactly.

Norm kernels (add_layer_norm, add_rms_norm) against their fp32 reference: both normalize the
same rounded sum in fp32, so they differ only by fp32 summation order (a few ulp of fp32 in the
statistics) and, for 16-bit outputs, by the final rounding landing on the other side of a tie
(one ulp of the output dtype: 2^-8 relative for bf16, 2^-11 for fp16). Outputs are O(1) times
|weight| + |bias|, so an absolute floor of a few fp32 ulp of 1 covers values near zero.
"""

import torch

NORM = {
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.bfloat16: dict(rtol=2**-7, atol=1e-5),
    torch.float16: dict(rtol=2**-10, atol=1e-5),
}

# flash-attention's rule for float kernels: the kernel's error against an fp64 reference is at
# most this many times the error of PyTorch's own same-precision computation, plus the floor
# (for when PyTorch happens to be exact).
ERROR_VS_TORCH_FACTOR = 2.0
ERROR_FLOOR = {torch.float32: 1e-6, torch.bfloat16: 2**-9, torch.float16: 2**-12}

