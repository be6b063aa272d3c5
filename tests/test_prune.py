"""prunq.compress.prune: magnitude and Wanda masks, unstructured and 2:4."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import prunq


@settings(max_examples=30)
@given(n=st.integers(1, 9), k=st.integers(1, 41), sparsity=st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]),
       seed=st.integers(0, 2**16))
def test_unstructured_removes_the_lowest_share_of_each_row(n, k, sparsity, seed):
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
    original = w.clone()
    mask = prunq.compress.prune(w, sparsity)
    kept = k - int(sparsity * k)
    assert mask.dtype == torch.bool and mask.shape == (n, k)
    assert (mask.sum(1) == kept).all()
    assert torch.equal(w, original * mask)
    for row in range(n):  # every kept weight is at least as large as every removed one
        if 0 < kept < k:
            assert original[row][mask[row]].abs().min() >= original[row][~mask[row]].abs().max()


@settings(max_examples=30)
@given(n=st.integers(1, 6), k=st.integers(1, 27), seed=st.integers(0, 2**16))
def test_two_of_four_keeps_the_two_largest_of_each_group(n, k, seed):
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
    original = w.clone()
    mask = prunq.compress.prune(w, pattern="2:4")
    for start in range(0, k, 4):
        group = mask[:, start:start + 4]
        assert (group.sum(1) == min(2, group.shape[1])).all()
        for row in range(n):
            values = original[row, start:start + 4].abs()
            kept, removed = values[group[row]], values[~group[row]]
            if len(removed):
                assert kept.min() >= removed.max()
    assert torch.equal(w, original * mask)


def test_wanda_keeps_small_weights_on_loud_channels_where_magnitude_does_not():
    """Known answer: channel 0 carries activations 100x the others'. Magnitude keeps the larger
    weights of channels 2 and 3; Wanda keeps channel 0's small weight, whose products are larger."""
    weight = torch.tensor([[0.1, 0.05, 0.9, 0.8]])
    norms = torch.tensor([100.0, 1.0, 1.0, 1.0])
    assert prunq.compress.prune(weight.clone(), 0.5).tolist() == [[False, False, True, True]]
    assert prunq.compress.prune(weight.clone(), 0.5, criterion="wanda", input_norms=norms).tolist() == [
        [True, False, True, False]]
    assert prunq.compress.prune(weight.clone(), pattern="2:4", criterion="wanda", input_norms=norms).tolist() == [
        [True, False, True, False]]


def test_prune_a_linear_in_place_and_bad_arguments():
    linear = nn.Linear(16, 4)
    mask = prunq.compress.prune(linear, 0.75)
    assert (linear.weight != 0).sum() <= 16 and torch.equal(linear.weight != 0, mask & (linear.weight != 0))
    with pytest.raises(ValueError, match="^sparsity:"):
        prunq.compress.prune(nn.Linear(4, 4), 1.5)
    with pytest.raises(ValueError, match="^sparsity:"):
        prunq.compress.prune(nn.Linear(4, 4))
    with pytest.raises(ValueError, match="^sparsity:"):
        prunq.compress.prune(nn.Linear(4, 4), 0.75, pattern="2:4")
    with pytest.raises(ValueError, match="^pattern:"):
        prunq.compress.prune(nn.Linear(4, 4), 0.5, pattern="4:8")
    with pytest.raises(ValueError, match="^criterion:"):
        prunq.compress.prune(nn.Linear(4, 4), 0.5, criterion="random")
    with pytest.raises(ValueError, match="^input_norms:"):
        prunq.compress.prune(nn.Linear(4, 4), 0.5, criterion="wanda")
    with pytest.raises(ValueError, match="^input_norms:"):
        prunq.compress.prune(nn.Linear(4, 4), 0.5, criterion="wanda", input_norms=torch.ones(5))
    with pytest.raises(TypeError, match="^weight_or_linear:"):
        prunq.compress.prune(torch.ones(4, dtype=torch.int8), 0.5)
