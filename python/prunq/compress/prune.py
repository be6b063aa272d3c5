"""Pruning masks: which weights of a Linear layer to set to zero.

    mask = prune(linear, sparsity=0.9)                                   # magnitude, unstructured
    mask = prune(linear, pattern="2:4", criterion="wanda", input_norms=norms)

Scores are |w| (magnitude) or |w| times the L2 norm of the weight's input channel over
calibration data (Wanda: Sun et al., "A Simple and Effective Pruning Approach for Large Language
Models", 2023), so that a small weight on a channel that carries large activations is kept.
Unstructured pruning removes the lowest scores within each output row (each row keeps the same
count, as Wanda compares them); 2:4 keeps the two highest of every group of four consecutive
weights along K (a last, shorter group keeps at most two). Ties go to the lower index.
"""

from __future__ import annotations

import math

import torch
from torch import nn

PATTERNS = ("unstructured", "2:4")
CRITERIA = ("magnitude", "wanda")


def scores(weight: torch.Tensor, criterion: str = "magnitude", input_norms: torch.Tensor | None = None) -> torch.Tensor:
    """What each weight of [N, K] is worth keeping, in float64."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion: expected one of {', '.join(CRITERIA)}, got {criterion!r}")
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
          criterion: str = "magnitude", input_norms: torch.Tensor | None = None) -> torch.Tensor:
    """Zeroes the pruned weights in place and returns the mask of the kept ones (bool, [N, K]).

    sparsity: the fraction of each row removed (unstructured; required there); for "2:4" None or
    0.5. input_norms [K]: for criterion "wanda", the L2 norm of each input channel."""
    weight = weight_or_linear.weight if isinstance(weight_or_linear, nn.Linear) else weight_or_linear
    if not isinstance(weight, torch.Tensor) or weight.dim() != 2 or not weight.dtype.is_floating_point:
        raise TypeError("weight_or_linear: expected an nn.Linear or a float weight [N, K]")
    if pattern not in PATTERNS:
        raise ValueError(f"pattern: expected one of {', '.join(PATTERNS)}, got {pattern!r}")
    score = scores(weight, criterion, input_norms)
    n, k = weight.shape
    if pattern == "2:4":
        if sparsity not in (None, 0.5):
            raise ValueError(f"sparsity: 2:4 removes half of the weights; expected None or 0.5, got {sparsity}")
        padded = torch.nn.functional.pad(score, (0, -k % 4), value=-1.0)  # padding is never kept over a weight
        mask = _keep_highest(padded.reshape(-1, 4), 2).reshape(n, -1)[:, :k]
    else:
        if sparsity is None or not 0 <= sparsity <= 1:
            raise ValueError(f"sparsity: expected the fraction of weights to remove, in [0, 1], got {sparsity}")
        mask = _keep_highest(score, k - math.floor(sparsity * k + 1e-9))
    with torch.no_grad():
        weight.mul_(mask.to(weight.dtype))
    return mask
