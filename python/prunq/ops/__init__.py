"""prunq's ops, also reachable as torch.ops.prunq.*. One module per op family."""

from .binary import binary_linear, binary_matmul, pack_bits
from .csr import csr_linear
from .int8_gemm import (int8_dynamic_linear_prepacked, int8_linear, int8_linear_prepacked, int8_weight_only_linear,
                        int8_weight_only_linear_prepacked, quantize_per_token)
from .layernorm import add_layer_norm, add_rms_norm
from .sparse24 import sparse24_linear, sparse24_pack

__all__ = ["add_layer_norm", "add_rms_norm", "binary_linear", "binary_matmul", "csr_linear", "int8_dynamic_linear_prepacked", "int8_linear", "int8_linear_prepacked",
           "int8_weight_only_linear", "int8_weight_only_linear_prepacked", "quantize_per_token", "pack_bits",
           "sparse24_linear", "sparse24_pack"]
