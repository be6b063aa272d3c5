"""Swap-in modules: compressed replacements for nn.Linear and fused norm blocks."""

from .layernorm import AddLayerNorm, AddRMSNorm

__all__ = ["AddLayerNorm", "AddRMSNorm"]
