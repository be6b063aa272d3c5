"""The short road of eager CPU calls (prunq.ops._eager): the same results as torch.ops.prunq.*,
and the op taken wherever the short road cannot be."""

import copy
import io

import pytest
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

import prunq
from prunq.nn import AddLayerNorm, AddRMSNorm, CSRLinear, Int8Linear, Sparse24Linear


class OpsSeen(TorchDispatchMode):
    """Records the prunq ops that reach the dispatcher."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.namespace == "prunq":
            self.names.append(func.__name__)
        return func(*args, **(kwargs or {}))


def norm_module(kind):
    norm = nn.LayerNorm(48) if kind == "layer" else nn.RMSNorm(48)
    for p in norm.parameters():
        nn.init.normal_(p)
    return AddLayerNorm.from_norm(norm) if kind == "layer" else AddRMSNorm.from_norm(norm)


def linear_module(kind):
    torch.manual_seed(0)
    linear = nn.Linear(48, 40)
    if kind == "smooth":
        return Int8Linear.from_linear(linear, input_absmax=torch.rand(48) * 10)
    module = Int8Linear.from_linear(linear, mode="weight_only" if kind == "weight_only" else "dynamic")
    if kind == "gelu":
        module.activation = "gelu"
    return module


def through_the_op(module, *inputs):
    """The module's forward with the short road closed: a dispatch mode is active."""
    with OpsSeen() as seen:
        result = module(*inputs)
    assert seen.names, "the call did not reach torch.ops.prunq"
    return result


@pytest.mark.parametrize("kind", ["layer", "rms"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_norm_modules_agree_with_the_op(cpu_isa, kind, dtype):
    module = norm_module(kind).to(dtype)
    x, residual = torch.randn(3, 5, 48, dtype=dtype), torch.randn(3, 5, 48, dtype=dtype)
    for got, expected in zip(module(x, residual), through_the_op(module, x, residual)):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["dynamic", "weight_only", "gelu", "smooth"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int8_linear_agrees_with_the_op(cpu_isa, kind, dtype):
    module = linear_module(kind)
    for shape in [(1, 48), (3, 7, 48), (0, 48)]:
        x = torch.randn(shape, dtype=dtype)
        torch.testing.assert_close(module(x), through_the_op(module, x), rtol=0, atol=0)


def sparse_module(kind):
    torch.manual_seed(0)
    linear = nn.Linear(48, 40)
    if kind.startswith("2:4"):
        return Sparse24Linear.from_linear(linear, int8=kind.endswith("int8"))
    prunq.compress.prune(linear, 0.95)  # sparse enough for the CSR kernel
    module = CSRLinear.from_linear(linear, int8=kind.endswith("int8"))
    assert module.dense_weight is None
    return module


@pytest.mark.parametrize("kind", ["2:4", "2:4 int8", "csr", "csr int8"])
def test_sparse_modules_agree_with_the_op(cpu_isa, kind):
    """Their buffers are read in place where they are contiguous, and copied where they are not."""
    module = sparse_module(kind)
    for shape in [(1, 48), (3, 7, 48), (0, 48)]:
        x = torch.randn(shape)
        torch.testing.assert_close(module(x), through_the_op(module, x), rtol=0, atol=0)
    x = torch.randn(5, 96)[:, ::2]
    expected = through_the_op(module, x.contiguous())
    torch.testing.assert_close(module(x), expected, rtol=0, atol=0)
    name = "values" if kind.startswith("2:4") else "col_indices"
    buffer = getattr(module, name)
    setattr(module, name, torch.stack([buffer, buffer], -1)[..., 0])  # the same values, strided
    assert not getattr(module, name).is_contiguous()
    torch.testing.assert_close(module(x), expected, rtol=0, atol=0)
    module.bias = nn.Parameter(module.bias + 1)  # a buffer made a parameter (to train it)
    torch.testing.assert_close(module(x), expected + 1, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", ["2:4", "csr"])
def test_sparse_modules_name_a_position_buffer_replaced_by_one_of_another_shape(kind):
    """The modules check their packing once; a buffer swapped afterwards goes to the op's checks
    instead of the kernel, which would read past its end."""
    module = sparse_module(kind)
    name, match = ("meta", "meta: expected shape") if kind == "2:4" else ("crow_indices", "crow_indices: expected")
    setattr(module, name, getattr(module, name)[:-1])
    with pytest.raises(ValueError, match=match):
        module(torch.randn(2, 48))


def test_ops_agree_with_torch_ops(cpu_isa):
    x, residual, weight, bias = torch.randn(4, 48), torch.randn(4, 48), torch.randn(48), torch.randn(48)
    with OpsSeen() as seen:
        expected = prunq.ops.add_layer_norm(x, residual, weight, bias)
    assert seen.names == ["add_layer_norm.default"]
    for got, want in zip(prunq.ops.add_layer_norm(x, residual, weight, bias), expected):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_int8_linear_sees_attribute_changes():
    module, x = linear_module("dynamic"), torch.randn(6, 48)
    plain = module(x)
    module.activation = "gelu"
    torch.testing.assert_close(module(x), nn.functional.gelu(plain), rtol=1e-5, atol=1e-5)
    module.activation = "none"
    module.w_scale.data = module.w_scale * 2  # new memory under the buffer
    torch.testing.assert_close(module(x), 2 * plain - module.bias, rtol=1e-5, atol=1e-5)


def test_norm_module_sees_parameter_changes():
    module, x, residual = norm_module("layer"), torch.randn(4, 48), torch.randn(4, 48)
    reference = nn.LayerNorm(48)
    reference.load_state_dict(module.state_dict())
    module.weight = nn.Parameter(module.weight * 3)
    reference.weight = nn.Parameter(reference.weight * 3)
    torch.testing.assert_close(module(x, residual)[0], reference(x + residual), rtol=1e-5, atol=1e-5)
    module.bias.data = module.bias + 1
    reference.bias.data = reference.bias + 1
    torch.testing.assert_close(module(x, residual)[0], reference(x + residual), rtol=1e-5, atol=1e-5)
    module.to(torch.bfloat16)
    out, _ = module(x.bfloat16(), residual.bfloat16())
    torch.testing.assert_close(out.float(), reference(x + residual), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("make", [lambda: linear_module("weight_only"), lambda: norm_module("layer")])
def test_copies_and_pickles_are_independent(make):
    module = make()
    inputs = (torch.randn(2, 48),) if isinstance(module, Int8Linear) else (torch.randn(2, 48), torch.randn(2, 48))
    expected = module(*inputs)
    clone = copy.deepcopy(module)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            tensor.zero_()
    for other in (clone, loaded):
        torch.testing.assert_close(other(*inputs), expected, rtol=0, atol=0)


def test_fake_tensors_take_the_op():
    module = linear_module("dynamic")
    norm = norm_module("layer")
    with FakeTensorMode(allow_non_fake_inputs=True) as mode:
        x = mode.from_tensor(torch.randn(3, 48))
        assert module(x).shape == (3, 40)
        assert norm(x, x)[0].shape == (3, 48)


def test_bad_input_still_names_the_argument():
    norm, linear = norm_module("layer"), linear_module("dynamic")
    with pytest.raises(TypeError, match="^residual:"):
        norm(torch.randn(2, 48), torch.randn(2, 48, dtype=torch.float64))
    with pytest.raises(ValueError, match="^residual:"):
        prunq.ops.add_layer_norm(torch.randn(2, 48), torch.randn(2, 47))
    with pytest.raises(ValueError, match="^x:"):
        linear(torch.randn(2, 47))
    with pytest.raises(TypeError, match="^x:"):
        linear(torch.randn(2, 48, dtype=torch.float64))


def test_strided_inputs_are_read_as_they_are(cpu_isa):
    norm, linear = norm_module("layer"), linear_module("weight_only")
    wide, residual = torch.randn(4, 96), torch.randn(4, 48)
    x = wide[:, ::2]
    for got, want in zip(norm(x, residual), norm(x.contiguous(), residual)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    torch.testing.assert_close(linear(x), linear(x.contiguous()), rtol=0, atol=0)


@pytest.mark.parametrize("rows", [(0,), (1,), (3, 5)])
def test_functional_int8_ops_agree_with_torch_ops(cpu_isa, rows):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(*rows, 48, generator=g)
    w_q = torch.randint(-127, 128, (40, 48), dtype=torch.int8, generator=g)
    w_scale, bias = torch.rand(40, generator=g), torch.randn(40, generator=g)
    calls = {
        "quantize_per_token": lambda: prunq.ops.quantize_per_token(x),
        "int8_linear": lambda: prunq.ops.int8_linear(*prunq.ops.quantize_per_token(x), w_q, w_scale, bias,
                                                     torch.bfloat16),
        "int8_weight_only_linear": lambda: prunq.ops.int8_weight_only_linear(x, w_q, w_scale, bias),
    }
    for name, call in calls.items():
        with OpsSeen() as seen:
            expected = call()
        assert name + ".default" in seen.names
        got = call()
        for a, b in zip(got if isinstance(got, tuple) else (got,), expected if isinstance(expected, tuple) else (expected,)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
