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


# int8_linear against its float64 reference: the int32 dot product is exact; the epilogue
# (acc * x_scale * w_scale + bias) runs in fp32, where acc itself rounds once |acc| > 2^24, so a
# few fp32 ulp of relative error, plus the rounding of a 16-bit output.
INT8_EPILOGUE = {
    torch.float32: dict(rtol=4e-7 * 8, atol=1e-6),
    torch.bfloat16: dict(rtol=2**-7, atol=1e-6),
    torch.float16: dict(rtol=2**-10, atol=1e-6),
}

# int8_weight_only_linear against its fp32 reference: both sum K products in fp32 in different
# orders and apply the scale at different points, so the error grows like sqrt(K) ulp of the
# largest partial sum; relative to the output's scale, 1e-4 covers K up to tens of thousands.
WEIGHT_ONLY = {
    torch.float32: dict(rtol=1e-4, atol=1e-4),
    torch.bfloat16: dict(rtol=2**-7, atol=1e-3),
    torch.float16: dict(rtol=2**-10, atol=1e-3),
}

# W8A8 against float nn.Linear: torchao's bar for int8 linear layers is an SQNR above 20 dB.
MIN_SQNR_DB = 20.0

# The GELU epilogue against GELU of the float64 reference: the kernels use std::erf (scalar
# paths) or a rational approximation of erf a few ulp from it (AVX-512), on top of the epilogue's
# own rounding.
GELU_EPILOGUE = {
    torch.float32: dict(rtol=1e-5, atol=1e-5),
    torch.bfloat16: dict(rtol=1.6e-2, atol=1e-5),
    torch.float16: dict(rtol=2e-3, atol=1e-5),
}

# binary_linear against its float64 reference. XNOR-Net: the +-1 dot product is exact; alpha =
# mean |x| and the epilogue run in fp32 (a few ulp), plus the rounding of a 16-bit output.
# BinaryConnect sums K terms of x in fp32 (as 2 * (sum where the bit is set) - (sum of the row)),
# an error like sqrt(K) ulp of sum |x|: at K = 4099 and unit-normal x, under 1e-3 absolute.
BINARY = {
    torch.float32: dict(rtol=1e-5, atol=1e-3),
    torch.bfloat16: dict(rtol=2**-7, atol=1e-2),
    torch.float16: dict(rtol=2**-10, atol=1e-2),
}
