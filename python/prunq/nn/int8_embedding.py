"""Int8Embedding: an embedding table stored as int8 rows with one scale per row.

A lookup is a gather: the rows asked for are read as int8 and scaled, by torch ops, or for an
eager CPU call by one native gather (prunq.ops._eager), which at one token costs what
nn.Embedding's lookup does where the torch ops cost three times that.
The table takes a quarter of its fp32 bytes, which for a small encoder is most of the model
(all-MiniLM-L6-v2: 47 of its 87 MB are the word embeddings).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .. import _native
from ..formats.int8 import quantize_weight
from ..ops import _eager
from ._buffers import read_tensors


def check_embedding(embedding: nn.Embedding) -> None:
    """What a quantized table can stand in for."""
    if not isinstance(embedding, nn.Embedding):
        raise TypeError(f"embedding: expected an nn.Embedding, got {type(embedding).__name__}")
    if embedding.max_norm is not None:
        raise ValueError("embedding: max_norm renormalises rows on lookup, which a quantized table cannot do")


class Int8Embedding(nn.Module):
    """out = w_q[ids] * w_scale[ids, None], in the dtype of w_scale (float32 unless the model is
    cast). state_dict: w_q [num_embeddings, embedding_dim] int8, w_scale [num_embeddings]."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, device=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim, self.padding_idx = num_embeddings, embedding_dim, padding_idx
        self.register_buffer("w_q", torch.zeros(num_embeddings, embedding_dim, dtype=torch.int8, device=device))
        self.register_buffer("w_scale", torch.zeros(num_embeddings, dtype=torch.float32, device=device))

    @classmethod
    def from_embedding(cls, embedding: nn.Embedding) -> Int8Embedding:
        check_embedding(embedding)
        module = cls(embedding.num_embeddings, embedding.embedding_dim, embedding.padding_idx, embedding.weight.device)
        w_q, w_scale = quantize_weight(embedding.weight.float())
        module.w_q.copy_(w_q)
        module.w_scale.copy_(w_scale)
        return module

    def config(self) -> dict:
        return {"type": "Int8Embedding", "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim, "padding_idx": self.padding_idx}

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        w_q, w_scale = read_tensors(self, "w_q", "w_scale")
        if (_eager.direct(ids, w_q, w_scale) and ids.dtype == torch.int64 and ids.is_contiguous() and w_q.is_cpu
                and w_scale.is_cpu and w_scale.dtype == torch.float32 and w_q.is_contiguous()):
            out = torch.empty((*ids.shape, self.embedding_dim), dtype=torch.float32)
            _native.C.gather_dequantize_rows(ids.data_ptr(), ids.numel(), w_q.data_ptr(), w_scale.data_ptr(),
                                             w_q.shape[0], w_q.shape[1], out.data_ptr(), 0, torch.get_num_threads())
            return out
        rows = F.embedding(ids, w_q).to(w_scale.dtype)
        return rows * F.embedding(ids, w_scale.unsqueeze(1))

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
