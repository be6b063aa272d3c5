"""prunq: kernels for compressed Transformer inference in PyTorch."""

__version__ = "0.1.0"

from . import nn, ops  # noqa: E402
from . import compress  # noqa: E402  # callable: prunq.compress(model, recipe); also holds prune and the passes
from .serialize import load, save  # noqa: E402

__all__ = ["__version__", "compress", "load", "nn", "ops", "save"]
