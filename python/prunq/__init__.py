"""prunq: kernels for compressed Transformer inference in PyTorch."""

__version__ = "0.1.0"

from . import nn, ops  # noqa: E402

__all__ = ["__version__", "nn", "ops"]
