"""Packed bits: the sign of each element of a row, 32 to a word.

    bits [..., W] int32, W = ceil(K / 32). Bit j of a row is bit j % 32 (least significant
    first) of word j // 32: 1 where x >= 0 (standing for +1), 0 where x < 0 or x is NaN (-1).
    The padding bits of the last word (j >= K) are 0 in what pack writes, and no kernel reads
    them: a result never depends on them.
"""

from __future__ import annotations

import torch

WORD_BITS = 32


def words(k: int) -> int:
    return (k + WORD_BITS - 1) // WORD_BITS


def pack(x: torch.Tensor) -> torch.Tensor:
    """bits [..., words(K)] int32 of x [..., K] (any real dtype)."""
    k = x.shape[-1]
    positive = torch.nn.functional.pad(x >= 0, (0, words(k) * WORD_BITS - k))
    weights = torch.ones((), dtype=torch.int64, device=x.device) << torch.arange(WORD_BITS, device=x.device)
    packed = (positive.reshape(*x.shape[:-1], words(k), WORD_BITS).long() * weights).sum(-1)
    return torch.where(packed >= 2**31, packed - 2**32, packed).to(torch.int32)


def signs(bits: torch.Tensor, k: int) -> torch.Tensor:
    """The +1 / -1 values [..., k] (int64) that bits [..., words(k)] hold."""
    shifts = torch.arange(WORD_BITS, device=bits.device)
    set_bits = (bits.long()[..., None] >> shifts) & 1
    return (2 * set_bits - 1).reshape(*bits.shape[:-1], bits.shape[-1] * WORD_BITS)[..., :k]
