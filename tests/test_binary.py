"""pack_bits, binary_matmul and binary_linear against their references, on every CPU path."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prunq
from prunq._backend import triton_usable, use_backend
from prunq.formats import bits as layout
from prunq.ops.binary import binary_linear_ref, binary_matmul_ref, pack_bits_ref

from .conftest import TRITON_DEVICE
from .shapes import BINARY_K, GEMM_M_SWEEP
from .tolerances import BINARY

X_DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def with_garbage_padding(bits, k, generator):
    """bits with random values in the padding bits of the last word, which no result may read."""
    if k % 32 == 0:
        return bits
    garbage = torch.randint(-2**31, 2**31 - 1, bits.shape[:-1], generator=generator, dtype=torch.int64)
    padding = (-1 << (k % 32)) & 0xFFFFFFFF
    last = (bits[..., -1].long() & 0xFFFFFFFF) | (garbage & padding)
    out = bits.clone()
    out[..., -1] = torch.where(last >= 2**31, last - 2**32, last).to(torch.int32)
    return out


@pytest.mark.parametrize("k", BINARY_K)
def test_binary_matmul_is_exact_for_every_k(cpu_isa, k):
    g = torch.Generator().manual_seed(k)
    for m, n in [(0, 3), (1, 1), (1, 17), (5, 9), (13, 6)]:
        a = with_garbage_padding(layout.pack(torch.randn(m, k, generator=g)), k, g)
        b = with_garbage_padding(layout.pack(torch.randn(n, k, generator=g)), k, g)
        got = prunq.ops.binary_matmul(a, b, k)
        assert got.dtype == torch.int32 and torch.equal(got, binary_matmul_ref(a, b, k))
    all_equal = layout.pack(torch.ones(2, k))
    assert torch.equal(prunq.ops.binary_matmul(all_equal, all_equal, k), torch.full((2, 2), k, dtype=torch.int32))


@pytest.mark.parametrize("dtype", X_DTYPES)
def test_pack_bits_round_trips_with_zero_padding(cpu_isa, dtype):
    g = torch.Generator().manual_seed(1)
    for k in (1, 31, 32, 33, 100):
        x = torch.randn(3, 4, k + 2, generator=g).to(dtype)[..., 1:-1]  # 3-D and strided
        x[0, 0, 0] = 0.0  # zero counts as +1
        x[0, 1, 0] = float("nan")  # NaN as -1
        bits = prunq.ops.pack_bits(x)
        assert bits.shape == (3, 4, layout.words(k)) and torch.equal(bits, pack_bits_ref(x))
        assert torch.equal(layout.signs(bits, k), torch.where(x >= 0, 1, -1))
        assert (layout.signs(bits, layout.words(k) * 32)[..., k:] == -1).all()  # padding bits are 0


cases = st.fixed_dictionaries({
    "m": st.sampled_from(GEMM_M_SWEEP), "k": st.integers(1, 300), "n": st.integers(1, 40),
    "x": st.sampled_from(X_DTYPES), "binarize_x": st.booleans(), "bias": st.booleans(),
    "strided": st.booleans(), "seed": st.integers(0, 2**16),
})


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases)
def test_binary_linear_matches_the_reference(cpu_isa, case):
    m, k, n, g = case["m"], case["k"], case["n"], torch.Generator().manual_seed(case["seed"])
    x = torch.randn(m, k + 3, generator=g).to(case["x"])
    x = x[:, 1:-2] if case["strided"] else x[:, :k].contiguous()
    w_bits = with_garbage_padding(layout.pack(torch.randn(n, k, generator=g)), k, g)
    w_scale = torch.rand(n, generator=g) + 0.1
    bias = torch.randn(n, generator=g) if case["bias"] else None
    got = prunq.ops.binary_linear(x, w_bits, w_scale, bias, case["binarize_x"])
    assert got.dtype == x.dtype and got.shape == (m, n)
    torch.testing.assert_close(got, binary_linear_ref(x, w_bits, w_scale, bias, case["binarize_x"]),
                               **BINARY[case["x"]])


@pytest.mark.parametrize("binarize_x", [True, False])
def test_binary_linear_long_rows_and_3d_x(cpu_isa, binarize_x):
    g = torch.Generator().manual_seed(2)
    for k in (1000, 4099):
        x = torch.randn(2, 3, k, generator=g)
        w_bits = layout.pack(torch.randn(21, k, generator=g))
        w_scale = torch.rand(21, generator=g)
        torch.testing.assert_close(prunq.ops.binary_linear(x, w_bits, w_scale, None, binarize_x),
                                   binary_linear_ref(x, w_bits, w_scale, None, binarize_x), **BINARY[torch.float32])


@pytest.mark.parametrize("binarize_x", [True, False])
def test_many_rows_with_and_without_the_modules_columns(cpu_isa, binarize_x):
    # From 128 rows the op derives the weight's columns itself; a module keeps them for any rows.
    g = torch.Generator().manual_seed(6)
    for m, k, n in [(130, 70, 37), (200, 512, 16), (20, 33, 5)]:
        linear = torch.nn.Linear(k, n)
        module = prunq.nn.BinaryLinear.from_linear(linear, binarize_x=binarize_x)
        module.w_bits.copy_(with_garbage_padding(module.w_bits, k, g))
        module.w_columns = prunq.ops.binary.columns(module.w_bits)
        x = torch.randn(m, k, generator=g)
        expected = binary_linear_ref(x, module.w_bits, module.w_scale, module.bias, binarize_x)
        torch.testing.assert_close(module(x), expected, **BINARY[torch.float32])
        torch.testing.assert_close(prunq.ops.binary_linear(x, module.w_bits, module.w_scale, module.bias, binarize_x),
                                   expected, **BINARY[torch.float32])


def test_ops_pass_opcheck():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 45, generator=g)
    bits = prunq.ops.pack_bits(x)
    w_bits = layout.pack(torch.randn(6, 45, generator=g))
    torch.library.opcheck(torch.ops.prunq.pack_bits, (x,))
    torch.library.opcheck(torch.ops.prunq.binary_matmul, (bits, w_bits, 45))
    for binarize_x in (True, False):
        torch.library.opcheck(torch.ops.prunq.binary_linear, (x, w_bits, torch.rand(6), torch.randn(6), binarize_x))


def test_bad_inputs_name_the_argument():
    a = layout.pack(torch.randn(3, 40))
    b = layout.pack(torch.randn(5, 40))
    with pytest.raises(TypeError, match="^a_bits:"):
        prunq.ops.binary_matmul(a.long(), b, 40)
    with pytest.raises(ValueError, match="^k:.*larger than"):
        prunq.ops.binary_matmul(a, b, 65)
    with pytest.raises(ValueError, match="^k:"):
        prunq.ops.binary_matmul(a, b, 0)
    with pytest.raises(ValueError, match="^a_bits:"):
        prunq.ops.binary_matmul(a, b, 20)  # two words but k needs one
    with pytest.raises(ValueError, match="^b_bits:"):
        prunq.ops.binary_matmul(a, b[:, :1], 40)
    x = torch.randn(2, 40)
    with pytest.raises(ValueError, match="^w_scale:"):
        prunq.ops.binary_linear(x, b, torch.ones(4))
    with pytest.raises(TypeError, match="^w_scale:"):
        prunq.ops.binary_linear(x, b, torch.ones(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="^w_bits:"):
        prunq.ops.binary_linear(torch.randn(2, 70), b, torch.ones(5))
    with pytest.raises(TypeError, match="^x:"):
        prunq.ops.binary_linear(x.long(), b, torch.ones(5))
    with pytest.raises(TypeError, match="^x:"):
        prunq.ops.pack_bits(torch.ones(3, dtype=torch.int32))


@pytest.mark.skipif(not triton_usable()[0], reason=triton_usable()[1])
@pytest.mark.parametrize("x_dtype", X_DTYPES)
def test_triton_kernels_match_the_reference(x_dtype):
    g = torch.Generator().manual_seed(4)
    for m, k, n in [(1, 13, 5), (3, 64, 33), (17, 100, 40), (2, 300, 3)]:
        x = torch.randn(m, k, generator=g).to(x_dtype)
        w_bits = with_garbage_padding(layout.pack(torch.randn(n, k, generator=g)), k, g)
        x_bits = with_garbage_padding(layout.pack(x), k, g)
        w_scale, bias = torch.rand(n, generator=g), torch.randn(n, generator=g)
        on_device = [t.to(TRITON_DEVICE) for t in (x, x_bits, w_bits, w_scale, bias)]
        with use_backend("triton"):
            assert torch.equal(prunq.ops.binary_matmul(*on_device[1:3], k).cpu(), binary_matmul_ref(x_bits, w_bits, k))
            for binarize_x in (True, False):
                got = prunq.ops.binary_linear(on_device[0], *on_device[2:], binarize_x)
                torch.testing.assert_close(got.cpu(), binary_linear_ref(x, w_bits, w_scale, bias, binarize_x),
                                           **BINARY[x_dtype])


@pytest.mark.parametrize("binarize_x", [True, False])
def test_binary_linear_module_round_trips_and_compiles(binarize_x):
    torch.manual_seed(5)
    linear = torch.nn.Linear(70, 12)
    module = prunq.nn.BinaryLinear.from_linear(linear, binarize_x=binarize_x)
    w = linear.weight.detach()
    assert torch.equal(module.w_scale, w.abs().mean(1))
    assert module.w_bits.nbytes * 32 <= w.nbytes + 32 * 4 * 12  # a word of padding per row at most
    x = torch.randn(2, 5, 70)
    expected = binary_linear_ref(x, module.w_bits, module.w_scale, module.bias, binarize_x)
    torch.testing.assert_close(module(x), expected, **BINARY[torch.float32])
    fresh = prunq.nn.BinaryLinear(**{k: v for k, v in module.config().items() if k != "type"})
    fresh.load_state_dict(module.state_dict())
    assert torch.equal(fresh(x), module(x))
    torch.testing.assert_close(torch.compile(module, fullgraph=True)(x), module(x), rtol=1e-6, atol=1e-6)
    half = module.to(torch.bfloat16)
    assert half.w_bits.dtype == torch.int32 and half.w_scale.dtype == torch.float32
    assert half(x.bfloat16()).dtype == torch.bfloat16
    assert f"binarize_x={binarize_x}" in repr(module)
