"""quantize_per_token, int8_linear, int8_linear_prepacked, int8_weight_only_linear and its prepacked form."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prunq
from prunq import _native
from prunq._backend import triton_usable, use_backend
from prunq.formats.int8 import quantize_weight, vnni_pack, weight_only_pack
from prunq.ops._library import HAS_TRITON_OP
from prunq.ops import int8_gemm
from prunq.ops.int8_gemm import (int8_linear_prepacked_ref, int8_linear_ref, int8_weight_only_linear_ref,
                                 quantize_per_token_ref)

from .conftest import TRITON_DEVICE, requires_cuda
from .shapes import GEMM_M_SWEEP, GEMM_UNALIGNED
from .tolerances import GELU_EPILOGUE, INT8_EPILOGUE, MIN_SQNR_DB, WEIGHT_ONLY

FLOATS = [torch.float32, torch.bfloat16, torch.float16]


def sqnr_db(signal, approx):
    return (10 * torch.log10(signal.pow(2).mean() / (signal - approx).pow(2).mean())).item()


def random_int8(*shape, generator):
    return torch.randint(-128, 128, shape, dtype=torch.int8, generator=generator)


def strided(t):
    """The same values as a view with a row stride larger than the row."""
    wide = torch.zeros(*t.shape[:-1], t.shape[-1] + 3, dtype=t.dtype)
    wide[..., 1:-2] = t
    return wide[..., 1:-2]


gemm_cases = st.fixed_dictionaries({
    "shape": st.one_of(st.sampled_from(GEMM_UNALIGNED),
                       st.tuples(st.sampled_from(GEMM_M_SWEEP), st.integers(1, 300), st.integers(1, 200))),
    "seed": st.integers(0, 2**16),
    "noncontiguous": st.booleans(),
})


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=gemm_cases)
def test_int8_linear_integer_part_is_exact(cpu_isa, case):
    """With unit scales and no bias the output is the integer dot product itself (exact in fp32
    while |acc| < 2^24, i.e. K <= 1040 at full range)."""
    (m, k, n), g = case["shape"], torch.Generator().manual_seed(case["seed"])
    x_q, w_q = random_int8(m, k, generator=g), random_int8(n, k, generator=g)
    if case["noncontiguous"]:
        x_q, w_q = strided(x_q), strided(w_q)
    ones_m, ones_n = torch.ones(m), torch.ones(n)
    expected = int8_linear_ref(x_q, ones_m, w_q, ones_n)
    torch.testing.assert_close(prunq.ops.int8_linear(x_q, ones_m, w_q, ones_n), expected, rtol=0, atol=0)
    packed, colsum = vnni_pack(w_q.contiguous())
    got = prunq.ops.int8_linear_prepacked(x_q, ones_m, w_q, packed, colsum, ones_n)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("out_dtype", FLOATS)
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=gemm_cases, with_bias=st.booleans())
def test_int8_linear_matches_reference(cpu_isa, out_dtype, case, with_bias):
    (m, k, n), g = case["shape"], torch.Generator().manual_seed(case["seed"])
    x_q, w_q = random_int8(m, k, generator=g), random_int8(n, k, generator=g)
    # Signed weight scales: Int8Linear(weight_bits=4) stores them (prunq.formats.int4).
    x_scale, w_scale = torch.rand(m, generator=g) * 0.1, (torch.rand(n, generator=g) - 0.5) * 0.02
    bias = torch.randn(n, generator=g).to(out_dtype) if with_bias else None
    expected = int8_linear_ref(x_q, x_scale, w_q, w_scale, bias, out_dtype)
    got = prunq.ops.int8_linear(x_q, x_scale, w_q, w_scale, bias, out_dtype)
    assert got.dtype == out_dtype and got.shape == (m, n)
    torch.testing.assert_close(got, expected, **INT8_EPILOGUE[out_dtype])
    packed, colsum = vnni_pack(w_q)
    got = prunq.ops.int8_linear_prepacked(x_q, x_scale, w_q, packed, colsum, w_scale, bias, out_dtype)
    torch.testing.assert_close(got, expected, **INT8_EPILOGUE[out_dtype])


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(m=st.integers(0, 40), k=st.integers(1, 700), dtype=st.sampled_from(FLOATS), seed=st.integers(0, 2**16),
       noncontiguous=st.booleans(), zero_row=st.booleans())
def test_quantize_per_token_is_exact(cpu_isa, m, k, dtype, seed, noncontiguous, zero_row):
    x = (torch.randn(m, k, generator=torch.Generator().manual_seed(seed)) * 5).to(dtype)
    if zero_row and m:
        x[m // 2] = 0
    if noncontiguous:
        x = strided(x)
    q, scale = prunq.ops.quantize_per_token(x)
    ref_q, ref_scale = quantize_per_token_ref(x)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32
    torch.testing.assert_close(q, ref_q, rtol=0, atol=0)
    torch.testing.assert_close(scale, ref_scale, rtol=0, atol=0)
    if zero_row and m:
        assert scale[m // 2] == 0 and not q[m // 2].any()


def weight_only(x, w_q, w_scale, bias, packed):
    """int8_weight_only_linear, or its prepacked form with w_q packed where this CPU path reads it."""
    if packed:
        return prunq.ops.int8_weight_only_linear_prepacked(x, w_q, weight_only_pack(w_q), w_scale, bias)
    return prunq.ops.int8_weight_only_linear(x, w_q, w_scale, bias)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "plain"])
@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=gemm_cases, with_bias=st.booleans())
def test_weight_only_matches_reference(cpu_isa, dtype, packed, case, with_bias):
    (m, k, n), g = case["shape"], torch.Generator().manual_seed(case["seed"])
    x = torch.randn(m, k, generator=g).to(dtype)
    w_q = random_int8(n, k, generator=g)
    if case["noncontiguous"]:
        x, w_q = strided(x), strided(w_q)
    w_scale = (torch.rand(n, generator=g) - 0.5) * 0.02  # signed, as with 4-bit weights
    bias = torch.randn(n, generator=g) if with_bias else None
    got = weight_only(x, w_q, w_scale, bias, packed)
    assert got.dtype == dtype and got.shape == (m, n)
    torch.testing.assert_close(got, int8_weight_only_linear_ref(x, w_q, w_scale, bias), **WEIGHT_ONLY[dtype])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "plain"])
@pytest.mark.parametrize("m, k, n", [(70, 4100, 37), (1, 4100, 200), (13, 300, 131), (30, 260, 300), (1031, 260, 40)])
def test_weight_only_long_rows_and_many_channels(cpu_isa, dtype, packed, m, k, n):
    """K long enough that the kernels walk x in more than one panel of rows, N wide enough that
    threads split the channels into several blocks with a partial last one, K and N off every
    vector width, row counts on both sides of a tile (6 and 12 rows for the packed kernel), and
    rows enough for two threads to split x's rows instead, each in row panels with a partial last."""
    g = torch.Generator().manual_seed(7)
    x, w_q = torch.randn(m, k, generator=g).to(dtype), random_int8(n, k, generator=g)
    w_scale, bias = torch.rand(n, generator=g) * 0.01, torch.randn(n, generator=g)
    got = weight_only(x, w_q, w_scale, bias, packed)
    torch.testing.assert_close(got, int8_weight_only_linear_ref(x, w_q, w_scale, bias), **WEIGHT_ONLY[dtype])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "plain"])
@pytest.mark.parametrize("activation", ["none", "gelu"])
@pytest.mark.parametrize("smooth", [False, True], ids=["", "smooth"])
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=gemm_cases)
def test_dynamic_linear_is_quantize_then_linear(cpu_isa, dtype, packed, activation, smooth, case):
    """The fused op gives exactly what its two steps give, on every CPU path."""
    m, k, n = case["shape"]
    g = torch.Generator().manual_seed(case["seed"])
    x = (torch.randn(m, k, generator=g) * 2).to(dtype)
    if case["noncontiguous"]:
        x = strided(x)
    w_q = random_int8(n, k, generator=g)
    w_scale, bias = torch.rand(n, generator=g) * 0.002, torch.randn(n, generator=g)
    channel_scale = torch.rand(k, generator=g) * 4 if smooth else None
    w_packed, w_colsum = vnni_pack(w_q) if packed else (torch.empty(0, dtype=torch.int8), torch.empty(0, dtype=torch.int32))
    got = prunq.ops.int8_dynamic_linear_prepacked(x, w_q, w_packed, w_colsum, w_scale, bias, activation,
                                                  channel_scale)
    x_q, x_scale = prunq.ops.quantize_per_token(x if channel_scale is None else x.float() * channel_scale)
    two_steps = prunq.ops.int8_linear_prepacked(x_q, x_scale, w_q, w_packed, w_colsum, w_scale, bias, dtype, activation)
    assert got.dtype == dtype
    torch.testing.assert_close(got, two_steps, rtol=0, atol=0)


def test_dynamic_linear_matches_its_reference_in_three_dimensions():
    from prunq.ops.int8_gemm import int8_dynamic_linear_prepacked_ref

    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 9, 130, generator=g)
    w_q, w_scale = quantize_weight(torch.randn(70, 130, generator=g))
    got = prunq.ops.int8_dynamic_linear_prepacked(x, w_q, *vnni_pack(w_q), w_scale, None, "gelu")
    assert got.shape == (2, 9, 70)
    torch.testing.assert_close(got, int8_dynamic_linear_prepacked_ref(x, w_q, w_scale, None, "gelu"),
                               **GELU_EPILOGUE[torch.float32])


@pytest.mark.parametrize("out_dtype", FLOATS)
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "plain"])
@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=gemm_cases)
def test_gelu_epilogue_matches_reference(cpu_isa, out_dtype, packed, case):
    m, k, n = case["shape"]
    g = torch.Generator().manual_seed(case["seed"])
    x_q, w_q = random_int8(m, k, generator=g), random_int8(n, k, generator=g)
    x_scale, w_scale = torch.rand(m, generator=g) * 0.002, torch.rand(n, generator=g) * 0.002
    bias = torch.randn(n, generator=g)
    w_packed, w_colsum = vnni_pack(w_q) if packed else (torch.empty(0, dtype=torch.int8), torch.empty(0, dtype=torch.int32))
    got = prunq.ops.int8_linear_prepacked(x_q, x_scale, w_q, w_packed, w_colsum, w_scale, bias, out_dtype, "gelu")
    want = int8_linear_prepacked_ref(x_q, x_scale, w_q, w_scale, bias, out_dtype, "gelu")
    torch.testing.assert_close(got, want, **GELU_EPILOGUE[out_dtype])


def test_channel_scale_of_the_wrong_shape_or_dtype_is_refused():
    x, w_q = torch.randn(2, 8), torch.zeros(4, 8, dtype=torch.int8)
    empty = torch.empty(0, dtype=torch.int8), torch.empty(0, dtype=torch.int32)
    with pytest.raises(ValueError, match="x_channel_scale"):
        prunq.ops.int8_dynamic_linear_prepacked(x, w_q, *empty, torch.ones(4), None, "none", torch.ones(7))
    with pytest.raises(TypeError, match="x_channel_scale"):
        prunq.ops.int8_dynamic_linear_prepacked(x, w_q, *empty, torch.ones(4), None, "none", torch.ones(8).double())


def test_gelu_epilogue_rejects_an_unknown_activation():
    x_q, w_q = torch.zeros(2, 8, dtype=torch.int8), torch.zeros(4, 8, dtype=torch.int8)
    w_packed, w_colsum = vnni_pack(w_q)
    with pytest.raises(ValueError, match="activation"):
        prunq.ops.int8_linear_prepacked(x_q, torch.ones(2), w_q, w_packed, w_colsum, torch.ones(4), None, None, "relu")


def test_three_dimensional_inputs():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 40, generator=g)
    w_q, w_scale = quantize_weight(torch.randn(24, 40, generator=g))
    q, s = prunq.ops.quantize_per_token(x)
    assert q.shape == x.shape and s.shape == (2, 5)
    y = prunq.ops.int8_linear(q, s, w_q, w_scale)
    torch.testing.assert_close(y, int8_linear_ref(q, s, w_q, w_scale), **INT8_EPILOGUE[torch.float32])
    assert prunq.ops.int8_weight_only_linear(x, w_q, w_scale).shape == (2, 5, 24)


@pytest.mark.parametrize("m,k,n", [(1, 4096, 256), (64, 1024, 300), (130, 2048, 129)])
def test_w8a8_is_close_to_float_linear(m, k, n):
    """Quantization error: SQNR against the float layer above torchao's 20 dB bar."""
    g = torch.Generator().manual_seed(1)
    x, w, b = torch.randn(m, k, generator=g), torch.randn(n, k, generator=g) / k**0.5, torch.randn(n, generator=g)
    w_q, w_scale = quantize_weight(w)
    q, s = prunq.ops.quantize_per_token(x)
    exact = x @ w.T + b
    assert sqnr_db(exact, prunq.ops.int8_linear(q, s, w_q, w_scale, b)) > MIN_SQNR_DB
    assert sqnr_db(exact, prunq.ops.int8_weight_only_linear(x, w_q, w_scale, b)) > MIN_SQNR_DB


def test_nan_in_a_row_makes_that_row_nan():
    x = torch.randn(3, 50)
    x[1, 7] = float("nan")
    q, s = prunq.ops.quantize_per_token(x)
    assert torch.isnan(s[1]) and not torch.isnan(s[[0, 2]]).any()
    w_q, w_scale = quantize_weight(torch.randn(8, 50))
    y = prunq.ops.int8_linear(q, s, w_q, w_scale)
    assert torch.isnan(y[1]).all() and not torch.isnan(y[[0, 2]]).any()


def test_large_k_beyond_fp32_exact_range():
    """K = 4100 at full range: |acc| exceeds 2^24, the epilogue rounds once in fp32."""
    g = torch.Generator().manual_seed(2)
    x_q = torch.full((3, 4100), 127, dtype=torch.int8)
    w_q = random_int8(70, 4100, generator=g)
    ones_m, ones_n = torch.ones(3), torch.ones(70)
    expected = int8_linear_ref(x_q, ones_m, w_q, ones_n)
    torch.testing.assert_close(prunq.ops.int8_linear(x_q, ones_m, w_q, ones_n), expected, **INT8_EPILOGUE[torch.float32])


@pytest.mark.parametrize("op", ["quantize_per_token", "int8_linear", "int8_linear_prepacked", "int8_dynamic_linear_prepacked",
                                "int8_weight_only_linear", "int8_weight_only_linear_prepacked"])
def test_opcheck(op):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(4, 3, 72, generator=g)
    w_q, w_scale = quantize_weight(torch.randn(20, 72, generator=g))
    q, s = prunq.ops.quantize_per_token(x)
    packed, colsum = vnni_pack(w_q)
    bias = torch.randn(20)
    args = {
        "quantize_per_token": (x,),
        "int8_linear": (q, s, w_q, w_scale, bias, torch.bfloat16),
        "int8_linear_prepacked": (q, s, w_q, packed, colsum, w_scale, None, None),
        "int8_dynamic_linear_prepacked": (x, w_q, packed, colsum, w_scale, bias, "gelu", torch.rand(72) + 0.5),
        "int8_weight_only_linear": (x, w_q, w_scale, bias),
        "int8_weight_only_linear_prepacked": (x.bfloat16(), w_q, weight_only_pack(w_q), w_scale, bias),
    }[op]
    torch.library.opcheck(getattr(torch.ops.prunq, op).default, args)


TRITON_SHAPES = [(0, 16, 8), (1, 5, 3), (7, 100, 17), (33, 257, 130)]


def run_on(device, backend):
    """The tests below call the ops on `device` with the path forced (Triton runs through its
    interpreter on CPU tensors)."""
    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if device == "cpu" and backend == "triton" and TRITON_DEVICE != "cpu":
        pytest.skip("Triton runs CPU tensors only through its interpreter, which is off where a GPU is present")
    if backend == "triton" and not prunq._backend.triton_usable()[0]:
        pytest.skip(prunq._backend.triton_usable()[1])
    return use_backend(backend)


GPU_PATHS = [("cpu", "triton"), pytest.param("cuda", "triton", marks=requires_cuda),
             pytest.param("cuda", None, marks=requires_cuda)]
# quantize_per_token and int8_weight_only_linear also have prunq._cuda kernels.
CUDA_KERNEL_PATHS = GPU_PATHS + [pytest.param("cuda", "cuda", marks=requires_cuda)]
# Shapes for those kernels' vector paths (K a multiple of 8): M = 16 is one block of rows, M > 16
# takes several; N is not a multiple of the 8 channels a block covers.
CUDA_VECTOR_SHAPES = [(1, 4096, 300), (5, 264, 37), (16, 512, 64), (37, 1024, 9)]


@pytest.mark.parametrize("device,backend", CUDA_KERNEL_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_gpu_paths_quantize_is_exact(device, backend, dtype):
    g = torch.Generator().manual_seed(2)
    for m, k, _ in TRITON_SHAPES + (CUDA_VECTOR_SHAPES if device == "cuda" else []):
        x = (torch.randn(m, k, generator=g) * 3).to(dtype)
        if m > 2:
            x[1] = 0
            x[2, k // 2] = float("nan")
        with run_on(device, backend):
            q, scale = prunq.ops.quantize_per_token(x.to(device))
        want_q, want_scale = quantize_per_token_ref(x)
        finite = ~want_scale.isnan()
        assert torch.equal(q.cpu()[finite], want_q[finite])
        torch.testing.assert_close(scale.cpu(), want_scale, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("device,backend", GPU_PATHS)
@pytest.mark.parametrize("out_dtype", FLOATS)
@pytest.mark.parametrize("activation", ["none", "gelu"])
def test_triton_int8_linear_matches_reference(device, backend, out_dtype, activation):
    g = torch.Generator().manual_seed(3)
    for m, k, n in TRITON_SHAPES:
        x_q, w_q = random_int8(m, k, generator=g), random_int8(n, k, generator=g)
        x_scale, w_scale = torch.rand(m, generator=g) * 0.002, (torch.rand(n, generator=g) - 0.5) * 0.004  # signed
        bias = torch.randn(n, generator=g)
        empty = torch.empty(0, dtype=torch.int8, device=device), torch.empty(0, dtype=torch.int32, device=device)
        with run_on(device, backend):
            args = [t.to(device) for t in (x_q, x_scale, w_q)]
            got = prunq.ops.int8_linear_prepacked(*args, *empty, w_scale.to(device), bias.to(device), out_dtype, activation)
            if activation == "none":
                plain = prunq.ops.int8_linear(*args, w_scale.to(device), bias.to(device), out_dtype)
                torch.testing.assert_close(plain, got, rtol=0, atol=0)
        want = int8_linear_prepacked_ref(x_q, x_scale, w_q, w_scale, bias, out_dtype, activation)
        tolerance = GELU_EPILOGUE if activation == "gelu" else INT8_EPILOGUE
        torch.testing.assert_close(got.cpu(), want, **tolerance[out_dtype])


@pytest.mark.parametrize("device,backend", GPU_PATHS)
def test_triton_dynamic_linear_is_quantize_then_linear(device, backend):
    g = torch.Generator().manual_seed(5)
    x, w_q = torch.randn(33, 257, generator=g), random_int8(130, 257, generator=g)
    w_scale, bias = torch.rand(130, generator=g) * 0.002, torch.randn(130, generator=g)
    channel_scale = torch.rand(257, generator=g) * 4
    empty = torch.empty(0, dtype=torch.int8, device=device), torch.empty(0, dtype=torch.int32, device=device)
    with run_on(device, backend):
        for scale in (None, channel_scale.to(device)):
            got = prunq.ops.int8_dynamic_linear_prepacked(x.to(device), w_q.to(device), *empty, w_scale.to(device),
                                                          bias.to(device), "none", scale)
            x_q, x_scale = prunq.ops.quantize_per_token(x.to(device) if scale is None else x.to(device) * scale)
            two_steps = prunq.ops.int8_linear(x_q, x_scale, w_q.to(device), w_scale.to(device), bias.to(device))
            torch.testing.assert_close(got, two_steps, rtol=0, atol=0)


@pytest.mark.parametrize("device,backend", CUDA_KERNEL_PATHS)
@pytest.mark.parametrize("dtype", FLOATS)
def test_gpu_paths_weight_only_matches_reference(device, backend, dtype):
    g = torch.Generator().manual_seed(4)
    for m, k, n in TRITON_SHAPES + (CUDA_VECTOR_SHAPES if device == "cuda" else []):
        x, w_q = torch.randn(m, k, generator=g).to(dtype), random_int8(n, k, generator=g)
        w_scale, bias = torch.rand(n, generator=g) * 0.01, torch.randn(n, generator=g)
        with run_on(device, backend):
            got = prunq.ops.int8_weight_only_linear(strided(x).to(device), w_q.to(device), w_scale.to(device),
                                                    bias.to(device))
        assert got.dtype == dtype
        torch.testing.assert_close(got.cpu(), int8_weight_only_linear_ref(x, w_q, w_scale, bias), **WEIGHT_ONLY[dtype])


@pytest.mark.skipif(not HAS_TRITON_OP, reason="torch.library.triton_op needs torch >= 2.6")
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_triton_ops_give_their_ops_results(device):
    """The triton_ops that torch.compile traces into run the kernels of the ops' Triton path."""
    g = torch.Generator().manual_seed(6)
    x, w_q = torch.randn(2, 5, 70, generator=g), random_int8(33, 70, generator=g)
    w_scale, bias, channel_scale = torch.rand(33, generator=g) * 0.01, torch.randn(33, generator=g), torch.rand(70) + 0.5
    x, w_q, w_scale, bias, channel_scale = (t.to(device) for t in (x, w_q, w_scale, bias, channel_scale))
    ops, empty = torch.ops.prunq, (torch.empty(0, dtype=torch.int8, device=device),
                                   torch.empty(0, dtype=torch.int32, device=device))
    with run_on(device, "triton"):
        q, scale = ops.quantize_per_token_triton(x, None)
        for got, want in zip((q, scale), prunq.ops.quantize_per_token(x)):
            assert torch.equal(got, want)
        got = ops.int8_linear_triton(q, scale, w_q, w_scale, bias, torch.bfloat16, "gelu")
        assert torch.equal(got, prunq.ops.int8_linear_prepacked(q, scale, w_q, *empty, w_scale, bias, torch.bfloat16,
                                                                "gelu"))
        smooth_q, smooth_scale = ops.quantize_per_token_triton(x, channel_scale)
        assert torch.equal(ops.int8_linear_triton(smooth_q, smooth_scale, w_q, w_scale, None, None, "none"),
                           prunq.ops.int8_dynamic_linear_prepacked(x, w_q, *empty, w_scale, None, "none", channel_scale))
        assert torch.equal(ops.int8_weight_only_linear_triton(x, w_q, w_scale, bias),
                           prunq.ops.int8_weight_only_linear(x, w_q, w_scale, bias))


def test_forced_cuda_backend_on_cpu_tensors_is_an_error():
    with use_backend("cuda"), pytest.raises(RuntimeError, match="no such kernel"):
        prunq.ops.quantize_per_token(torch.randn(2, 8))


@pytest.mark.skipif(_native.CUDA is None, reason="prunq._cuda is not built")
@pytest.mark.parametrize("backend", ["cuda", "native"])
def test_forced_cuda_backend_routes_only_ops_with_a_cuda_kernel(backend):
    """Decided before any tensor is touched, so this runs without a GPU."""
    with use_backend(backend):
        assert int8_gemm._path_with_cuda_kernel("cuda") == "cuda"
        with pytest.raises(RuntimeError, match="no CUDA C"):
            int8_gemm._path("cuda")


def test_reference_backend():
    g = torch.Generator().manual_seed(4)
    x_q, w_q = random_int8(5, 30, generator=g), random_int8(7, 30, generator=g)
    xs, ws = torch.rand(5), torch.rand(7)
    with use_backend("reference"):
        assert torch.equal(prunq.ops.int8_linear(x_q, xs, w_q, ws), int8_linear_ref(x_q, xs, w_q, ws))


def bad_int8_linear_inputs():
    x_q, xs = torch.zeros(4, 16, dtype=torch.int8), torch.ones(4)
    w_q, ws = torch.zeros(8, 16, dtype=torch.int8), torch.ones(8)
    yield "w_q", TypeError, (x_q, xs, w_q.float(), ws)
    yield "x_q", TypeError, (x_q.float(), xs, w_q, ws)
    yield "x_q", ValueError, (x_q[:, :15], xs, w_q, ws)
    yield "w_scale", ValueError, (x_q, xs, w_q, ws[:7])
    yield "w_scale", TypeError, (x_q, xs, w_q, ws.double())
    yield "x_scale", ValueError, (x_q, xs[:3], w_q, ws)
    yield "x_scale", TypeError, (x_q, xs.half(), w_q, ws)
    yield "bias", ValueError, (x_q, xs, w_q, ws, torch.zeros(9))
    yield "w_q", ValueError, (x_q, xs, w_q.to("meta"), ws)
    yield "out_dtype", TypeError, (x_q, xs, w_q, ws, None, torch.int32)


@pytest.mark.parametrize("name,error,args", list(bad_int8_linear_inputs()))
def test_int8_linear_bad_input_names_the_argument(name, error, args):
    with pytest.raises(error, match=f"^{name}:"):
        prunq.ops.int8_linear(*args)


def test_other_bad_inputs():
    w_q, ws = torch.zeros(8, 16, dtype=torch.int8), torch.ones(8)
    with pytest.raises(TypeError, match="^x:"):
        prunq.ops.quantize_per_token(torch.zeros(3, 4, dtype=torch.int32))
    with pytest.raises(ValueError, match="^x:"):
        prunq.ops.int8_weight_only_linear(torch.zeros(3, 15), w_q, ws)
    with pytest.raises(TypeError, match="^x:"):
        prunq.ops.int8_weight_only_linear(torch.zeros(3, 16, dtype=torch.int8), w_q, ws)


@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("activation", ["none", "gelu"])
@pytest.mark.parametrize("x_dtype, channel_scaled", [(torch.float32, False), (torch.bfloat16, True),
                                                      (torch.float16, False)])
def test_narrow_weights_kernel_gives_the_exact_kernels_output(cpu_isa, out_dtype, activation, x_dtype,
                                                              channel_scaled):
    """Packed 4-bit weights (|w| <= 8) flagged narrow: on the AVX2 path the vpmaddubsw kernel (int16
    sums over 8 groups of 4 k, K blocks of 512, tiles of 4 rows or one), elsewhere the flag is
    ignored. Its output and x's scales equal the exact kernel's bit for bit, over odd shapes, for
    fp32, bf16 and fp16 x, with SmoothQuant's channel scale and a row holding inf."""
    if not _native.C.packed_gemm_available():
        pytest.skip("no packed GEMM on this path")
    g = torch.Generator().manual_seed(0)
    code = _native.dtype_code
    for m, k, n in [(1, 4, 1), (1, 1000, 200), (3, 36, 70), (4, 100, 64), (5, 1030, 130), (9, 2052, 8),
                    (17, 33, 200)]:
        w = torch.randint(-8, 8, (n, k), dtype=torch.int8, generator=g)
        w[:, 0] = -8
        packed, colsum = vnni_pack(w)
        x = torch.randn(m, k, generator=g).to(x_dtype)
        x[m // 2, k // 2] = float("inf")
        w_scale, bias = torch.rand(n, generator=g), torch.randn(n, generator=g)
        channel_scale = torch.rand(k, generator=g) + 0.5
        outs, scales = [], []
        for narrow in (False, True):
            out, x_scale = torch.empty(m, n, dtype=out_dtype), torch.empty(m)
            _native.C.int8_dynamic_gemm(x.data_ptr(), code(x.dtype), channel_scale.data_ptr() if channel_scaled else 0,
                                        x_scale.data_ptr(), packed.data_ptr(), colsum.data_ptr(), w_scale.data_ptr(),
                                        bias.data_ptr(), out.data_ptr(), code(out_dtype), m, n, k,
                                        torch.get_num_threads(), int8_gemm.ACTIVATIONS[activation], narrow)
            outs.append(out)
            scales.append(x_scale)
        for exact, narrow in (outs, scales):  # bit for bit, NaN where the inf row makes it
            torch.testing.assert_close(narrow, exact, rtol=0, atol=0, equal_nan=True, msg=f"{(m, k, n)}")


@pytest.mark.parametrize("weight_bits", [8, 4])
def test_int8_linear_on_every_path_takes_narrow_kernels_only_for_narrow_weights(cpu_isa, weight_bits):
    """Int8Linear's eager call flags its packed weights narrow when they all lie within +-8: 8-bit
    weights (here up to +-127) must still give the reference."""
    torch.manual_seed(0)
    module = prunq.nn.Int8Linear.from_linear(torch.nn.Linear(1030, 130), weight_bits=weight_bits)
    assert module.w_q.abs().max() == (8 if weight_bits == 4 else 127)
    x = torch.randn(2, 9, 1030)
    with torch.no_grad():
        want = int8_gemm.int8_dynamic_linear_prepacked_ref(x, module.w_q, module.w_scale, module.bias)
        torch.testing.assert_close(module(x), want, rtol=1e-5, atol=1e-5)


def vnni_pack_ref(w_q):
    """The packing in plain PyTorch: panels of 64 channels (N padded with zero rows), each a run
    of groups of 4 k (K padded with zeros) holding the panel's channels' 4 bytes in turn; and
    each channel's sum."""
    n, k = w_q.shape
    n_padded, k_padded = _native.C.vnni_padded_shape(n, k)
    w = torch.zeros(n_padded, k_padded, dtype=torch.int8)
    w[:n, :k] = w_q
    return w.view(n_padded // 64, 64, k_padded // 4, 4).transpose(1, 2).reshape(-1), w.sum(1, dtype=torch.int32)


@pytest.mark.skipif(_native.C is None or not _native.C.packed_gemm_available(), reason="needs a packed-panel kernel")
@pytest.mark.parametrize("n, k", [(1, 1), (64, 4), (65, 7), (130, 1030), (3, 0)])
def test_vnni_pack_lays_out_w_as_the_reference(n, k):
    w_q = random_int8(n, k, generator=torch.Generator().manual_seed(n + k))
    packed, colsum = vnni_pack(w_q)
    want_packed, want_colsum = vnni_pack_ref(w_q)
    assert torch.equal(packed, want_packed) and torch.equal(colsum, want_colsum)


@pytest.mark.parametrize("rows", [1, 64, 130])  # from 64 rows int8_linear packs w for the call
def test_int8_linear_on_4_bit_weights_matches_reference(cpu_isa, rows):
    """int8_linear takes the kernel for 4-bit weights where it packs w (AVX2): it must still give
    the exact products, the weight of largest magnitude (-8) included."""
    g = torch.Generator().manual_seed(rows)
    x_q = random_int8(rows, 1030, generator=g)
    x_q[0] = 127  # unsigned 255 against -8: the largest products the int16 sums meet
    w_q = torch.randint(-8, 8, (130, 1030), dtype=torch.int8, generator=g)
    w_q[:, :64] = -8
    ones_m, ones_n = torch.ones(rows), torch.ones(130)
    torch.testing.assert_close(prunq.ops.int8_linear(x_q, ones_m, w_q, ones_n), int8_linear_ref(x_q, ones_m, w_q, ones_n),
                               rtol=0, atol=0)


@pytest.mark.skipif(_native.C is None or not _native.C.packed_gemm_available(), reason="needs a packed-panel kernel")
def test_prepacked_rejects_a_packing_of_another_weight():
    w_q = torch.zeros(8, 16, dtype=torch.int8)
    packed, colsum = vnni_pack(torch.zeros(8, 200, dtype=torch.int8))
    with pytest.raises(ValueError, match="^w_packed:"):
        prunq.ops.int8_linear_prepacked(torch.zeros(2, 16, dtype=torch.int8), torch.ones(2), w_q, packed, colsum,
                                        torch.ones(8))


@pytest.mark.skipif(_native.C is None or not _native.C.packed_gemm_available(), reason="needs a packed-panel kernel")
def test_weight_only_prepacked_rejects_a_packing_of_another_weight():
    w_q = torch.zeros(8, 16, dtype=torch.int8)
    packed, _ = vnni_pack(torch.zeros(8, 200, dtype=torch.int8))
    with pytest.raises(ValueError, match="^w_packed:"):
        prunq.ops.int8_weight_only_linear_prepacked(torch.zeros(2, 16, dtype=torch.bfloat16), w_q, packed, torch.ones(8))


@pytest.mark.parametrize("k", [4, 1000, 4099])
def test_products_that_saturate_u8_times_s8_are_exact(cpu_isa, k):
    """x = 127 taken as unsigned (255) against w = 127 gives pair sums of 64770, which vpmaddubsw
    would saturate to 32767; every path must give the exact sums, -128 included."""
    alternating = torch.arange(k) % 2 == 0
    x_q = torch.stack([torch.full((k,), 127), torch.full((k,), -128), torch.where(alternating, 127, -128)])
    w_q = torch.stack([torch.full((k,), 127), torch.full((k,), -128), torch.full((k,), -127),
                       torch.where(alternating, 127, -127)])
    x_q, w_q = x_q.to(torch.int8), w_q.to(torch.int8)
    ones_m, ones_n = torch.ones(3), torch.ones(4)
    expected = int8_linear_ref(x_q, ones_m, w_q, ones_n)
    torch.testing.assert_close(prunq.ops.int8_linear(x_q, ones_m, w_q, ones_n), expected, rtol=0, atol=0)
    got = prunq.ops.int8_linear_prepacked(x_q, ones_m, w_q, *vnni_pack(w_q), ones_n)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_k_beyond_exact_int32_accumulation_is_refused():
    k = int8_gemm.MAX_K + 1
    with pytest.raises(ValueError, match=f"^x_q: K = {k}"):
        prunq.ops.int8_linear(torch.zeros(1, k, dtype=torch.int8), torch.ones(1), torch.zeros(2, k, dtype=torch.int8),
                              torch.ones(2))
    w_q = torch.zeros(2, k, dtype=torch.int8)
    with pytest.raises(ValueError, match=f"^x: K = {k}"):
        prunq.ops.int8_dynamic_linear_prepacked(torch.zeros(1, k), w_q, *vnni_pack(w_q), torch.ones(2))


def non_finite_backends():
    """The paths that run here besides the CPU kernels (which cpu_isa covers)."""
    backends = ["reference"]
    if triton_usable()[0]:
        backends.append("triton")
    return backends


@pytest.mark.parametrize("forced", [None, "triton"])
@pytest.mark.parametrize("rows", [1, 4, 5])
def test_eager_cuda_calls_take_the_cuda_kernels_measured_faster(monkeypatch, forced, rows):
    """Unforced eager calls routed to Triton take prunq._cuda's quantize (without a channel scale)
    always and its weight-only GEMM up to 4 rows; a forced backend keeps Triton. The CUDA route
    and both sets of kernels are stood in, on CPU tensors."""
    calls = []
    monkeypatch.setattr(_native, "CUDA", object())
    monkeypatch.setattr(int8_gemm, "_path", lambda device_type, has_cuda_kernel=False: "triton")
    for name, kind, fn in [("_native_quantize", "cuda", lambda x, *_: quantize_per_token_ref(x)),
                           ("_triton_quantize", "triton", lambda x, *_: quantize_per_token_ref(x)),
                           ("_native_weight_only", "cuda", int8_weight_only_linear_ref),
                           ("_triton_weight_only", "triton", int8_weight_only_linear_ref),
                           ("_triton_int8_linear", "gemm", lambda *args: None)]:
        monkeypatch.setattr(int8_gemm, name, lambda *args, kind=kind, fn=fn: calls.append(kind) or fn(*args))
    g = torch.Generator().manual_seed(0)
    x, w_q, w_scale = torch.randn(rows, 8, generator=g), random_int8(3, 8, generator=g), torch.rand(3, generator=g)
    empty = torch.empty(0, dtype=torch.int8)
    with use_backend(forced):
        int8_gemm._quantize(x)
        int8_gemm._weight_only(x, w_q, w_scale, None)
        int8_gemm._int8_dynamic_linear_prepacked(x, w_q, empty, empty, w_scale, None)
        int8_gemm._int8_dynamic_linear_prepacked(x, w_q, empty, empty, w_scale, None, "none", torch.rand(8) + 0.5)
    cuda = forced is None
    assert calls == ["cuda" if cuda else "triton", "cuda" if cuda and rows <= 4 else "triton",
                     "cuda" if cuda else "triton", "gemm", "triton", "gemm"]


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
@pytest.mark.parametrize("backend", non_finite_backends())
def test_every_path_quantizes_a_non_finite_row_to_zeros(backend, bad):
    x = torch.randn(3, 100, generator=torch.Generator().manual_seed(0))
    x[1, 37] = bad
    device = TRITON_DEVICE if backend == "triton" else "cpu"
    with use_backend(backend):
        q, scale = prunq.ops.quantize_per_token(x.to(device))
        y = prunq.nn.Int8Linear.from_linear(torch.nn.Linear(100, 70)).to(device)(x.to(device))
    assert q.abs().max() <= 127 and not q[1].any()
    assert not torch.isfinite(scale[1]) and torch.isfinite(scale[[0, 2]]).all()
    assert torch.isnan(y[1]).all() and torch.isfinite(y[[0, 2]]).all()


@pytest.mark.skipif(not triton_usable()[0], reason=triton_usable()[1])
def test_triton_quantizes_rows_longer_than_its_chunk():
    from prunq.triton_kernels.int8_gemm import MAX_QUANTIZE_BLOCK

    x = torch.randn(3, 2 * MAX_QUANTIZE_BLOCK + 5, generator=torch.Generator().manual_seed(0))
    x[2, -1] = 40  # the row's absmax in its last chunk
    with use_backend("triton"):
        q, scale = (t.cpu() for t in prunq.ops.quantize_per_token(x.to(TRITON_DEVICE)))
    ref_q, ref_scale = quantize_per_token_ref(x)
    torch.testing.assert_close(q, ref_q, rtol=0, atol=0)
    torch.testing.assert_close(scale, ref_scale, rtol=0, atol=0)


@pytest.mark.skipif(not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs two CUDA devices")
@pytest.mark.parametrize("backend", ["triton", None])
def test_gpu_kernels_run_on_their_tensors_device(backend):
    """Tensors on cuda:1 while cuda:0 is current: the launch follows the tensors."""
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(5, 64, generator=g), torch.randn(32, 64, generator=g)
    w_q, w_scale = quantize_weight(w)
    expected = int8_weight_only_linear_ref(x, w_q, w_scale)
    with torch.cuda.device(0), use_backend(backend):
        got = prunq.ops.int8_weight_only_linear(x.to("cuda:1"), w_q.to("cuda:1"), w_scale.to("cuda:1"))
        q, scale = prunq.ops.quantize_per_token(x.to("cuda:1"))
        out, total = prunq.ops.add_layer_norm(x.to("cuda:1"), x.to("cuda:1"))
    assert got.device == torch.device("cuda:1")
    torch.testing.assert_close(got.cpu(), expected, **WEIGHT_ONLY[torch.float32])
    torch.testing.assert_close(q.cpu(), quantize_per_token_ref(x)[0], rtol=0, atol=0)
    torch.testing.assert_close(out.cpu(), prunq.ops.layernorm.add_layer_norm_ref(x, x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_a_non_finite_row_quantizes_to_zeros_and_poisons_its_outputs(cpu_isa, bad):
    x = torch.randn(3, 100, generator=torch.Generator().manual_seed(0))
    x[1, 37] = bad
    q, scale = prunq.ops.quantize_per_token(x)
    assert q.abs().max() <= 127 and not q[1].any()
    assert not torch.isfinite(scale[1]) and torch.isfinite(scale[[0, 2]]).all()
    ref_q, _ = quantize_per_token_ref(x)
    torch.testing.assert_close(q, ref_q, rtol=0, atol=0)
    module = prunq.nn.Int8Linear.from_linear(torch.nn.Linear(100, 70))
    y = module(x)
    assert torch.isnan(y[1]).all() and torch.isfinite(y[[0, 2]]).all()


def test_empty_k_gives_the_bias(cpu_isa):
    x_q, w_q, bias = torch.zeros(2, 3, 0, dtype=torch.int8), torch.zeros(5, 0, dtype=torch.int8), torch.randn(5)
    expected = bias.expand(2, 3, 5)
    torch.testing.assert_close(prunq.ops.int8_linear(x_q, torch.ones(2, 3), w_q, torch.ones(5), bias), expected)
    torch.testing.assert_close(prunq.ops.int8_weight_only_linear(torch.zeros(2, 3, 0), w_q, torch.ones(5), bias),
                               expected)
    y = prunq.ops.int8_dynamic_linear_prepacked(torch.zeros(2, 3, 0), w_q, *vnni_pack(w_q), torch.ones(5), None, "gelu")
    torch.testing.assert_close(y, torch.zeros(2, 3, 5))
    q, scale = prunq.ops.quantize_per_token(torch.zeros(4, 0))
    assert q.shape == (4, 0) and not scale.any()


@pytest.mark.skipif(_native.C is None, reason="needs prunq._C")
def test_instruction_ceilings_of_the_kernels_here(cpu_isa):
    """The benchmarks' ceilings: each kind measures where the CPU has it (0 where not), an unknown
    kind is refused, and the W8A8 kernel's instruction follows the path."""
    expected = {"portable": "none", "avx2": "vpmaddwd ymm", "avx512": "vpdpbusd zmm", "avx512-novnni": "vpmaddwd zmm"}
    assert _native.C.packed_gemm_instruction() == expected[cpu_isa]
    for kind in ("fma_ymm", "fma_zmm", "madd_ymm", "maddubs_ymm", "madd_zmm", "dpbusd_zmm"):
        assert _native.C.instruction_ceiling(kind, 1, 1000) >= 0
    if cpu_isa != "portable":
        assert _native.C.instruction_ceiling("madd_ymm", 1, 1000) > 0
        assert _native.C.instruction_ceiling("maddubs_ymm", 1, 1000) > 0
    with pytest.raises(ValueError, match="unknown ceiling kind"):
        _native.C.instruction_ceiling("vpfoo", 1, 1000)
