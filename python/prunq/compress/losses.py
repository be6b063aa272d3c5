"""Knowledge distillation: the losses that let a compressed student recover what compression
took, from its float teacher.

    soft_target_loss(student_logits, teacher_logits, temperature)   Hinton et al.: KL divergence
        of the student's softened distribution from the teacher's, times T^2 (so that the
        gradients keep their scale as T changes), averaged over the batch
    distillation_loss(student_logits, teacher_logits, labels=None, temperature=2.0, alpha=0.5)
        alpha * soft targets + (1 - alpha) * cross-entropy on the hard labels (soft targets alone
        without labels)
    feature_loss(student_hidden, teacher_hidden, projection=None)
        MSE between hidden states, the student's mapped to the teacher's width by a learned
        FeatureProjection where they differ
    embedding_loss(student, teacher, kind="cosine" | "mse")
        for a sentence-embedding model without labels: 1 - cosine similarity (mean over the
        batch) or MSE between the student's and the teacher's embeddings
    block_loss(student_states, teacher_states, mask=None)
        layer by layer: each pair of block outputs' MSE relative to the teacher's mean square
        (over the tokens of mask), averaged over the pairs, so that every block is taught its
        teacher's output and blocks whose outputs grow in scale weigh alike
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                     temperature: float = 2.0) -> torch.Tensor:
    if temperature <= 0:
        raise ValueError(f"temperature: expected > 0, got {temperature}")
    _same_shape(student_logits, teacher_logits, "teacher_logits")
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    rows = student.reshape(-1, student.shape[-1]).shape[0]
    kl = (teacher.exp() * (teacher - student)).sum() / max(rows, 1)
    return kl * temperature**2


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor | None = None,
                      temperature: float = 2.0, alpha: float = 0.5) -> torch.Tensor:
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha: expected a weight in [0, 1], got {alpha}")
    soft = soft_target_loss(student_logits, teacher_logits, temperature)
    if labels is None:
        return soft
    hard = F.cross_entropy(student_logits.float().reshape(-1, student_logits.shape[-1]), labels.reshape(-1))
    return alpha * soft + (1 - alpha) * hard


class FeatureProjection(nn.Module):
    """A learned linear map from the student's hidden width to the teacher's (trained with the
    student, discarded after)."""

    def __init__(self, student_width: int, teacher_width: int):
        super().__init__()
        self.linear = nn.Linear(student_width, teacher_width, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden)


def feature_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                 projection: nn.Module | None = None) -> torch.Tensor:
    student = student_hidden if projection is None else projection(student_hidden)
    if student.shape[-1] != teacher_hidden.shape[-1] and projection is None:
        raise ValueError(f"projection: the widths differ ({student.shape[-1]} against {teacher_hidden.shape[-1]}); "
                         "pass a FeatureProjection")
    _same_shape(student, teacher_hidden, "teacher_hidden")
    return F.mse_loss(student.float(), teacher_hidden.float())


def embedding_loss(student: torch.Tensor, teacher: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    _same_shape(student, teacher, "teacher")
    if kind == "cosine":
        return (1 - F.cosine_similarity(student.float(), teacher.float(), dim=-1)).mean()
    if kind == "mse":
        return F.mse_loss(student.float(), teacher.float())
    raise ValueError(f"kind: expected 'cosine' or 'mse', got {kind!r}")


def block_loss(student_states, teacher_states, mask: torch.Tensor | None = None) -> torch.Tensor:
    """student_states, teacher_states: matched sequences of hidden states [batch, tokens, width];
    mask [batch, tokens]: 1 on the tokens that count (all count without it)."""
    if len(student_states) != len(teacher_states) or not student_states:
        raise ValueError(f"teacher_states: expected one for each of the {len(student_states)} student states, "
                         f"got {len(teacher_states)}")
    first = student_states[0]
    weight = (first.new_ones(first.shape[:-1], dtype=torch.float32) if mask is None
              else mask.to(first.device, torch.float32)).unsqueeze(-1)
    total = 0
    for student, teacher in zip(student_states, teacher_states):
        _same_shape(student, teacher, "teacher_states")
        error = (weight * (student.float() - teacher.float()) ** 2).sum()
        total = total + error / (weight * teacher.float() ** 2).sum().clamp_min(1e-12)
    return total / len(student_states)


def _same_shape(student: torch.Tensor, teacher: torch.Tensor, name: str) -> None:
    if student.shape != teacher.shape:
        raise ValueError(f"{name}: expected the student's shape {tuple(student.shape)}, got {tuple(teacher.shape)}")
