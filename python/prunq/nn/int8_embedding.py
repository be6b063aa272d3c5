"""Int8Embedding: an embedding table stored as int8 rows with one scale per row.

A lookup is a gather, so no kernel is needed: the rows asked for are read as int8 and scaled.
The table takes a quarter of its fp32 bytes, which for a small encoder is most of the model
(all-MiniLM-L6-v2: 47 of its 87 MB are the word embeddings).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..formats.int8 import quantize_weight


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
        if not isinstance(embedding, nn.Embedding):
            raise TypeError(f"embedding: expected an nn.Embedding, got {type(embedding).__name__}")
        if embedding.max_norm is not None:
            raise ValueError("embedding: max_norm renormalises rows on lookup, which an int8 table cannot do")
        module = cls(embedding.num_embeddings, embedding.embedding_dim, embedding.padding_idx, embedding.weight.device)
        w_q, w_scale = quantize_weight(embedding.weight.float())
        module.w_q.copy_(w_q)
        module.w_scale.copy_(w_scale)
        return module

    def config(self) -> dict:
        return {"type": "Int8Embedding", "num_embeddings": self.num_embeddings,
                "embedding_dim": self.embedding_dim, "padding_idx": self.padding_idx}

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        rows = F.embedding(ids, self.w_q).to(self.w_scale.dtype)
        return rows * F.embedding(ids, self.w_scale.unsqueeze(1))

    def extra_repr(self) -> str:
        pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}"
