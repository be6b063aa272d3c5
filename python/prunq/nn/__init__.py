"""Swap-in modules: compressed replacements for nn.Linear and fused norm blocks."""

from .int8_linear import Int8Linear
from .layernorm import AddLayerNorm, AddRMSNorm

__all__ = ["AddLayerNorm", "AddRMSNorm", "Int8Linear"]
