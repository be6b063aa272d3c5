"""add_layer_norm and add_rms_norm: every path against the reference, bad input, opcheck."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prunq
from prunq import _native
from prunq._backend import triton_usable, use_backend
from prunq.ops._library import HAS_TRITON_OP
from prunq.ops.layernorm import add_layer_norm_ref, add_rms_norm_ref

from .conftest import TRITON_DEVICE, requires_cuda
from .shapes import HIDDEN_REAL, HIDDEN_UNALIGNED, ROWS
from .tolerances import ERROR_FLOOR, ERROR_VS_TORCH_FACTOR, NORM

DTYPES = [torch.float32, torch.bfloat16, torch.float16]


def make_inputs(lead, hidden, dtype, param_kind="same", bias=True, strided=False, device="cpu", seed=0):
    """x, residual, weight, bias. strided=True gives x and residual as views with a row stride
    larger than the row, and an offset, which a raw-pointer kernel must not read as dense."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape, dtype=dtype):
        return (torch.randn(*shape, generator=g) * 2 + 0.5).to(dtype).to(device)

    if strided:
        x = randn(*lead, hidden + 3)[..., 2:hidden + 2]
        residual = randn(*lead, hidden + 5)[..., 1:hidden + 1]
    else:
        x, residual = randn(*lead, hidden), randn(*lead, hidden)
    param_dtype = {"same": dtype, "fp32": torch.float32}.get(param_kind)
    weight = randn(hidden, dtype=param_dtype) if param_dtype else None
    b = randn(hidden, dtype=param_dtype) if param_dtype and bias else None
    return x, residual, weight, b


def run_op(rms, x, residual, weight, bias, eps=1e-5):
    if rms:
        return prunq.ops.add_rms_norm(x, residual, weight, eps)
    return prunq.ops.add_layer_norm(x, residual, weight, bias, eps)


def reference(rms, x, residual, weight, bias, eps=1e-5):
    if rms:
        return add_rms_norm_ref(x, residual, weight, eps)
    return add_layer_norm_ref(x, residual, weight, bias, eps)


def check_against_reference(rms, x, residual, weight, bias):
    out, total = run_op(rms, x, residual, weight, bias)
    ref_out, ref_total = reference(rms, x, residual, weight, bias)
    assert out.shape == x.shape and total.shape == x.shape
    assert out.dtype == x.dtype and total.dtype == x.dtype
    assert out.is_contiguous() and total.is_contiguous()
    torch.testing.assert_close(total, ref_total, rtol=0, atol=0)  # the same rounded add
    torch.testing.assert_close(out, ref_out, **NORM[x.dtype])


inputs = st.fixed_dictionaries({
    "lead": st.one_of(st.sampled_from(ROWS).map(lambda m: (m,)),
                      st.tuples(st.integers(1, 3), st.integers(0, 9))),
    "hidden": st.one_of(st.sampled_from(HIDDEN_UNALIGNED + HIDDEN_REAL), st.integers(1, 1100)),
    "dtype": st.sampled_from(DTYPES),
    "param_kind": st.sampled_from(["same", "fp32", "none"]),
    "bias": st.booleans(),
    "strided": st.booleans(),
    "seed": st.integers(0, 2**16),
})


@pytest.mark.parametrize("rms", [False, True], ids=["layer_norm", "rms_norm"])
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=inputs)
def test_cpu_native_matches_reference(cpu_isa, rms, case):
    with use_backend("native"):
        check_against_reference(rms, *make_inputs(**case))


@pytest.mark.skipif(not triton_usable()[0], reason=triton_usable()[1])
@pytest.mark.parametrize("rms", [False, True], ids=["layer_norm", "rms_norm"])
@settings(max_examples=15)
@given(case=inputs.filter(lambda c: c["hidden"] <= 800 and c["lead"][0] <= 7))
def test_triton_matches_reference(rms, case):
    with use_backend("triton"):
        check_against_reference(rms, *make_inputs(**case, device=TRITON_DEVICE))


@pytest.mark.skipif(not HAS_TRITON_OP, reason="torch.library.triton_op needs torch >= 2.6")
@pytest.mark.parametrize("rms", [False, True], ids=["layer_norm", "rms_norm"])
def test_triton_op_gives_the_ops_result(rms):
    """The triton_op that torch.compile traces into runs the kernel of the ops' Triton path."""
    if not triton_usable()[0]:
        pytest.skip(triton_usable()[1])
    x, residual, weight, bias = make_inputs((3, 5), 72, torch.bfloat16, device=TRITON_DEVICE)
    bias = None if rms else bias
    with use_backend("triton"):
        want = prunq.ops.add_rms_norm(x, residual, weight) if rms else prunq.ops.add_layer_norm(x, residual, weight, bias)
        got = torch.ops.prunq.add_norm_triton(x, residual, weight, bias, 1e-6 if rms else 1e-5, rms)
    for g, w in zip(got, want):
        assert torch.equal(g, w)


@pytest.mark.skipif(not HAS_TRITON_OP, reason="torch.library.triton_op needs torch >= 2.6")
def test_only_triton_op_bodies_launch_through_wrap_triton(monkeypatch):
    """Eager calls launch the kernel itself: torch's wrapper would send every launch through its
    higher-order-op dispatch. The triton_op, which torch.compile traces, launches it wrapped."""
    if not triton_usable()[0]:
        pytest.skip(triton_usable()[1])
    wrapped = []
    monkeypatch.setattr(torch.library, "wrap_triton", lambda kernel: wrapped.append(kernel) or kernel)
    x, residual, _, _ = make_inputs((3,), 40, torch.float32, device=TRITON_DEVICE)
    with use_backend("triton"):
        prunq.ops.add_layer_norm(x, residual, None, None)
        assert wrapped == []
        torch.ops.prunq.add_norm_triton(x, residual, None, None, 1e-5, False)
    assert len(wrapped) == 1
    prunq.ops.add_layer_norm(x, residual, None, None)
    assert len(wrapped) == 1


@requires_cuda
@pytest.mark.parametrize("backend", ["cuda", "triton", None])
@pytest.mark.parametrize("rms", [False, True], ids=["layer_norm", "rms_norm"])
@settings(max_examples=40)
@given(case=inputs)
def test_cuda_matches_reference(backend, rms, case):
    if backend == "cuda" and _native.CUDA is None:
        pytest.skip(f"prunq._cuda was not built: {_native.load_error('_cuda')}")
    with use_backend(backend):
        check_against_reference(rms, *make_inputs(**case, device="cuda"))


@requires_cuda
@pytest.mark.parametrize("hidden", [4096, 8192, 12288, 20000, 70000])
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_long_rows(hidden, dtype):
    """Rows that take the block-per-row kernels and the uncached fallback."""
    if _native.CUDA is None:
        pytest.skip(f"prunq._cuda was not built: {_native.load_error('_cuda')}")
    check_against_reference(False, *make_inputs((9,), hidden, dtype, device="cuda"))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_split(threads):
    """Enough rows to split over threads, including more threads than cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for rms in (False, True):
            check_against_reference(rms, *make_inputs((257,), 769, torch.bfloat16))
    finally:
        torch.set_num_threads(previous)


def test_reference_backend_is_the_reference():
    x, residual, weight, bias = make_inputs((5,), 33, torch.float32)
    with use_backend("reference"):
        out, total = prunq.ops.add_layer_norm(x, residual, weight, bias)
    ref_out, ref_total = add_layer_norm_ref(x, residual, weight, bias)
    assert torch.equal(out, ref_out) and torch.equal(total, ref_total)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("hidden", HIDDEN_REAL)
def test_error_at_most_twice_torch(cpu_isa, dtype, hidden):
    """Against an fp64 computation, no worse than twice eager PyTorch in the same dtype, on every
    CPU path."""
    x, residual, weight, bias = make_inputs((64,), hidden, dtype)
    out, total = prunq.ops.add_layer_norm(x, residual, weight, bias)
    exact = F.layer_norm(total.double(), (hidden,), weight.double(), bias.double(), 1e-5)
    torch_out = F.layer_norm(x + residual, (hidden,), weight, bias, 1e-5)
    ours = (out.double() - exact).abs().max().item()
    theirs = (torch_out.double() - exact).abs().max().item()
    assert ours <= ERROR_VS_TORCH_FACTOR * theirs + ERROR_FLOOR[dtype], (ours, theirs)


def test_nan_propagates_and_stays_in_its_row():
    x, residual, weight, bias = make_inputs((4,), 100, torch.float32)
    x[1, 17] = float("nan")
    for rms in (False, True):
        out, total = run_op(rms, x, residual, weight, bias)
        assert torch.isnan(total[1, 17]) and torch.isnan(out[1]).all()
        assert not torch.isnan(out[[0, 2, 3]]).any()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=requires_cuda)])
def test_opcheck(device):
    x, residual, weight, bias = make_inputs((3, 5), 40, torch.float32, device=device)
    torch.library.opcheck(torch.ops.prunq.add_layer_norm.default, (x, residual, weight, bias, 1e-5))
    torch.library.opcheck(torch.ops.prunq.add_layer_norm.default, (x, residual, None, None, 1e-5))
    torch.library.opcheck(torch.ops.prunq.add_rms_norm.default, (x, residual, weight, 1e-6))


def bad_inputs():
    x, residual, weight, bias = make_inputs((4,), 16, torch.float32)
    yield "residual", TypeError, (x, residual.double(), weight, bias)
    yield "residual", ValueError, (x, residual[:, :8], weight, bias)
    yield "residual", ValueError, (x, residual[:3], weight, bias)
    yield "x", TypeError, (x.to(torch.int32), residual.to(torch.int32), weight, bias)
    yield "weight", ValueError, (x, residual, weight[:15], bias)
    yield "weight", ValueError, (x, residual, weight.view(4, 4), bias)
    yield "bias", ValueError, (x, residual, weight, torch.zeros(17))
    yield "weight", TypeError, (x, residual, weight.to(torch.int8), bias)
    yield "weight", TypeError, (x.half(), residual.half(), weight.bfloat16(), bias.half())
    yield "residual", ValueError, (x, residual.to("meta"), weight, bias)
    yield "weight", ValueError, (x, residual, weight.to("meta"), bias)
    yield "x", ValueError, (x[:, :0], residual[:, :0], None, None)


@pytest.mark.parametrize("name,error,args", list(bad_inputs()))
def test_bad_input_names_the_argument(name, error, args):
    with pytest.raises(error, match=f"^{name}:"):
        prunq.ops.add_layer_norm(*args)


def test_bad_input_rms_norm():
    x, residual, weight, _ = make_inputs((4,), 16, torch.float32)
    with pytest.raises(ValueError, match="^weight:"):
        prunq.ops.add_rms_norm(x, residual, weight[:3])


@pytest.mark.skipif(_native.C is None, reason="prunq._C not built")
def test_native_module_rejects_bad_codes():
    with pytest.raises(ValueError, match="dtype"):
        _native.C.add_norm(0, 0, 0, 0, 0, 0, 1, 4, 1e-5, 7, 0, False, 1)
    with pytest.raises(ValueError, match="negative"):
        _native.C.add_norm(0, 0, 0, 0, 0, 0, -1, 4, 1e-5, 0, 0, False, 1)


def test_native_tensor_copies_strided_views():
    x = torch.randn(6, 10)[:, ::2]
    dense = _native.native_tensor(x, "x", torch.float32, x.device)
    assert dense.is_contiguous() and torch.equal(dense, x)
    with pytest.raises(TypeError, match="^x:"):
        _native.native_tensor(x, "x", torch.float16, x.device)


@pytest.mark.skipif(_native.C is None, reason="prunq._C not built")
def test_outputs_advised_onto_huge_pages_hold_the_result():
    """Outputs from HUGE_PAGE_OUTPUT_BYTES up are advised onto huge pages before the kernel writes
    them; the hint must not change what they hold, and it accepts any range."""
    rows = _native.HUGE_PAGE_OUTPUT_BYTES // (4 * 1024) + 3
    x, residual, weight, bias = make_inputs((rows,), 1024, torch.float32)
    out, total = prunq.ops.add_layer_norm(x, residual, weight, bias)
    assert out.nbytes >= _native.HUGE_PAGE_OUTPUT_BYTES
    want_out, want_total = reference(False, x, residual, weight, bias)
    torch.testing.assert_close(total, want_total, **NORM[torch.float32])
    torch.testing.assert_close(out, want_out, **NORM[torch.float32])
    buffer = torch.zeros(100)
    for address, size in ((buffer.data_ptr() + 3, 100), (buffer.data_ptr(), 0)):
        _native.C.advise_huge_pages(address, size)
    assert not buffer.any()


def test_forcing_a_path_the_device_lacks_is_an_error():
    x, residual, weight, bias = make_inputs((2,), 8, torch.float32)
    with use_backend("cuda"), pytest.raises(RuntimeError, match="CPU tensor"):
        prunq.ops.add_layer_norm(x, residual, weight, bias)
    with pytest.raises(ValueError, match="PRUNQ_BACKEND"):
        with use_backend("fastest"):
            pass


@pytest.mark.skipif(_native.C is None, reason="prunq._C not built")
def test_cpu_path_selection_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown CPU path"):
        _native.C.set_active_isa("sse4")
