"""Swap-in modules: compressed replacements for nn.Linear and nn.Embedding, and fused norm blocks."""

from .binary_linear import BinaryLinear
from .csr_linear import CSRLinear
from .int4_embedding import Int4Embedding
from .int8_embedding import Int8Embedding
from .int8_linear import Int8Linear
from .layernorm import AddLayerNorm, AddRMSNorm
from .lowrank_linear import LowRankLinear
from .sparse24_linear import Sparse24Linear

__all__ = ["AddLayerNorm", "AddRMSNorm", "BinaryLinear", "CSRLinear", "Int4Embedding", "Int8Embedding", "Int8Linear", "LowRankLinear", "Sparse24Linear"]
