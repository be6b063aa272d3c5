"""sparse24_pack and sparse24_linear: the 2:4 format and its CPU kernels against the reference."""

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prunq
from prunq._backend import triton_usable, use_backend
from prunq.formats import sparse24 as layout
from prunq.ops.sparse24 import sparse24_linear_ref

from .conftest import TRITON_DEVICE
from .shapes import GEMM_M_SWEEP, GEMM_UNALIGNED, SPARSE_LONG_K

VALUE_DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.int8]
X_DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def two_of_four(n, k, generator, dtype=torch.float32, density=1.0):
    """A random 2:4 weight; density < 1 also zeroes some of the kept weights."""
    w = torch.randn(n, k, generator=generator)
    prunq.compress.prune(w, pattern="2:4")
    w = w * (torch.rand(n, k, generator=generator) < density)
    return (w * 40).round().to(torch.int8) if dtype == torch.int8 else w.to(dtype)


def tolerance(x_dtype):
    # fp32 sums in a different order; 16-bit outputs round once more.
    return {torch.float32: dict(rtol=1e-5, atol=1e-4), torch.bfloat16: dict(rtol=2e-2, atol=5e-2),
            torch.float16: dict(rtol=2e-3, atol=1e-2)}[x_dtype]


cases = st.fixed_dictionaries({
    "shape": st.one_of(st.sampled_from(GEMM_UNALIGNED),
                       st.tuples(st.sampled_from(GEMM_M_SWEEP), st.integers(1, 200), st.integers(1, 40))),
    "values": st.sampled_from(VALUE_DTYPES), "x": st.sampled_from(X_DTYPES),
    "density": st.sampled_from([1.0, 0.5, 0.0]), "seed": st.integers(0, 2**16),
    "strided": st.booleans(), "bias": st.booleans(),
})


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases)
def test_matches_the_dense_reference(cpu_isa, case):
    (m, k, n), g = case["shape"], torch.Generator().manual_seed(case["seed"])
    w = two_of_four(n, k, g, case["values"], case["density"])
    values, meta = prunq.ops.sparse24_pack(w)
    assert torch.equal(layout.unpack(values, meta, k), w)
    x = torch.randn(m, k + 3, generator=g).to(case["x"])
    x = x[:, 1:-2] if case["strided"] else x[:, :k].contiguous()
    w_scale = torch.rand(n, generator=g) * 0.05 if case["values"] == torch.int8 else None
    bias = torch.randn(n, generator=g) if case["bias"] else None
    got = prunq.ops.sparse24_linear(x, values, meta, bias, w_scale)
    assert got.dtype == x.dtype and got.shape == (m, n)
    torch.testing.assert_close(got, sparse24_linear_ref(x, values, meta, bias, w_scale), **tolerance(case["x"]))


@pytest.mark.parametrize("m", [1, 20])
def test_strided_weights_scales_and_bias_are_read_as_their_values(cpu_isa, m):
    # The op reads dense operands in place: views of every other element must be copied first.
    g = torch.Generator().manual_seed(11)
    values, meta = prunq.ops.sparse24_pack(two_of_four(9, 40, g, torch.int8))
    x, w_scale, bias = torch.randn(m, 40, generator=g), torch.rand(9, generator=g) * 0.05, torch.randn(9, generator=g)
    strided = [torch.stack([t, torch.zeros_like(t)], -1)[..., 0] for t in (values, meta, bias, w_scale)]
    assert not any(t.is_contiguous() for t in strided)
    expected = sparse24_linear_ref(x, values, meta, bias, w_scale)
    torch.testing.assert_close(prunq.ops.sparse24_linear(x, strided[0], strided[1], strided[2], strided[3]), expected,
                               **tolerance(torch.float32))


@pytest.mark.parametrize("values_dtype", [torch.bfloat16, torch.int8])
def test_many_rows_of_bf16_x(cpu_isa, values_dtype):
    # The vdpbf16ps kernel's case where the CPU has AVX512_BF16: tiles of 16, 32 and 64 rows,
    # K blocks, a partial last tile.
    g = torch.Generator().manual_seed(7)
    for m, k, n in [(16, 40, 9), (40, 1500, 17), (70, 260, 33)]:
        values, meta = prunq.ops.sparse24_pack(two_of_four(n, k, g, values_dtype))
        x = torch.randn(m, k, generator=g).bfloat16()
        w_scale = torch.rand(n, generator=g) * 0.05 if values_dtype == torch.int8 else None
        bias = torch.randn(n, generator=g)
        torch.testing.assert_close(prunq.ops.sparse24_linear(x, values, meta, bias, w_scale),
                                   sparse24_linear_ref(x, values, meta, bias, w_scale), **tolerance(torch.bfloat16))


@pytest.mark.parametrize("values_dtype", VALUE_DTYPES)
def test_long_k_walked_in_blocks(cpu_isa, values_dtype):
    g = torch.Generator().manual_seed(5)
    for m, k, n in SPARSE_LONG_K:
        values, meta = prunq.ops.sparse24_pack(two_of_four(n, k, g, values_dtype))
        x = torch.randn(m, k, generator=g)
        w_scale = torch.rand(n, generator=g) * 0.05 if values_dtype == torch.int8 else None
        torch.testing.assert_close(prunq.ops.sparse24_linear(x, values, meta, None, w_scale),
                                   sparse24_linear_ref(x, values, meta, None, w_scale), rtol=1e-5, atol=1e-3)


def test_three_dimensional_x_and_empty_rows():
    g = torch.Generator().manual_seed(0)
    w = two_of_four(6, 20, g)
    values, meta = prunq.ops.sparse24_pack(w)
    x = torch.randn(2, 3, 20, generator=g)
    torch.testing.assert_close(prunq.ops.sparse24_linear(x, values, meta), x @ w.T, rtol=1e-5, atol=1e-5)
    assert prunq.ops.sparse24_linear(torch.zeros(0, 20), values, meta).shape == (0, 6)


def test_the_op_agrees_with_torch_ops_and_passes_opcheck():
    g = torch.Generator().manual_seed(1)
    w = two_of_four(9, 36, g)
    values, meta = prunq.ops.sparse24_pack(w)
    x, bias = torch.randn(4, 36, generator=g), torch.randn(9, generator=g)
    torch.testing.assert_close(prunq.ops.sparse24_linear(x, values, meta, bias),
                               torch.ops.prunq.sparse24_linear(x, values, meta, bias, None), rtol=0, atol=0)
    torch.library.opcheck(torch.ops.prunq.sparse24_linear, (x, values, meta, bias, None))
    torch.library.opcheck(torch.ops.prunq.sparse24_pack, (w,))
    with use_backend("reference"):
        torch.testing.assert_close(prunq.ops.sparse24_linear(x, values, meta, bias), x @ w.T + bias,
                                   rtol=1e-5, atol=1e-5)


def test_a_weight_with_three_non_zeros_in_a_group_names_it():
    w = torch.zeros(4, 16)
    w[2, 8:11] = 1.0
    with pytest.raises(ValueError, match=r"^w: row 2, group 2 \(k 8 to 11\) holds 3"):
        prunq.ops.sparse24_pack(w)


def test_bad_inputs_name_the_argument():
    values, meta = prunq.ops.sparse24_pack(two_of_four(4, 16, torch.Generator().manual_seed(2)))
    x = torch.randn(2, 16)
    bad = [
        (TypeError, "x", (x.double(), values, meta)),
        (ValueError, "values", (torch.randn(2, 24), values, meta)),
        (TypeError, "meta", (x, values, meta.to(torch.int32))),
        (ValueError, "meta", (x, values, meta[:3])),
        (ValueError, "w_scale", (x, values.to(torch.int8), meta)),
        (ValueError, "w_scale", (x, values, meta, None, torch.ones(4))),
        (ValueError, "bias", (x, values, meta, torch.ones(5))),
    ]
    for error, name, args in bad:
        with pytest.raises(error, match=f"^{name}:"):
            prunq.ops.sparse24_linear(*args)
    corrupted = meta.clone()
    corrupted[1, 0] = 0x00  # both positions 0: two values at one place
    with pytest.raises(ValueError, match="^meta: row 1, group 0"):
        prunq.ops.sparse24_linear(x, values, corrupted)
    corrupted = meta.clone()
    corrupted[2, 1] = 0x64  # group 2 in order (0, 1), group 3 out of order (2, then 1)
    with pytest.raises(ValueError, match="^meta: row 2, group 3"):
        prunq.ops.sparse24_linear(x, values, corrupted)


@pytest.mark.skipif(not triton_usable()[0], reason=triton_usable()[1])
@pytest.mark.parametrize("values_dtype", VALUE_DTYPES)
@pytest.mark.parametrize("x_dtype", X_DTYPES)
def test_triton_kernel_matches_the_reference(values_dtype, x_dtype):
    g = torch.Generator().manual_seed(3)
    for m, k, n in [(1, 13, 5), (3, 64, 33), (17, 100, 40)]:
        w = two_of_four(n, k, g, values_dtype, density=0.7)
        values, meta = prunq.ops.sparse24_pack(w)
        x = torch.randn(m, k, generator=g).to(x_dtype)
        w_scale = torch.rand(n, generator=g) * 0.05 if values_dtype == torch.int8 else None
        bias = torch.randn(n, generator=g)
        args = [None if t is None else t.to(TRITON_DEVICE) for t in (x, values, meta, bias, w_scale)]
        with use_backend("triton"):
            got = prunq.ops.sparse24_linear(*args).cpu()
        torch.testing.assert_close(got, sparse24_linear_ref(x, values, meta, bias, w_scale), **tolerance(x_dtype))


@pytest.mark.parametrize("values_dtype", [torch.bfloat16, torch.int8])
def test_many_rows_on_cuda_take_torchs_semi_structured_weight_built_once(monkeypatch, values_dtype):
    # The CUDA path's dispatch, run on CPU tensors with torch's conversion stood in by the dense
    # weight it would hold: many rows take it, built once per values tensor and rebuilt when the
    # values change; few rows take the Triton kernel.
    from prunq.ops import sparse24 as op

    conversions, triton_calls = [], []
    monkeypatch.setattr(torch.sparse, "to_sparse_semi_structured", lambda w: conversions.append(w) or w)
    monkeypatch.setattr(op, "_triton_linear", lambda *args: triton_calls.append(args) or "triton")
    g = torch.Generator().manual_seed(4)
    n, k = 24, 40
    values, meta = prunq.ops.sparse24_pack(two_of_four(n, k, g, values_dtype))
    w_scale = torch.rand(n, generator=g) * 0.05 if values_dtype == torch.int8 else None
    bias = torch.randn(n, generator=g)
    x = torch.randn(2, op.TORCH_SPARSE_FROM_ROWS // 2, k, generator=g).bfloat16()
    close = dict(rtol=2e-2, atol=1e-1)  # the weight itself is rounded to bf16 (int8 times w_scale)
    for _ in range(2):
        torch.testing.assert_close(op._cuda_linear(x, values, meta, bias, w_scale),
                                   sparse24_linear_ref(x, values, meta, bias, w_scale), **close)
    assert len(conversions) == 1 and not triton_calls
    values.neg_()
    torch.testing.assert_close(op._cuda_linear(x, values, meta, bias, w_scale),
                               sparse24_linear_ref(x, values, meta, bias, w_scale), **close)
    assert len(conversions) == 2
    assert op._cuda_linear(x[:, :3], values, meta, bias, w_scale) == "triton"
    assert op._cuda_linear(x.float(), values, meta, bias, w_scale) == "triton"  # fp32: not torch's 2:4 dtypes


def test_sparse24_linear_module_round_trips_checks_what_it_loads_and_compiles():
    linear = torch.nn.Linear(36, 10)
    dense = linear.weight.detach().clone()
    x = torch.randn(3, 36)
    for int8 in (False, True):
        module = prunq.nn.Sparse24Linear.from_linear(linear, int8=int8)
        w = linear.weight.detach().clone()
        prunq.compress.prune(w, pattern="2:4")
        tolerance = dict(rtol=5e-2, atol=5e-2) if int8 else dict(rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(module(x), x @ w.T + linear.bias.detach(), **tolerance)
        config = {key: value for key, value in module.config().items() if key != "type"}
        fresh = prunq.nn.Sparse24Linear(**config)
        fresh.load_state_dict(module.state_dict())
        torch.testing.assert_close(fresh(x), module(x), rtol=0, atol=0)
        torch.testing.assert_close(torch.compile(module, fullgraph=True)(x), module(x), rtol=1e-6, atol=1e-6)
        corrupted = dict(module.state_dict())
        corrupted["meta"] = torch.zeros_like(corrupted["meta"])  # every pair at position 0
        with pytest.raises(ValueError, match="^meta:"):
            prunq.nn.Sparse24Linear(**config).load_state_dict(corrupted)
    assert torch.equal(linear.weight, dense)  # from_linear leaves the Linear as it was


def test_a_layout_that_passed_is_checked_again_only_once_changed(monkeypatch):
    """Where the check runs in torch (device tensors; here CPU tensors with prunq._C hidden), meta
    that passed is not read again until it changes in place or another tensor is passed."""
    monkeypatch.setattr(layout._native, "C", None)
    reads = []
    monkeypatch.setattr(layout, "positions", lambda meta, read=layout.positions: reads.append(1) or read(meta))
    values, meta = layout.pack(two_of_four(6, 16, torch.Generator().manual_seed(0)))
    layout.check(values, meta, 16)
    layout.check(values, meta, 16)
    assert len(reads) == 1
    layout.check(values, meta.clone(), 16)
    assert len(reads) == 2
    meta[0, 0] = 0  # the first group's positions 0 and 0: corrupt
    with pytest.raises(ValueError, match="row 0, group 0"):
        layout.check(values, meta, 16)


@pytest.mark.parametrize("m", [1, 2, 3, 5])
@pytest.mark.parametrize("values_dtype", [torch.float32, torch.int8])
def test_few_rows_over_whole_and_partial_chunks(cpu_isa, m, values_dtype):
    """Below 16 rows of x, rows of W are read in chunks (16 k on AVX2, 32 on AVX-512), several
    chunks a step while few rows of x share them; K from under one chunk to several steps and a
    remainder, each with a tail of groups after the last whole chunk."""
    g = torch.Generator().manual_seed(m)
    for k in [8, 16, 24, 40, 72, 88, 136, 200, 264, 392]:
        w = two_of_four(9, k, g, values_dtype)
        values, meta = prunq.ops.sparse24_pack(w)
        x = torch.randn(m, k, generator=g)
        w_scale = torch.rand(9, generator=g) * 0.05 if values_dtype == torch.int8 else None
        torch.testing.assert_close(prunq.ops.sparse24_linear(x, values, meta, None, w_scale),
                                   sparse24_linear_ref(x, values, meta, None, w_scale), **tolerance(torch.float32))


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 5), row_bytes=st.integers(1, 700), seed=st.integers(0, 2**16),
       corruptions=st.integers(0, 3))
def test_the_native_meta_check_names_the_group_the_torch_one_does(rows, row_bytes, seed, corruptions):
    """The check on every op call runs in C++ on CPU tensors, a block of bytes at a time; it finds
    the first bad group wherever it lies, as the check in torch does."""
    g = torch.Generator().manual_seed(seed)
    values, meta = layout.pack(two_of_four(rows, 8 * row_bytes, g))
    for _ in range(corruptions):
        meta.view(-1)[int(torch.randint(meta.numel(), (1,), generator=g))] = int(torch.randint(256, (1,), generator=g))

    def message(native):
        saved = layout._native.C
        layout._native.C = saved if native else None
        try:
            layout.check(values, meta.clone(), 8 * row_bytes)
        except ValueError as error:
            return str(error)
        finally:
            layout._native.C = saved

    assert message(native=True) == message(native=False)
