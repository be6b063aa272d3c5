"""Signed 4-bit values, two to a byte: Int4Embedding's tables and the weights of an Int8Linear
stored on 16 levels (weight_bits=4).

A row (or group) of values is stored as q * scale with q in LOW..HIGH: the scale is signed so that
the value of largest magnitude lands on LOW (all 16 levels used, as llama.cpp's Q4_0). In a byte,
q + 8 of the even column is the low nibble, of the odd column the high one.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from .._linalg import compensated_sweep

LOW, HIGH = -8, 7


def quantize_signed(values: torch.Tensor, factors=(1.0,),
                    scale_dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """values [..., n] -> (q [..., n] int8 in LOW..HIGH, scale [...] of scale_dtype). The scale is
    (value of largest magnitude) / LOW times the one of `factors` that gives the row the least
    squared error (a factor under 1 clips that value a little to round the rest more finely);
    rows of zeros get scale 0."""
    peak = _peak(values)
    best = None
    for factor in factors:
        scale = (peak * (factor / LOW)).to(scale_dtype)
        divisor = scale.float()
        divisor = torch.where(divisor == 0, torch.ones_like(divisor), divisor)  # a row of zeros: q = 0
        q = (values / divisor).round_().clamp_(LOW, HIGH)  # in place: training rounds weights every step
        if len(factors) == 1:
            return q.to(torch.int8), scale.squeeze(-1)
        error = ((q * scale.float() - values) ** 2).sum(-1, keepdim=True)
        if best is None:
            best = q, scale, error
        else:
            better = error < best[2]
            best = torch.where(better, q, best[0]), torch.where(better, scale, best[1]), torch.minimum(error, best[2])
    return best[0].to(torch.int8), best[1].squeeze(-1)


def _peak(values: torch.Tensor) -> torch.Tensor:
    """[..., 1]: each row's value of largest magnitude, the first of them where several have it.
    On the CPU from the row's max and min (argmax over |values| takes several times as long there,
    and training rounds every weight each step); only rows where max and -min tie are looked up
    (a NaN row's peak is NaN either way)."""
    if not values.is_cpu:  # argmax is fast there, and looking up tied rows would wait for the device
        return values.gather(-1, values.abs().argmax(-1, keepdim=True))
    high, low = values.amax(-1, keepdim=True), values.amin(-1, keepdim=True)
    peak = torch.where(high > -low, high, low)
    tied = (high == -low).squeeze(-1)
    if tied.any():
        rows = values[tied]
        peak[tied] = rows.gather(-1, rows.abs().argmax(-1, keepdim=True))
    return peak


def quantize_gptq(values: torch.Tensor, gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """values [N, K] -> (q [N, K] int8 in LOW..HIGH, scale [N] float32) on quantize_signed's grid,
    each row's levels chosen by GPTQ (Frantar et al., "GPTQ: Accurate Post-Training Quantization
    for Generative Pre-trained Transformers", 2023) for inputs whose Gram matrix E[x x^T] is gram
    [K, K]: going along K, each value is rounded to its nearest level and its rounding error is
    spread over the values still to come (by the inverse of gram), so that the rows' products with
    those inputs change as little as the grid allows. quantize_signed of the result gives it back."""
    k = values.shape[-1]
    if gram.shape != (k, k):
        raise ValueError(f"gram: expected the inputs' Gram matrix of shape ({k}, {k}), got {tuple(gram.shape)}")
    _, scale = quantize_signed(values.detach().float())
    step = torch.where(scale == 0, torch.ones_like(scale), scale).double()
    # Each row's value of largest magnitude keeps its level LOW whatever the errors spread onto it,
    # so that rounding the result again to the nearest levels (as training does) changes nothing.
    pinned = torch.where(scale == 0, -1, values.abs().argmax(-1))
    q = torch.empty(values.shape, dtype=torch.int8, device=values.device)

    def rounded(block, block_hinv, i, column):
        nearest = (block[:, i] / step).round().clamp(LOW, HIGH)
        q[:, column] = torch.where(pinned == column, LOW, nearest)
        return q[:, column] * step

    compensated_sweep(values, gram, rounded)
    return q, scale


def pack(q: torch.Tensor) -> torch.Tensor:
    """q [..., n] in LOW..HIGH -> [..., ceil(n / 2)] uint8; ValueError for a value outside."""
    if q.numel() and (q.min() < LOW or q.max() > HIGH):
        raise ValueError(f"q: 4-bit values must lie in [{LOW}, {HIGH}], got [{q.min().item()}, {q.max().item()}]")
    stored = F.pad(q.to(torch.int16) - LOW, (0, q.shape[-1] % 2))
    return (stored[..., 0::2] | (stored[..., 1::2] << 4)).to(torch.uint8)


def unpack(packed: torch.Tensor, n: int) -> torch.Tensor:
    """[..., ceil(n / 2)] uint8 -> q [..., n] int8 in LOW..HIGH."""
    stored = torch.stack([packed & 15, packed >> 4], dim=-1).flatten(-2)[..., :n]
    return (stored.to(torch.int16) + LOW).to(torch.int8)
