"""Binarization trained with a straight-through estimator, on a real data set, then converted to
the kernel modules."""

import pytest
import torch
from sklearn.datasets import load_digits

import prunq
from prunq.compress.binarize import BinarizedLinear


def digits(generator):
    data = load_digits()
    x, y = torch.tensor(data.data, dtype=torch.float32), torch.tensor(data.target)
    order = torch.randperm(len(y), generator=generator)
    train, test = order[:1400], order[1400:]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-3
    return (x[train] - mean) / std, y[train], (x[test] - mean) / std, y[test]


@pytest.mark.parametrize("binarize_x", [True, False])
def test_a_binarized_mlp_learns_digits_and_converts_to_the_same_predictions(binarize_x):
    # The two hidden layers are binarized; the 10-way classifier stays float, as in XNOR-Net.
    g = torch.Generator().manual_seed(0)
    x_train, y_train, x_test, y_test = digits(g)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.BatchNorm1d(256), torch.nn.Hardtanh(),
                                torch.nn.Linear(256, 256), torch.nn.BatchNorm1d(256), torch.nn.Hardtanh(),
                                torch.nn.Linear(256, 10))
    prunq.compress.binarize(model, include=["0", "3"], binarize_x=binarize_x)
    assert isinstance(model[0], BinarizedLinear) and isinstance(model[6], torch.nn.Linear)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        for batch in torch.randperm(len(y_train), generator=g).split(64):
            loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        trained = model(x_test).argmax(1)
        assert (trained == y_test).float().mean() >= 0.9
        prunq.compress.convert(model)
        assert isinstance(model[0], prunq.nn.BinaryLinear) and isinstance(model[3], prunq.nn.BinaryLinear)
        assert torch.equal(model(x_test).argmax(1), trained)


def test_the_estimator_passes_gradients_only_inside_the_clip():
    linear = torch.nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[0.5, -2.0, 0.0]]))
    layer = BinarizedLinear(linear, binarize_x=False)
    layer(torch.ones(1, 3)).sum().backward()
    # d/dw of sum(sign(w) * s), s = mean|w| = 2.5 / 3: through the sign, s where |w| <= 1 and 0
    # elsewhere; through s, sum(sign(w)) = 1 times d|w|/dw / 3 (torch's d|w|/dw is 0 at 0).
    through_sign = torch.tensor([2.5 / 3, 0.0, 2.5 / 3])
    through_scale = torch.tensor([1.0, -1.0, 0.0]) / 3
    assert torch.allclose(layer.weight.grad[0], through_sign + through_scale)


def test_binarize_and_convert_say_what_is_wrong():
    with pytest.raises(ValueError, match="^include:"):
        prunq.compress.binarize(torch.nn.Sequential(torch.nn.Linear(4, 4)), include=["nothing"])
    with pytest.raises(ValueError, match="^model:"):
        prunq.compress.convert(torch.nn.Sequential(torch.nn.Linear(4, 4)))
