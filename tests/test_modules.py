"""Swap-in modules: construction from the modules they replace, state_dict, torch.compile."""

import pytest
import torch
from torch import nn
from torch._dynamo.testing import AotEagerAndRecordGraphs
from torch.nn import functional as F

from prunq._backend import use_backend
from prunq.formats import int4
from prunq.nn import AddLayerNorm, AddRMSNorm, Int4Embedding, Int8Embedding, Int8Linear, LowRankLinear

from prunq.ops._library import HAS_TRITON_OP
from prunq.ops.int8_gemm import int8_dynamic_linear_prepacked_ref, int8_weight_only_linear_ref

from .conftest import requires_cuda
from .tolerances import MIN_SQNR_DB, WEIGHT_ONLY


def test_add_layer_norm_from_norm_matches_unfused():
    norm = nn.LayerNorm(96, eps=1e-6)
    nn.init.normal_(norm.weight), nn.init.normal_(norm.bias)
    fused = AddLayerNorm.from_norm(norm)
    x, residual = torch.randn(2, 5, 96), torch.randn(2, 5, 96)
    out, total = fused(x, residual)
    torch.testing.assert_close(total, x + residual, rtol=0, atol=0)
    torch.testing.assert_close(out, norm(x + residual), rtol=1e-5, atol=1e-5)
    assert "96, eps=1e-06" in repr(fused)


def test_add_layer_norm_state_dict_is_the_original():
    norm = nn.LayerNorm(32)
    nn.init.normal_(norm.weight), nn.init.normal_(norm.bias)
    fused = AddLayerNorm(32)
    fused.load_state_dict(norm.state_dict())
    assert fused.state_dict().keys() == norm.state_dict().keys()
    for key, value in norm.state_dict().items():
        assert torch.equal(fused.state_dict()[key], value)
    nn.LayerNorm(32).load_state_dict(AddLayerNorm.from_norm(norm).state_dict())


def test_add_layer_norm_without_affine_or_bias():
    x, residual = torch.randn(3, 20), torch.randn(3, 20)
    for norm in (nn.LayerNorm(20, elementwise_affine=False), nn.LayerNorm(20, bias=False)):
        out, _ = AddLayerNorm.from_norm(norm)(x, residual)
        torch.testing.assert_close(out, norm(x + residual), rtol=1e-5, atol=1e-5)


def test_add_rms_norm_from_torch_rms_norm():
    for eps in (1e-5, None):
        norm = nn.RMSNorm(64, eps=eps)
        nn.init.normal_(norm.weight)
        fused = AddRMSNorm.from_norm(norm)
        x, residual = torch.randn(7, 64), torch.randn(7, 64)
        out, total = fused(x, residual)
        torch.testing.assert_close(out, norm(x + residual), rtol=1e-5, atol=1e-5)
        assert fused.state_dict().keys() == norm.state_dict().keys()


class LlamaStyleRMSNorm(nn.Module):
    """The shape of Hugging Face's LlamaRMSNorm: weight and variance_epsilon."""

    def __init__(self, hidden, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(hidden))
        self.variance_epsilon = eps

    def forward(self, h):
        variance = h.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (h.float() * torch.rsqrt(variance + self.variance_epsilon)).to(h.dtype)


def test_add_rms_norm_from_llama_style_norm():
    norm = LlamaStyleRMSNorm(48)
    fused = AddRMSNorm.from_norm(norm)
    x, residual = torch.randn(4, 48), torch.randn(4, 48)
    torch.testing.assert_close(fused(x, residual)[0], norm(x + residual), rtol=1e-5, atol=1e-5)


def test_from_norm_rejects_other_modules():
    with pytest.raises(TypeError, match="^norm:"):
        AddLayerNorm.from_norm(nn.Linear(4, 4))
    with pytest.raises(TypeError, match="^norm:"):
        AddRMSNorm.from_norm(nn.Linear(4, 4))
    with pytest.raises(ValueError, match="^norm:"):
        AddLayerNorm.from_norm(nn.LayerNorm((4, 4)))


@pytest.mark.parametrize("module", [AddLayerNorm(40), AddRMSNorm(40)], ids=["layer_norm", "rms_norm"])
def test_compiled_module_matches_eager(module):
    nn.init.normal_(module.weight)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = module

        def forward(self, x, residual):
            out, total = self.norm(x * 2, residual)
            return out + 1, total

    block = Block()
    x, residual = torch.randn(3, 6, 40), torch.randn(3, 6, 40)
    compiled = torch.compile(block, fullgraph=True)
    with torch.no_grad():
        for got, want in zip(compiled(x, residual), block(x, residual)):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


# --- Int8Linear ------------------------------------------------------------------------------


def _sqnr(signal, approx):
    return (10 * torch.log10(signal.pow(2).mean() / (signal - approx).pow(2).mean())).item()


@pytest.mark.parametrize("mode", ["dynamic", "weight_only"])
def test_int8_linear_from_linear_is_close(mode):
    linear = nn.Linear(300, 130)
    x = torch.randn(2, 9, 300)
    module = Int8Linear.from_linear(linear, mode=mode)
    with torch.no_grad():
        assert _sqnr(linear(x), module(x)) > MIN_SQNR_DB
    assert f"mode={mode}" in repr(module)


@pytest.mark.parametrize("mode", ["dynamic", "weight_only"])
def test_int8_linear_state_dict_round_trip(mode):
    module = Int8Linear.from_linear(nn.Linear(64, 40), mode=mode)
    assert set(module.state_dict()) == {"w_q", "w_scale", "bias"}
    fresh = Int8Linear(64, 40, mode=mode)
    fresh.load_state_dict(module.state_dict())
    x = torch.randn(5, 64)
    assert torch.equal(fresh(x), module(x))


def test_int8_linear_weight_only_on_bfloat16_reads_its_packed_weight():
    """bf16 activations take the kernel on the packed copy where the CPU has it; the packed copy
    is rebuilt from a loaded state_dict and the compiled module gives the eager result."""
    module = Int8Linear.from_linear(nn.Linear(300, 130), mode="weight_only")
    x = torch.randn(2, 13, 300).bfloat16()
    with torch.no_grad():
        got = module(x)
        torch.testing.assert_close(got, int8_weight_only_linear_ref(x, module.w_q, module.w_scale, module.bias),
                                   **WEIGHT_ONLY[torch.bfloat16])
        fresh = Int8Linear(300, 130, mode="weight_only")
        fresh.load_state_dict(module.state_dict())
        assert torch.equal(fresh.w_packed, module.w_packed) and torch.equal(fresh(x), got)
        torch.testing.assert_close(torch.compile(module, fullgraph=True)(x), got, rtol=0, atol=0)


def test_int8_linear_in_a_model_cast_to_bfloat16():
    model = nn.Sequential(Int8Linear.from_linear(nn.Linear(32, 16)), nn.ReLU()).to(torch.bfloat16)
    assert model[0].w_scale.dtype == torch.float32
    y = model(torch.randn(3, 32, dtype=torch.bfloat16))
    assert y.dtype == torch.bfloat16


@pytest.mark.parametrize("mode", ["dynamic", "weight_only"])
def test_int8_linear_compiled_matches_eager(mode):
    module = Int8Linear.from_linear(nn.Linear(48, 24), mode=mode)
    x = torch.randn(4, 48)
    compiled = torch.compile(module, fullgraph=True)
    torch.testing.assert_close(compiled(x), module(x), rtol=0, atol=0)


def _module_and_inputs(name):
    g = torch.Generator().manual_seed(0)
    if name == "add_layer_norm":
        module = AddLayerNorm.from_norm(nn.LayerNorm(96))
        return module, (torch.randn(3, 7, 96, generator=g), torch.randn(3, 7, 96, generator=g))
    return Int8Linear.from_linear(nn.Linear(96, 40), mode=name), (torch.randn(3, 7, 96, generator=g),)


@requires_cuda
@pytest.mark.skipif(not HAS_TRITON_OP, reason="torch.library.triton_op needs torch >= 2.6")
@pytest.mark.parametrize("name", ["dynamic", "weight_only", "add_layer_norm"])
def test_compiled_modules_on_cuda_trace_into_the_triton_kernels(name):
    module, inputs = _module_and_inputs(name)
    module, inputs = module.cuda(), [t.cuda() for t in inputs]
    recorder = AotEagerAndRecordGraphs()
    with use_backend("triton"), torch.no_grad():
        want = module(*inputs)
        for backend in (recorder, "inductor"):
            torch._dynamo.reset()
            got = torch.compile(module, backend=backend, fullgraph=True)(*inputs)
            for g, w in zip(torch.utils._pytree.tree_leaves(got), torch.utils._pytree.tree_leaves(want)):
                torch.testing.assert_close(g, w, rtol=0, atol=0)
    assert "triton_kernel_wrapper" in recorder.fw_graphs[0].code


@pytest.mark.parametrize("mode", ["dynamic", "weight_only"])
@pytest.mark.parametrize("shape", [(0, 37), (1, 37), (2, 9, 37)])
def test_int8_linear_with_four_bit_weights_is_the_int8_kernel_on_16_levels(mode, shape):
    linear = nn.Linear(37, 130)
    module = Int8Linear.from_linear(linear, mode=mode, weight_bits=4)
    w = linear.weight.detach()
    # Each row's value of largest magnitude lands exactly on -8 (its scale is signed).
    peak = w.gather(1, w.abs().argmax(1, keepdim=True)).squeeze(1)
    torch.testing.assert_close(module.w_scale, peak / -8)
    assert module.w_q.min() >= -8 and module.w_q.max() <= 7 and ((module.w_q == -8).sum(1) >= 1).all()
    # Within the grid a value rounds to the nearest level; past +7.5 steps it clips to +7.
    error, step = (module.w_q.float() * module.w_scale[:, None] - w).abs(), module.w_scale.abs()[:, None]
    inside = w / module.w_scale[:, None] <= 7.5
    assert error[inside].le((step / 2 + 1e-6).expand_as(w)[inside]).all() and error.le(step + 1e-6).all()
    x = torch.randn(*shape)
    want = (int8_dynamic_linear_prepacked_ref if mode == "dynamic" else int8_weight_only_linear_ref)(
        x, module.w_q, module.w_scale, module.bias)
    with torch.no_grad():
        torch.testing.assert_close(module(x), want, rtol=1e-5, atol=1e-5)
    assert "weight_bits=4" in repr(module)


def test_four_bit_values_known_answer_and_packing():
    q, scale = int4.quantize_signed(torch.tensor([[1.0, -2.0, 0.5], [0.0, 0.0, 0.0], [3.0, 0.0, -1.0]]))
    assert q.tolist() == [[4, -8, 2], [0, 0, 0], [-8, 0, 3]] and scale.tolist() == [0.25, 0.0, -0.375]
    values = torch.randint(-8, 8, (5, 7), dtype=torch.int8)
    packed = int4.pack(values)
    assert packed.shape == (5, 4) and packed.dtype == torch.uint8
    assert torch.equal(int4.unpack(packed, 7), values)


def test_four_bit_scale_takes_the_first_value_of_largest_magnitude():
    """The peak found from each row's max and min is the one argmax over |values| finds, also
    where +p and -p tie, on signed zeros, infinities and NaN."""
    g = torch.Generator().manual_seed(0)
    rows = torch.randn(16, 12, generator=g)
    rows[0, [3, 9]] = torch.tensor([5.0, -5.0])
    rows[1, [2, 7]] = torch.tensor([-5.0, 5.0])
    rows[2], rows[3] = torch.tensor(0.0), torch.tensor(-0.0)
    rows[3, 4] = 0.0
    rows[4, 5] = float("inf")
    rows[5, [1, 2]] = torch.tensor([float("-inf"), float("inf")])
    rows[6, 8] = float("nan")
    for values in (rows, torch.randn(3, 5, 40, generator=g), torch.randn(0, 4)):
        expected = values.gather(-1, values.abs().argmax(-1, keepdim=True))
        peak = int4._peak(values)
        assert torch.equal(peak.isnan(), expected.isnan())
        kept = ~expected.isnan()
        assert torch.equal(peak[kept], expected[kept]) and torch.equal(peak[kept].signbit(), expected[kept].signbit())
    q, scale = int4.quantize_signed(rows[:2])
    assert scale.tolist() == [5.0 / -8, -5.0 / -8] and q[0, 3] == -8 and q[1, 2] == -8


def _correlated_inputs(rows, k, seed=0):
    """Inputs that mostly span a few directions (about k / 4), as a layer's inputs do."""
    g, latent = torch.Generator().manual_seed(seed), max(2, k // 4)
    return (torch.randn(rows, latent, generator=g) @ torch.randn(latent, k, generator=g)
            + 0.1 * torch.randn(rows, k, generator=g))


@pytest.mark.parametrize("k", [5, 130, 300])  # within, at and past the block of columns
def test_gptq_rounding_keeps_the_grid_and_lowers_the_output_error(k):
    torch.manual_seed(k)
    w = torch.randn(24, k)
    w[3] = 0  # a row of zeros: scale 0, levels 0
    x = _correlated_inputs(2000, k)
    gram = x.double().T @ x.double() / x.shape[0]
    q_near, scale_near = int4.quantize_signed(w)
    q, scale = int4.quantize_gptq(w, gram)
    assert q.dtype == torch.int8 and q.min() >= -8 and q.max() <= 7 and torch.equal(scale, scale_near)
    # Rounding GPTQ's values to the nearest levels again (as training does) gives them back.
    again_q, again_scale = int4.quantize_signed(q.float() * scale[:, None])
    assert torch.equal(again_q, q) and torch.equal(again_scale, scale)
    error = {name: (x @ (levels.float() * scale[:, None]).T - x @ w.T).norm().item()
             for name, levels in (("nearest", q_near), ("gptq", q))}
    assert error["gptq"] < 0.7 * error["nearest"]
    # Uncorrelated inputs (a diagonal Gram matrix) leave nothing to spread: the nearest levels.
    q_diagonal, _ = int4.quantize_gptq(w, torch.diag(torch.rand(k, dtype=torch.float64) + 0.5))
    assert torch.equal(q_diagonal, q_near)
    with pytest.raises(ValueError, match=rf"gram: expected the inputs' Gram matrix of shape \({k}, {k}\)"):
        int4.quantize_gptq(w, gram[:-1, :-1])


def test_int8_linear_with_four_bit_weights_rounds_by_gptq_for_the_inputs_it_will_meet():
    """With SmoothQuant the weight meets x / s: GPTQ works on those inputs' Gram matrix."""
    torch.manual_seed(0)
    linear = nn.Linear(96, 40)
    x = _correlated_inputs(1500, 96)
    x[:, 7] *= 30  # an outlier channel for SmoothQuant to move
    gram = x.double().T @ x.double() / x.shape[0]
    absmax = x.abs().amax(0)
    with torch.no_grad():
        want = linear(x)
        errors = {name: (Int8Linear.from_linear(linear, "dynamic", absmax, weight_bits=4, input_gram=gram)(x) - want
                         if name == "gptq" else Int8Linear.from_linear(linear, "dynamic", absmax, weight_bits=4)(x) - want
                         ).norm().item() for name in ("gptq", "nearest")}
    assert errors["gptq"] < 0.7 * errors["nearest"]
    with pytest.raises(ValueError, match="input_gram: GPTQ rounding is for 4-bit weights"):
        Int8Linear.from_linear(linear, input_gram=gram)


def test_int8_linear_with_four_bit_weights_saves_nibbles():
    module = Int8Linear.from_linear(nn.Linear(37, 20), weight_bits=4)
    state = module.state_dict()
    assert set(state) == {"w_q4", "w_scale", "bias"}
    assert state["w_q4"].shape == (20, 19) and state["w_q4"].dtype == torch.uint8
    fresh = Int8Linear(37, 20, weight_bits=4)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.w_q, module.w_q) and fresh.config() == module.config()
    x = torch.randn(3, 37)
    assert torch.equal(fresh(x), module(x))
    with pytest.raises(RuntimeError, match="w_q4: expected"):
        fresh.load_state_dict({**state, "w_q4": state["w_q4"][:, :18]})
    with pytest.raises(RuntimeError, match="w_q"):
        Int8Linear(37, 20).load_state_dict(state)  # an 8-bit module finds no w_q
    eight_bit = Int8Linear.from_linear(nn.Linear(37, 20)).state_dict()
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "w_q4"[\s\S]*Unexpected key\(s\) in '
                                            r'state_dict: "w_q"'):
        fresh.load_state_dict(eight_bit)  # 8-bit weights do not fit on 16 levels
    assert torch.equal(fresh.w_q, module.w_q)
    fresh.w_q.fill_(9)
    with pytest.raises(ValueError, match=r"4-bit values must lie in \[-8, 7\]"):
        fresh.state_dict()


def test_int8_linear_rejects_bad_arguments():
    with pytest.raises(ValueError, match="^mode:"):
        Int8Linear(4, 4, mode="int4")
    with pytest.raises(ValueError, match="^weight_bits:"):
        Int8Linear(4, 4, weight_bits=2)
    with pytest.raises(TypeError, match="^linear:"):
        Int8Linear.from_linear(nn.Conv1d(4, 4, 1))


def test_int8_embedding_is_close_and_round_trips():

    embedding = nn.Embedding(50, 24, padding_idx=0)
    ids = torch.tensor([[0, 3, 49], [7, 7, 1]])
    quantized = Int8Embedding.from_embedding(embedding)
    got, want = quantized(ids), embedding(ids)
    step = embedding.weight.abs().amax(1)[ids].unsqueeze(-1) / 127
    assert ((got - want).abs() <= step / 2 + 1e-6).all()  # at most half a quantization step
    assert torch.equal(got[0, 0], torch.zeros(24))  # the padding row stays zero
    copy = Int8Embedding(50, 24, padding_idx=0)
    copy.load_state_dict(quantized.state_dict())
    assert torch.equal(copy(ids), got) and "50, 24, padding_idx=0" in repr(copy)
    with pytest.raises(ValueError, match="max_norm"):
        Int8Embedding.from_embedding(nn.Embedding(5, 4, max_norm=1.0))
    with pytest.raises(TypeError, match="nn.Embedding"):
        Int8Embedding.from_embedding(nn.Linear(2, 2))


def symmetric_int4(w: torch.Tensor) -> torch.Tensor:
    """w [rows, dim] through the plain 4-bit grid: -7..7 times absmax / 7 per group of 32 columns."""
    groups = nn.functional.pad(w, (0, -w.shape[1] % 32)).reshape(w.shape[0], -1, 32)
    step = (groups.abs().amax(-1, keepdim=True) / 7).half().float().clamp_min(1e-30)
    return ((groups / step).round().clamp(-7, 7) * step).reshape(w.shape[0], -1)[:, :w.shape[1]]


def group_errors(got: torch.Tensor, want: torch.Tensor) -> torch.Tensor:
    error = nn.functional.pad((got - want) ** 2, (0, -want.shape[-1] % 32))
    return error.reshape(*error.shape[:-1], -1, 32).sum(-1)


@pytest.mark.parametrize("dim", [24, 64, 45])  # less than a group, whole groups, an odd width
def test_int4_embedding_does_no_worse_than_the_symmetric_grid(dim):
    embedding = nn.Embedding(50, dim, padding_idx=0)
    ids = torch.tensor([[0, 3, 49], [7, 7, 1]])
    quantized = Int4Embedding.from_embedding(embedding)
    got, want = quantized(ids), embedding(ids)
    plain = symmetric_int4(embedding.weight.detach())[ids]
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert (group_errors(got, want) <= group_errors(plain, want) * 1.0001 + 1e-12).all()
    assert group_errors(got, want).sum() < 0.9 * group_errors(plain, want).sum()  # the 16th level and the search pay
    assert torch.equal(got[0, 0], torch.zeros(dim))
    copy = Int4Embedding(50, dim, padding_idx=0)
    copy.load_state_dict(quantized.state_dict())
    assert torch.equal(copy(ids), got) and "4-bit" in repr(copy)
    assert quantized.w_packed.numel() == 50 * ((dim + 1) // 2)
    strided = torch.tensor([[0, 7], [3, 7], [49, 1]]).t()  # not contiguous: torch ops, not the native gather
    assert torch.equal(quantized(strided), got)
    with pytest.raises(IndexError):
        quantized(torch.tensor([50]))
    assert quantized.half()(ids).dtype == torch.float16 and quantized.w_scale.dtype == torch.float16
    with pytest.raises(ValueError, match="max_norm"):
        Int4Embedding.from_embedding(nn.Embedding(5, 4, max_norm=1.0))


@pytest.mark.parametrize("make", [Int8Embedding.from_embedding, Int4Embedding.from_embedding])
def test_embedding_with_a_table_made_a_parameter(make):
    """A table a user turned into a Parameter is still read (the buffer dict no longer holds it)."""
    torch.manual_seed(0)
    quantized = make(nn.Embedding(20, 64))
    ids = torch.tensor([[3, 0, 19]])
    expected = quantized(ids)
    name = "w_scale"
    setattr(quantized, name, nn.Parameter(getattr(quantized, name).clone(), requires_grad=False))
    assert name not in quantized._buffers
    torch.testing.assert_close(quantized(ids), expected, rtol=0, atol=0)


def test_int4_embedding_reproduces_a_group_on_its_grid():
    """The value of largest magnitude lands on -8: a row of multiples of it / 8 comes back exact,
    all 16 levels used."""
    row = torch.arange(-8, 8, dtype=torch.float32).repeat(2) * -0.375 / 8  # peak +0.375 -> q = -8
    embedding = nn.Embedding.from_pretrained(torch.stack([row, -row, torch.zeros(32)]))
    quantized = Int4Embedding.from_embedding(embedding)
    assert torch.equal(quantized(torch.tensor([0, 1, 2])), embedding.weight)


def test_low_rank_linear_at_full_rank_is_the_linear():

    linear = nn.Linear(30, 20)
    x = torch.randn(5, 30)
    full = LowRankLinear.from_linear(linear, rank=20)
    torch.testing.assert_close(full(x), linear(x), rtol=1e-5, atol=1e-5)
    assert "rank=20" in repr(full)
    with pytest.raises(ValueError, match="rank"):
        LowRankLinear(30, 20, rank=21)


def test_low_rank_linear_calls_its_factors_where_they_are_not_plain_linears():
    """The short road (F.linear on the factors' weights) gives the module calls' result, and is
    left where a hook watches a factor or a pass swapped one for another module."""
    torch.manual_seed(0)
    factored = LowRankLinear.from_linear(nn.Linear(48, 40), rank=12)
    x = torch.randn(3, 48)
    expected = factored.up(factored.down(x))
    torch.testing.assert_close(factored(x), expected, rtol=0, atol=0)
    factored(x).sum().backward()  # the short road trains
    assert factored.down.weight.grad is not None
    seen = []
    handle = factored.down.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    factored(x)
    handle.remove()
    assert len(seen) == 1 and seen[0] is x
    factored.up = Int8Linear.from_linear(factored.up)
    torch.testing.assert_close(factored(x), factored.up(factored.down(x)), rtol=0, atol=0)
    with torch.no_grad():
        assert (factored(x) - expected).abs().max() > 0  # the int8 module ran


@pytest.mark.parametrize("with_gram", [False, True])
def test_an_exactly_rank_r_weight_is_reconstructed_at_rank_r(with_gram):
    torch.manual_seed(0)
    linear = nn.Linear(40, 24)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(24, 5) @ torch.randn(5, 40))
    x = torch.randn(64, 40)
    gram = (x.T @ x / 64).double() if with_gram else None
    factored = LowRankLinear.from_linear(linear, rank=5, input_gram=gram)
    torch.testing.assert_close(factored(x), linear(x), rtol=1e-4, atol=1e-4)
    truncated = LowRankLinear.from_linear(linear, rank=4, input_gram=gram)
    assert (truncated(x) - linear(x)).abs().max() > 1e-2


def test_low_rank_linear_with_calibration_fits_the_inputs_better():
    """With the inputs' second moments, truncation keeps the directions the inputs use."""

    g = torch.Generator().manual_seed(0)
    linear = nn.Linear(64, 64)
    x = torch.randn(512, 8, generator=g) @ torch.randn(8, 64, generator=g)  # inputs span 8 directions
    gram = (x.double().T @ x.double()) / x.shape[0]
    plain = LowRankLinear.from_linear(linear, rank=8)
    calibrated = LowRankLinear.from_linear(linear, rank=8, input_gram=gram)
    with torch.no_grad():
        error = {name: (m(x) - linear(x)).norm().item() for name, m in (("plain", plain), ("calibrated", calibrated))}
    assert error["calibrated"] < 1e-3 * linear(x).norm().item() < error["plain"]


def test_int8_linear_gelu_activation():

    linear = nn.Linear(48, 40)
    x = torch.randn(6, 48)
    plain, fused = Int8Linear.from_linear(linear), Int8Linear.from_linear(linear)
    fused.activation = "gelu"
    torch.testing.assert_close(fused(x), F.gelu(plain(x)), rtol=1e-5, atol=1e-5)
    assert "activation=gelu" in repr(fused) and fused.config()["activation"] == "gelu"
    with pytest.raises(ValueError, match="activation"):
        Int8Linear(48, 40, mode="weight_only", activation="gelu")


def test_smoothquant_tames_outlier_channels():
    """Activations with a few channels 50x larger than the rest (as in trained Transformers): moving
    their range into the weights raises the SQNR of the W8A8 layer."""
    g = torch.Generator().manual_seed(0)
    linear = nn.Linear(256, 128)
    x = torch.randn(64, 256, generator=g)
    x[:, :4] *= 50
    exact = linear(x).detach()
    plain = Int8Linear.from_linear(linear)
    smooth = Int8Linear.from_linear(linear, input_absmax=x.abs().amax(0))
    with torch.no_grad():
        assert _sqnr(exact, smooth(x)) > _sqnr(exact, plain(x)) + 6
    assert "smooth=True" in repr(smooth) and smooth.config()["smooth"]
    copy = Int8Linear(256, 128, smooth=True)
    copy.load_state_dict(smooth.state_dict())
    with torch.no_grad():
        assert torch.equal(copy(x), smooth(x))
    with pytest.raises(ValueError, match="smooth"):
        Int8Linear(256, 128, mode="weight_only", smooth=True)
    with pytest.raises(ValueError, match="input_absmax"):
        Int8Linear.from_linear(linear, input_absmax=torch.ones(3))
