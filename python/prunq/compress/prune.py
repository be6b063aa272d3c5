"""Pruning masks: which weights of a Linear layer to set to zero.

    mask = prune(linear, sparsity=0.9)                                   # magnitude, unstructured
    mask = prune(linear, pattern="2:4", criterion="wanda", input_norms=norms)
    mask = prune(linear, pattern="2:4", criterion="sparsegpt", input_gram=gram)

Scores are |w| (magnitude) or |w| times the L2 norm of the weight's input channel over
calibration data (Wanda: Sun et al., "A Simple and Effective Pruning Approach for Large Language
Models", 2023), so that a small weight on a channel that carries large activations is kept.
Unstructured pruning removes the lowest scores within each output row (each row keeps the same
count, as Wanda compares them); 2:4 keeps the two highest of every group of four consecutive
weights along K (a last, shorter group keeps at most two). Ties go to the lower index.

"sparsegpt" (Frantar and Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned
in One-Shot", 2023) also changes the kept weights: going along K, each removed weight's error is
spread over the weights still to come, by the inverse of the inputs' Gram matrix E[x x^T], so the
layer's output on the calibration inputs changes as little as it can. Weights are chosen by
w^2 / U_kk^2, U the upper Cholesky factor of H^-1 (the output error removing each alone would
cause, the weights before it fixed), per group of four for 2:4 and per row within each block of
128 columns (prunq._linalg.BLOCK) for unstructured (the same count in every row).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .._linalg import compensated_sweep

PATTERNS = ("unstructured", "2:4")
SCORED = ("magnitude", "wanda")  # criteria that score each weight alone
CRITERIA = SCORED + ("sparsegpt",)


def scores(weight: torch.Tensor, criterion: str = "magnitude", input_norms: torch.Tensor | None = None) -> torch.Tensor:
    """What each weight of [N, K] is worth keeping, in float64 (magnitude or wanda)."""
    if criterion not in SCORED:
        raise ValueError(f"criterion: expected one of {', '.join(SCORED)}, got {criterion!r}")
    score = weight.detach().double().abs()
    if criterion == "magnitude":
        return score
    if input_norms is None:
        raise ValueError("input_norms: Wanda needs the L2 norm of each input channel over calibration data")
    if input_norms.shape != (weight.shape[1],):
        raise ValueError(f"input_norms: expected shape ({weight.shape[1]},) (K of the weight), "
                         f"got {tuple(input_norms.shape)}")
    return score * input_norms.to(score.device).double()[None, :]


def _keep_highest(score: torch.Tensor, keep: int) -> torch.Tensor:
    """Per row of score [R, C], True at the `keep` highest (ties to the lower index)."""
    order = torch.sort(-score, dim=1, stable=True).indices
    mask = torch.zeros_like(score, dtype=torch.bool)
    mask.scatter_(1, order[:, :keep], True)
    return mask


def prune(weight_or_linear: torch.Tensor | nn.Linear, sparsity: float | None = None, pattern: str = "unstructured",
          criterion: str = "magnitude", input_norms: torch.Tensor | None = None,
          input_gram: torch.Tensor | None = None) -> torch.Tensor:
    """Zeroes the pruned weights in place and returns the mask of the kept ones (bool, [N, K]).
    With criterion "sparsegpt" the kept weights change too.

    sparsity: the fraction of each row removed (unstructured; required there); for "2:4" None or
    0.5. input_norms [K]: for criterion "wanda", the L2 norm of each input channel. input_gram
    [K, K]: for "sparsegpt", E[x x^T] over the calibration inputs."""
    weight = weight_or_linear.weight if isinstance(weight_or_linear, nn.Linear) else weight_or_linear
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.dtype.is_floating_point:
        raise TypeError("weight_or_linear: expected an nn.Linear or a float weight [N, K]")
    if pattern not in PATTERNS:
        raise ValueError(f"pattern: expected one of {', '.join(PATTERNS)}, got {pattern!r}")
    if criterion not in CRITERIA:
        raise ValueError(f"criterion: expected one of {', '.join(CRITERIA)}, got {criterion!r}")
    if pattern == "2:4" and sparsity not in (None, 0.5):
        raise ValueError(f"sparsity: 2:4 removes half of the weights; expected None or 0.5, got {sparsity}")
    if pattern == "unstructured" and (sparsity is None or not 0 <= sparsity <= 1):
        raise ValueError(f"sparsity: expected the fraction of weights to remove, in [0, 1], got {sparsity}")
    if criterion == "sparsegpt":
        return _sparsegpt(weight, input_gram, pattern, sparsity)
    score = scores(weight, criterion, input_norms)
    n, k = weight.shape
    if pattern == "2:4":
        padded = torch.nn.functional.pad(score, (0, -k % 4), value=-1.0)  # padding is never kept over a weight
        mask = _keep_highest(padded.reshape(-1, 4), 2).reshape(n, -1)[:, :k]
    else:
        mask = _keep_highest(score, k - math.floor(sparsity * k + 1e-9))
    with torch.no_grad():
        weight.mul_(mask.to(weight.dtype))
    return mask


def _sparsegpt(weight: torch.Tensor, gram: torch.Tensor | None, pattern: str, sparsity: float | None) -> torch.Tensor:
    k = weight.shape[1]
    if gram is None or gram.shape != (k, k):
        shape = None if gram is None else tuple(gram.shape)
        raise ValueError(f"input_gram: SparseGPT needs the inputs' Gram matrix of shape ({k}, {k}), got {shape}")
    mask = torch.ones_like(weight, dtype=torch.bool)

    def keep(block, block_hinv, i, column):
        def cost(lo, hi):  # the output error that removing each of these weights alone would cause
            return block[:, lo:hi].pow(2) / block_hinv.diagonal()[lo:hi].pow(2)

        width = block.shape[1]
        if pattern == "unstructured" and i == 0:
            mask[:, column:column + width] = _keep_highest(cost(0, width), width - round(sparsity * width))
        if pattern == "2:4" and column % 4 == 0:
            group = min(4, k - column)
            mask[:, column:column + group] = _keep_highest(cost(i, i + group), min(2, group))
        return block[:, i] * mask[:, column]

    w = compensated_sweep(weight, gram, keep)
    with torch.no_grad():
        weight.copy_(w.to(weight.dtype))
    return mask
