"""Linear algebra the one-shot compression methods share (SparseGPT pruning, GPTQ rounding)."""

from __future__ import annotations

import torch

DAMPING = 0.01  # of the Gram matrix's mean diagonal, added so that it can be inverted


def inverse_cholesky(gram: torch.Tensor) -> torch.Tensor:
    """The upper Cholesky factor of the damped Gram matrix's inverse, float64: going along K, row k
    holds what changing weight k does to the weights after it, once the ones before it are fixed."""
    h = gram.detach().double().clone()
    h.diagonal().add_(DAMPING * h.diagonal().mean().clamp_min(1e-12))
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
