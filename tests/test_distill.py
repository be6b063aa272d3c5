"""Distillation losses against values computed by hand."""

import math

import pytest
import torch

from prunq.compress.losses import (FeatureProjection, block_loss, distillation_loss, embedding_loss, feature_loss,
                                    soft_target_loss)


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def softmax(z):
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_soft_targets_are_kl_at_temperature_times_t_squared():
    student, teacher = [0.0, 0.0], [math.log(3.0), 0.0]
    for t in (1.0, 2.0):
        by_hand = kl(softmax([v / t for v in teacher]), softmax([v / t for v in student])) * t * t
        got = soft_target_loss(torch.tensor([student]), torch.tensor([teacher]), t)
        assert got.item() == pytest.approx(by_hand, rel=1e-6)
    assert soft_target_loss(torch.tensor([[0.0, 0.0]]), torch.tensor([[math.log(3.0), 0.0]]), 1.0).item() == \
        pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5), rel=1e-6)  # 0.1308
    same = torch.randn(4, 7)
    assert soft_target_loss(same, same).item() == pytest.approx(0.0, abs=1e-6)


def test_distillation_weighs_soft_and_hard():
    student, teacher, labels = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 0.0]]), torch.tensor([1])
    soft = soft_target_loss(student, teacher, 3.0).item()
    hard = -math.log(softmax([2.0, 0.0, -1.0])[1])
    assert distillation_loss(student, teacher, labels, 3.0, 0.25).item() == pytest.approx(0.25 * soft + 0.75 * hard)
    assert distillation_loss(student, teacher, None, 3.0, 0.25).item() == pytest.approx(soft)


def test_feature_and_embedding_losses():
    s, t = torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    assert feature_loss(s, t).item() == pytest.approx((0 + 4 + 0 + 4) / 4)
    projection = FeatureProjection(2, 3)
    with torch.no_grad():
        projection.linear.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]))
    wide = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 7.0]])
    assert feature_loss(s, wide, projection).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="^projection:"):
        feature_loss(s, wide)
    a, b = torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 1.0], [2.0, 2.0]])
    assert embedding_loss(a, b).item() == pytest.approx(((1 - 0.0) + (1 - 1.0)) / 2)
    assert embedding_loss(a, b, "mse").item() == pytest.approx((1 + 1 + 1 + 1) / 4)
    with pytest.raises(ValueError, match="^kind:"):
        embedding_loss(a, b, "l1")
    with pytest.raises(ValueError, match="^teacher:"):
        embedding_loss(a, b[:1])
    with pytest.raises(ValueError, match="^alpha:"):
        distillation_loss(a, b, alpha=2.0)
    with pytest.raises(ValueError, match="^temperature:"):
        soft_target_loss(a, b, 0.0)


def test_block_loss_averages_each_blocks_error_relative_to_its_teacher():
    students = [torch.tensor([[[2.0, 0.0], [9.0, 9.0]]]), torch.tensor([[[1.0, 1.0], [7.0, 7.0]]])]
    teachers = [torch.tensor([[[1.0, 0.0], [3.0, 3.0]]]), torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])]
    # First token only: (1 / 1 + 2 / 4) / 2; all tokens: (73 / 19 + 100 / 4) / 2.
    assert block_loss(students, teachers, torch.tensor([[1, 0]])).item() == pytest.approx(0.75)
    assert block_loss(students, teachers).item() == pytest.approx((73 / 19 + 25) / 2)
    assert block_loss(teachers, teachers).item() == 0
    with pytest.raises(ValueError, match="^teacher_states: expected one for each"):
        block_loss(students, teachers[:1])
    with pytest.raises(ValueError, match="^teacher_states: expected the student's shape"):
        block_loss(students, [t[:, :1] for t in teachers])
