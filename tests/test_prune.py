"""prunq.compress.prune: magnitude, Wanda and SparseGPT masks, unstructured and 2:4."""

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


def _correlated_inputs(rows: int, k: int, seed: int) -> torch.Tensor:
    """Inputs whose channels share a few strong directions, as a layer's inputs do."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 4, generator=g) @ torch.randn(4, k, generator=g) + 0.3 * torch.randn(rows, k, generator=g)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 7), k=st.integers(1, 300), pattern=st.sampled_from(["2:4", "unstructured"]),
       seed=st.integers(0, 2**16))
def test_sparsegpt_keeps_the_pattern_and_zeroes_what_it_removes(n, k, pattern, seed):
    """K up to 300 covers several 128-column blocks and a last, shorter group of four."""
    w = torch.randn(n, k, generator=torch.Generator().manual_seed(seed))
    x = _correlated_inputs(64, k, seed)
    sparsity = 0.5 if pattern == "2:4" else 0.7
    mask = prunq.compress.prune(w, sparsity, pattern, criterion="sparsegpt", input_gram=x.T.double() @ x.double() / 64)
    assert torch.equal(w * mask, w)
    if pattern == "2:4":
        for start in range(0, k, 4):
            assert (mask[:, start:start + 4].sum(1) == min(2, len(range(start, min(start + 4, k))))).all()
    else:
        assert (mask.sum(1) == mask[0].sum()).all()  # every row keeps the same count
        assert abs(mask[0].sum().item() - 0.3 * k) <= 1 + k // 128


def test_sparsegpt_on_white_inputs_is_magnitude_pruning():
    """Known answer: with uncorrelated inputs of equal energy (Gram = I) no other weight can make
    up for a removed one, so SparseGPT removes the smallest and leaves the rest as they were."""
    w = torch.randn(5, 19)
    for pattern, sparsity in (("2:4", None), ("unstructured", 0.6)):
        magnitude, ours = w.clone(), w.clone()
        expected = prunq.compress.prune(magnitude, sparsity, pattern)
        mask = prunq.compress.prune(ours, sparsity, pattern, "sparsegpt", input_gram=torch.eye(19))
        assert torch.equal(mask, expected)
        torch.testing.assert_close(ours, magnitude, rtol=0, atol=1e-6)


def test_sparsegpt_moves_a_removed_weight_onto_the_channels_that_carry_its_input():
    """Known answer: input 0 is always input 2 plus input 3, so removing weight 0 and adding it to
    weights 2 and 3 (which come after it along K) leaves the output unchanged: SparseGPT finds
    that, up to its damping, where Wanda loses that weight's whole contribution."""
    x = torch.randn(256, 4)
    x[:, 0] = x[:, 2] + x[:, 3]
    w = torch.tensor([[0.1, 0.3, -0.6, 0.8]])
    ours = w.clone()
    mask = prunq.compress.prune(ours, 0.25, criterion="sparsegpt", input_gram=x.T @ x / 256)
    assert mask.tolist() == [[False, True, True, True]]
    torch.testing.assert_close(ours, torch.tensor([[0.0, 0.3, -0.5, 0.9]]), rtol=0, atol=0.01)
    wanda = w.clone()
    prunq.compress.prune(wanda, 0.25, criterion="wanda", input_norms=x.norm(dim=0))
    assert (x @ (ours - w).T).norm() < 0.1 * (x @ (wanda - w).T).norm()


@pytest.mark.parametrize("pattern", ["2:4", "unstructured"])
def test_sparsegpt_changes_the_output_less_than_wanda(pattern):
    x = _correlated_inputs(512, 96, seed=torch.randint(0, 2**16, ()).item())
    w = torch.randn(24, 96)
    errors = {}
    for criterion in ("wanda", "sparsegpt"):
        pruned = w.clone()
        prunq.compress.prune(pruned, 0.5, pattern, criterion, input_norms=x.norm(dim=0), input_gram=x.T @ x / 512)
        errors[criterion] = (x @ (pruned - w).T).norm()
    assert errors["sparsegpt"] < 0.8 * errors["wanda"]


def test_sparsegpt_needs_the_gram_matrix():
    with pytest.raises(ValueError, match=r"^input_gram: .* \(4, 4\), got None"):
        prunq.compress.prune(nn.Linear(4, 4), 0.5, criterion="sparsegpt")
    with pytest.raises(ValueError, match=r"^input_gram: .* got \(5, 5\)"):
        prunq.compress.prune(nn.Linear(4, 4), 0.5, criterion="sparsegpt", input_gram=torch.eye(5))
