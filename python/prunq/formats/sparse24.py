"""The 2:4 semi-structured format: at most two non-zeros in every group of four consecutive
weights along K, stored as the two values and their positions.

    values [N, Kp / 2]   the two kept weights of each group, in the weight's dtype (or int8), in
                         the order of their positions
    meta   [N, Kp / 8]   uint8: group g of a row is the 4 bits at (g % 2) * 4 of byte g // 2,
                         bits 0-1 the first position (0..3), bits 2-3 the second, first < second

Kp is K rounded up to a multiple of 8 (the padding holds zeros). A group with fewer than two
non-zeros keeps zeros at its lowest free positions. This layout is what is saved; a kernel that
wants another order derives it when it loads the weight.
"""

from __future__ import annotations

import torch

from .. import _native
from . import _passed


def padded_k(k: int) -> int:
    return (k + 7) // 8 * 8


def pack(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, meta) of w [N, K]; ValueError naming the first row and group holding more than
    two non-zeros."""
    if w.dim() != 2:
        raise ValueError(f"w: expected [N, K], got shape {tuple(w.shape)}")
    n, k = w.shape
    groups = torch.nn.functional.pad(w, (0, padded_k(k) - k)).reshape(n, -1, 4)
    nonzero = groups != 0
    counts = nonzero.sum(-1)
    if (counts > 2).any():
        row, group = (counts > 2).nonzero()[0].tolist()
        raise ValueError(f"w: row {row}, group {group} (k {4 * group} to {4 * group + 3}) holds {counts[row, group]} "
                         "non-zeros; 2:4 allows at most 2 in every group of 4 along K")
    # The two positions: non-zeros first, then the lowest free positions (a stable sort of
    # "is zero" puts non-zeros first, each part in position order), the pair in position order.
    order = torch.sort((~nonzero).to(torch.int8), dim=-1, stable=True).indices[..., :2]
    positions = torch.sort(order, dim=-1).values
    values = torch.gather(groups, -1, positions).reshape(n, -1)
    codes = (positions[..., 0] | (positions[..., 1] << 2)).to(torch.uint8)  # [N, Kp / 4]
    meta = codes[:, 0::2] | (codes[:, 1::2] << 4)
    return values.contiguous(), meta.contiguous()


def positions(meta: torch.Tensor) -> torch.Tensor:
    """The positions [N, Kp / 4, 2] (int64) that meta encodes."""
    codes = torch.stack([meta & 0xF, meta >> 4], dim=-1).reshape(meta.shape[0], -1).long()
    return torch.stack([codes & 3, codes >> 2], dim=-1)


def unpack(values: torch.Tensor, meta: torch.Tensor, k: int) -> torch.Tensor:
    """The dense weight [N, k] in values' dtype."""
    n = values.shape[0]
    dense = torch.zeros(n, values.shape[1] * 2, dtype=values.dtype, device=values.device).reshape(n, -1, 4)
    dense.scatter_(-1, positions(meta), values.reshape(n, -1, 2))
    return dense.reshape(n, -1)[:, :k]


def check(values: torch.Tensor, meta: torch.Tensor, k: int, name: str = "meta") -> None:
    """ValueError unless values and meta are a 2:4 weight of K = k: shapes, dtypes, and every
    position pair in order (a corrupted meta could otherwise place two values at one position)."""
    n = values.shape[0] if values.dim() == 2 else -1
    kp = padded_k(k)
    if values.dim() != 2 or values.shape[1] != kp // 2:
        raise ValueError(f"values: expected [N, {kp // 2}] for K = {k}, got shape {tuple(values.shape)}")
    if meta.dtype != torch.uint8:
        raise TypeError(f"{name}: expected uint8 (prunq.formats.sparse24), got {meta.dtype}")
    if meta.shape != (n, kp // 8):
        raise ValueError(f"{name}: expected shape ({n}, {kp // 8}) to match values, got {tuple(meta.shape)}")
    if meta.is_cpu and _native.C is not None:  # one pass in C++: the check runs on every op call
        dense = meta.contiguous()  # held while C++ reads it
        bad = _native.C.sparse24_first_bad_group(dense.data_ptr(), dense.numel())
        if bad >= 0:
            row, group = divmod(bad, kp // 4)
            raise ValueError(f"{name}: row {row}, group {group} does not hold two positions in order; it does not "
                             "come from sparse24_pack")
        return
    key = _passed.state((meta,))
    if _passed.passed(meta, key):
        return
    pairs = positions(meta)
    if (pairs[..., 0] >= pairs[..., 1]).any():
        row, group = (pairs[..., 0] >= pairs[..., 1]).nonzero()[0].tolist()
        raise ValueError(f"{name}: row {row}, group {group} does not hold two positions in order; it does not "
                         "come from sparse24_pack")
    _passed.remember(meta, key)
