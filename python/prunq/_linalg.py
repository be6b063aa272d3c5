"""What the one-shot compression methods share (SparseGPT pruning, GPTQ rounding): going along K,
each column of a weight is changed (pruned, rounded) and the change made up for by the columns
still to come, so that the layer's output on the calibration inputs moves as little as it can."""

from __future__ import annotations

from collections.abc import Callable

import torch

DAMPING = 0.01  # of the Gram matrix's mean diagonal, added so that it can be inverted
BLOCK = 128  # columns whose changes are applied to the rest of the weight at once


def inverse_cholesky(gram: torch.Tensor) -> torch.Tensor:
    """The upper Cholesky factor of the damped Gram matrix's inverse, float64: going along K, row k
    holds what changing weight k does to the weights after it, once the ones before it are fixed."""
    h = gram.detach().double().clone()
    h.diagonal().add_(DAMPING * h.diagonal().mean().clamp_min(1e-12))
    return torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)


def compensated_sweep(weight: torch.Tensor, gram: torch.Tensor,
                      choose: Callable[[torch.Tensor, torch.Tensor, int, int], torch.Tensor]) -> torch.Tensor:
    """weight [N, K] (float64 copy) after the sweep for inputs whose Gram matrix is gram [K, K].
    choose(block, block_hinv, i, column) gives column `column`'s new values, block[:, i] being
    its values now (with the changes made so far spread onto it) in a block of BLOCK columns and
    block_hinv that block's part of inverse_cholesky(gram)."""
    w = weight.detach().to(torch.float64, copy=True)
    hinv = inverse_cholesky(gram.to(w.device))
    k = w.shape[1]
    for start in range(0, k, BLOCK):
        end = min(start + BLOCK, k)
        block, block_hinv = w[:, start:end], hinv[start:end, start:end]
        errors = torch.empty_like(block)
        for i in range(end - start):
            new = choose(block, block_hinv, i, start + i)
            errors[:, i] = (block[:, i] - new) / block_hinv[i, i]
            block[:, i + 1:] -= errors[:, i:i + 1] * block_hinv[i:i + 1, i + 1:]
            block[:, i] = new
        w[:, end:] -= errors @ hinv[start:end, end:]
    return w
