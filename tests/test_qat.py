"""Quantization-aware training: the fake-quant model and its conversion to the kernel modules."""

import pytest
import torch

import prunq
from prunq.compress import qat
from prunq.compress.qat import FakeQuantLinear, fake_quantize, fake_quantize_weight
from prunq.formats.int8 import quantize_weight
from prunq.nn import Int8Linear
from prunq.ops.int8_gemm import quantize_per_token_ref

from .models import run, tiny_model

IDS = torch.randint(0, 100, (2, 9), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("recipe", ["int8", "int8:w4"])
def test_the_converted_int8_model_computes_what_the_fake_quant_model_trained(recipe):
    torch.manual_seed(0)
    model = tiny_model("bert")
    prunq.compress.prepare_qat(model, recipe)
    layers = [m for m in model.modules() if isinstance(m, FakeQuantLinear)]
    assert layers
    # A few steps of training move the shadow weights; the conversion must follow them.
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)
    for _ in range(3):
        loss = model(input_ids=IDS).last_hidden_state.pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert all(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in layers)
    with torch.no_grad():
        fake = run(model, IDS)
        prunq.compress.convert(model)
        assert not any(isinstance(m, FakeQuantLinear) for m in model.modules())
        bits = {m.weight_bits for m in model.modules() if isinstance(m, Int8Linear)}
        assert bits == {4 if recipe == "int8:w4" else 8}
        converted = run(model, IDS)
    # The integer products are exact on both sides; only the fp32 rounding of the scales differs,
    # far below one quantization step of any activation.
    torch.testing.assert_close(converted, fake, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("weight_bits", [8, 4])
def test_one_layer_is_exactly_the_int8_kernel(weight_bits):
    torch.manual_seed(1)
    linear = torch.nn.Linear(37, 11)
    x = torch.randn(5, 37)
    layer = FakeQuantLinear(linear, weight_bits=weight_bits)
    with torch.no_grad():
        torch.testing.assert_close(layer.converted()(x), layer(x), rtol=1e-5, atol=1e-5)


def _float_form(layer: FakeQuantLinear, x: torch.Tensor) -> torch.Tensor:
    """The layer's definition, computed on the rounded tensors in float (the path off the CPU)."""
    y = torch.nn.functional.linear(fake_quantize(x), fake_quantize_weight(layer.weight, layer.weight_bits), layer.bias)
    return torch.nn.functional.gelu(y) if layer.activation == "gelu" else y


@pytest.mark.parametrize("weight_bits", [8, 4])
@pytest.mark.parametrize("rows", [0, 1, 5, 70])  # from 64 rows the integer GEMM packs w for the call
@pytest.mark.parametrize("bias", [True, False])
def test_training_on_the_integer_gemm_gives_the_float_forms_outputs_and_gradients(cpu_isa, weight_bits, rows, bias):
    g = torch.Generator().manual_seed(rows)
    layer = FakeQuantLinear(torch.nn.Linear(131, 67, bias=bias), activation="gelu", weight_bits=weight_bits)
    x = (torch.randn(131, 2, rows, generator=g) * 3).permute(1, 2, 0).requires_grad_()  # [2, rows, K], not contiguous
    gradient = torch.randn(2, rows, 67, generator=g)
    # The portable path keeps the float form: its integer kernel is slower than F.linear.
    assert qat._integer_gemm_takes(x, layer.weight, layer.bias) == (cpu_isa != "portable")
    grads = []
    for forward in (layer, lambda x: _float_form(layer, x)):
        x.grad = None
        layer.zero_grad()
        y = forward(x)
        y.backward(gradient)
        grads.append((y.detach(), x.grad, layer.weight.grad) + ((layer.bias.grad,) if bias else ()))
    (y, *got), (want_y, *want) = grads
    # int32 sums against fp32 ones: the outputs differ by the float sum's rounding only; the
    # gradients are F.linear's on the same rounded tensors, up to the order of the fp32 sums
    # (the weight's: 140 products of about 3 each).
    torch.testing.assert_close(y, want_y, rtol=1e-5, atol=1e-5)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_fake_quantize_rounds_as_the_reference_and_passes_gradients_straight_through(dtype):
    x = (torch.randn(3, 4, 37) * 5).to(dtype).transpose(0, 1).requires_grad_()  # not contiguous
    x.data[0, 1] = 0  # a row of zeros: scale 0
    y = fake_quantize(x)
    q, scale = quantize_per_token_ref(x.detach())
    assert y.dtype == torch.promote_types(dtype, torch.float32)
    assert torch.equal(y.detach(), (q.float() * scale.unsqueeze(-1)).to(y.dtype))
    gradient = torch.randn(y.shape, dtype=y.dtype)
    y.backward(gradient)
    assert x.grad.dtype == dtype and torch.equal(x.grad, gradient.to(dtype))


@pytest.mark.parametrize("bits", [8, 4])
def test_fake_quantize_weight_rounds_as_stored_and_passes_gradients_straight_through(bits):
    w = torch.randn(11, 37, requires_grad=True)
    y = fake_quantize_weight(w, bits)
    q, scale = quantize_weight(w.detach(), bits)
    assert torch.equal(y.detach(), q.float() * scale.unsqueeze(-1))
    y.sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_prepare_qat_takes_binary_and_names_what_it_cannot():
    model = prunq.compress.prepare_qat(torch.nn.Sequential(torch.nn.Linear(8, 4)), "binary:connect")
    assert not model[0].binarize_x
    with pytest.raises(ValueError, match="^recipe:"):
        prunq.compress.prepare_qat(torch.nn.Sequential(torch.nn.Linear(8, 4)), "int4")
    with pytest.raises(ValueError, match="^include:"):
        prunq.compress.prepare_qat(torch.nn.Sequential(torch.nn.Linear(8, 4)), include=["x"])
