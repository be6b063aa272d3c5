"""How close a compressed model's embeddings stay to the float model's."""

from __future__ import annotations

import torch


def fidelity(reference: torch.Tensor, candidate: torch.Tensor) -> dict[str, float]:
    """reference, candidate: L2-normalised embeddings [n, d] of the same n texts.

    cosine: mean and worst cosine similarity between the two embeddings of each text.
    neighbour_agreement: the fraction of texts whose nearest other text in the corpus is the same
    under both models (what a semantic-search user would notice)."""
    cosine = (reference * candidate).sum(-1)
    neighbours = []
    for embeddings in (reference, candidate):
        similarity = embeddings @ embeddings.T
        similarity.fill_diagonal_(-float("inf"))
        neighbours.append(similarity.argmax(-1))
    return {"cosine_mean": cosine.mean().item(), "cosine_min": cosine.min().item(),
            "neighbour_agreement": (neighbours[0] == neighbours[1]).float().mean().item()}
