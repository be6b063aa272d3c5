"""prunq.compress on small BERT, GPT-2 and Llama models: every recipe, norm and GELU fusion,
include / exclude, and recipe errors."""

import pytest
import torch
from torch import nn

import prunq
from prunq.compress.binarize import is_ffn
from prunq.compress.fuse_norms import fuse_norms
from prunq.compress.recipe import parse_recipe
from prunq.formats import int4
from prunq.nn import AddLayerNorm, AddRMSNorm, CSRLinear, Int4Embedding, Int8Embedding, Int8Linear, LowRankLinear, Sparse24Linear

from .models import ARCHITECTURES, cosine, run, tiny_model

IDS = torch.randint(0, 100, (2, 11), generator=torch.Generator().manual_seed(0))

# The cosine between compressed and float outputs each recipe must reach on these models. int8
# steps lose about 1/254 of each value's range; low rank loses far more on random weights, whose
# flat singular spectra are the worst case for truncation (a trained model's decay faster).
EXPECTED_COSINE = {"int8": 0.995, "int8-weight-only": 0.999, "int8+emb8": 0.995, "int8+emb4": 0.95,
                   "lowrank:0.5": 0.75, "lowrank:0.7+int8": 0.75, "2:4": 0.85, "2:4+int8": 0.85,
                   "csr:0.5": 0.9, "csr:0.5+int8": 0.9}


@pytest.mark.parametrize("recipe", list(EXPECTED_COSINE))
@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_each_recipe_stays_close_to_the_float_model(kind, recipe):
    reference = run(tiny_model(kind), IDS)
    model = prunq.compress(tiny_model(kind), recipe, show_progress=False)
    assert cosine(run(model, IDS), reference) > EXPECTED_COSINE[recipe]
    steps = parse_recipe(recipe).names()
    kinds = {type(m) for m in model.modules()}
    quantized = bool(steps & {"int8", "int8-weight-only"})
    sparse = {"2:4", "csr"} & steps
    assert (Int8Linear in kinds) == (quantized and not sparse)
    assert (Sparse24Linear in kinds) == ("2:4" in steps)
    assert (CSRLinear in kinds) == ("csr" in steps)
    assert (LowRankLinear in kinds) == ("lowrank" in steps)
    assert (Int8Embedding in kinds) == ("emb8" in steps)
    assert (Int4Embedding in kinds) == ("emb4" in steps)
    if sparse:
        layers = [m for m in model.modules() if isinstance(m, (Sparse24Linear, CSRLinear))]
        assert layers and all((m.values.dtype == torch.int8) == quantized for m in layers)
    assert model.prunq_compression["recipe"] == recipe


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_norm_fusion_alone_gives_the_same_outputs(kind):
    model = tiny_model(kind)
    reference = run(model, IDS)
    fused = fuse_norms(model)
    assert len(fused) == (4 if kind == "bert" else 2)
    norm_type = AddRMSNorm if kind == "llama" else AddLayerNorm
    assert sum(isinstance(m, norm_type) for m in model.modules()) == len(fused)
    torch.testing.assert_close(run(model, IDS), reference, rtol=1e-5, atol=1e-5)
    assert fuse_norms(model) == []  # fusing twice changes nothing


def test_bert_gelu_moves_into_the_int8_epilogue():
    model = prunq.compress(tiny_model("bert"), "int8", show_progress=False)
    intermediates = [m for name, m in model.named_modules() if name.endswith("intermediate")]
    assert intermediates and all(m.dense.activation == "gelu" for m in intermediates)
    assert all(m.activation == "none" for name, m in model.named_modules()
               if isinstance(m, Int8Linear) and "intermediate" not in name)
    assert len(model.prunq_compression["gelu_fused"]) == len(intermediates)


def test_weight_only_keeps_the_gelu_outside():
    model = prunq.compress(tiny_model("bert"), "int8-weight-only", show_progress=False)
    assert model.prunq_compression["gelu_fused"] == []


def test_heads_are_left_alone_by_default_and_include_exclude_select():
    model = prunq.compress(tiny_model("gpt2"), "int8", show_progress=False)
    assert isinstance(model.lm_head, nn.Linear) and model.lm_head.weight is model.transformer.wte.weight
    bert = prunq.compress(tiny_model("bert"), "int8", show_progress=False)
    assert isinstance(bert.pooler.dense, nn.Linear)

    only_attention = prunq.compress(tiny_model("bert"), "int8", include=["*attention*"], show_progress=False)
    quantized = {name for name, m in only_attention.named_modules() if isinstance(m, Int8Linear)}
    assert quantized and all("attention" in name for name in quantized)
    assert isinstance(only_attention.encoder.layer[0].intermediate.dense, nn.Linear)

    no_values = prunq.compress(tiny_model("bert"), "int8", exclude=["*.value"], show_progress=False)
    assert isinstance(no_values.encoder.layer[0].attention.self.value, nn.Linear)
    assert isinstance(no_values.pooler.dense, Int8Linear)  # a user's exclude list replaces the default


def test_int8_with_calibration_smooths_every_quantized_layer(tmp_path):
    batches = [{"input_ids": IDS}, {"input_ids": IDS.flip(1)}]
    model = prunq.compress(tiny_model("bert"), "int8", calibration=batches, show_progress=False)
    layers = [m for m in model.modules() if isinstance(m, Int8Linear)]
    assert layers and all(m.x_channel_scale is not None for m in layers)
    assert cosine(run(model, IDS), run(tiny_model("bert"), IDS)) > EXPECTED_COSINE["int8"]
    prunq.save(model, tmp_path / "m.safetensors")
    loaded = prunq.load(tmp_path / "m.safetensors", tiny_model("bert"))
    assert torch.equal(run(loaded, IDS), run(model, IDS))


def test_calibration_runs_batches_through_the_model():
    model = tiny_model("bert")
    batches = [{"input_ids": IDS}, {"input_ids": IDS.flip(1)}]
    calibrated = prunq.compress(model, "lowrank:0.5", calibration=batches, show_progress=False)
    assert cosine(run(calibrated, IDS), run(tiny_model("bert"), IDS)) > 0.9
    with pytest.raises(TypeError, match="calibration"):
        prunq.compress(tiny_model("bert"), "lowrank:0.5", calibration=[[1, 2]], show_progress=False)
    with pytest.raises(ValueError, match="no batches"):
        prunq.compress(tiny_model("bert"), "lowrank:0.5", calibration=[], show_progress=False)


@pytest.mark.parametrize("recipe,message", [
    ("binary:ternary", "':connect'"), ("binary+int8", "binary has already turned"), ("csr", "expects the sparsity"),
    ("csr:1.5", r"\(0, 1\]"),
    ("int8+int8-weight-only", "quantizes twice"), ("emb8+emb4", "choose emb8 or emb4"), ("2:4+2:4", "two 2:4 steps"), ("lowrank:2", r"\(0, 1\]"),
    ("lowrank:half", "expects a number"), ("int4", "unknown step"), ("", "expected a string"),
    ("int8:w3", "':w4'"), ("2:4+int8:w4", "'int8:w4' takes linear layers, which 2:4 has already turned"),
])
def test_bad_recipes_are_clear_errors(recipe, message):
    model = tiny_model("bert")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        prunq.compress(model, recipe, show_progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kind", ["bert", "gpt2", "llama"])
def test_binary_takes_the_ffn_layers_and_round_trips(tmp_path, kind):
    model = prunq.compress(tiny_model(kind), "binary", show_progress=False)
    binary = {name for name, m in model.named_modules() if isinstance(m, prunq.nn.BinaryLinear)}
    linear = {name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    assert binary and all(is_ffn(name) for name in binary)
    assert not any(is_ffn(name) for name in linear)
    assert all(m.binarize_x for m in model.modules() if isinstance(m, prunq.nn.BinaryLinear))
    prunq.save(model, tmp_path / "m.safetensors")
    loaded = prunq.load(tmp_path / "m.safetensors", tiny_model(kind))
    assert torch.equal(run(loaded, IDS), run(model, IDS))
    connect = prunq.compress(tiny_model(kind), "binary:connect", include=["*"], show_progress=False)
    layers = [m for m in connect.modules() if isinstance(m, prunq.nn.BinaryLinear)]
    assert len(layers) > len(binary) and not any(m.binarize_x for m in layers)


def test_compressing_twice_is_an_error():
    model = prunq.compress(tiny_model("bert"), "int8", show_progress=False)
    with pytest.raises(ValueError, match="already compressed"):
        prunq.compress(model, "int8", show_progress=False)
    with pytest.raises(TypeError, match="nn.Module"):
        prunq.compress("bert", "int8")


class CountingBatches:
    """Calibration batches that count the passes over them."""

    def __init__(self, batches):
        self.batches, self.passes = batches, 0

    def __iter__(self):
        self.passes += 1
        return iter(self.batches)


def test_steps_run_in_canonical_order_whatever_order_they_are_written():
    written = prunq.compress(tiny_model("bert"), "int8+lowrank:0.5", show_progress=False)
    canonical = prunq.compress(tiny_model("bert"), "lowrank:0.5+int8", show_progress=False)
    assert [step.name for step in parse_recipe("emb8+int8+lowrank:0.5").steps] == ["lowrank", "int8", "emb8"]
    assert written.prunq_compression["recipe"] == "int8+lowrank:0.5"
    assert written.prunq_compression["modules"] == canonical.prunq_compression["modules"]
    torch.testing.assert_close(run(written, IDS), run(canonical, IDS), rtol=0, atol=0)


def test_calibration_statistics_are_collected_in_one_pass_over_the_data():
    batches = CountingBatches([{"input_ids": IDS}, {"input_ids": IDS.flip(1)}])
    prunq.compress(tiny_model("bert"), "int8+emb8", calibration=batches, show_progress=False)
    assert batches.passes == 1
    batches = CountingBatches([{"input_ids": IDS}])
    prunq.compress(tiny_model("bert"), "lowrank:0.5+int8", calibration=batches, show_progress=False)
    assert batches.passes == 2  # int8 smooths the factors, whose inputs exist only after lowrank


def test_a_pass_that_finds_nothing_to_take_names_both_steps(monkeypatch):
    from prunq.compress import passes
    from prunq.compress.quantize import Quantize

    class AfterQuantize(passes.Pass):
        """A later pass that takes float Linear layers, which int8 has already replaced."""
        names, order, makes = ("later",), 99, {passes.LINEAR: passes.LINEAR}

    monkeypatch.setitem(passes.PASSES, "later", AfterQuantize())
    assert isinstance(passes.PASSES["int8"], Quantize)
    with pytest.raises(ValueError, match="'later' takes linear layers, which int8 has already turned"):
        parse_recipe("later+int8")


def test_two_of_four_with_calibration_prunes_by_sparsegpt_and_round_trips(tmp_path):
    batches = [{"input_ids": IDS}, {"input_ids": IDS.flip(1)}]
    model = prunq.compress(tiny_model("llama"), "2:4+int8", calibration=batches, show_progress=False)
    magnitude = prunq.compress(tiny_model("llama"), "2:4+int8", show_progress=False)
    name = "layers.0.mlp.down_proj"
    assert not torch.equal(model.get_submodule(name).meta, magnitude.get_submodule(name).meta)
    assert cosine(run(model, IDS), run(tiny_model("llama"), IDS)) > EXPECTED_COSINE["2:4+int8"]
    prunq.save(model, tmp_path / "m.safetensors")
    loaded = prunq.load(tmp_path / "m.safetensors", tiny_model("llama"))
    assert torch.equal(run(loaded, IDS), run(model, IDS))


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_four_bit_weights_with_calibration_are_rounded_by_gptq(kind, monkeypatch):
    """int8:w4 with calibration data chooses each layer's 4-bit levels by GPTQ: against rounding to
    the nearest level under the same SmoothQuant factors, the same grids (scales), other levels,
    and outputs on the calibration inputs closer to the float model's."""
    batches = [{"input_ids": IDS}, {"input_ids": IDS.flip(1)}]
    reference = run(tiny_model(kind), IDS)
    gptq = prunq.compress(tiny_model(kind), "int8:w4", calibration=batches, show_progress=False)
    monkeypatch.setattr(int4, "quantize_gptq", lambda values, gram: int4.quantize_signed(values))
    nearest = prunq.compress(tiny_model(kind), "int8:w4", calibration=batches, show_progress=False)
    pairs = [(m, nearest.get_submodule(name)) for name, m in gptq.named_modules() if isinstance(m, Int8Linear)]
    assert pairs and all(a.weight_bits == 4 and torch.equal(a.w_scale, b.w_scale) for a, b in pairs)
    assert any(not torch.equal(a.w_q, b.w_q) for a, b in pairs)
    # On these inputs GPTQ's outputs are several times closer (1 - cosine 4e-4 against 3e-3 on GPT-2).
    assert 1 - cosine(run(gptq, IDS), reference) < 0.5 * (1 - cosine(run(nearest, IDS), reference))


def test_csr_keeps_the_share_asked_for_and_round_trips(tmp_path):
    batches = [{"input_ids": IDS}]
    model = prunq.compress(tiny_model("gpt2"), "csr:0.75+int8", calibration=batches, show_progress=False)
    layers = [m for m in model.modules() if isinstance(m, CSRLinear)]
    assert layers and all(m.values.numel() <= 0.25 * m.in_features * m.out_features + m.out_features for m in layers)
    prunq.save(model, tmp_path / "m.safetensors")
    loaded = prunq.load(tmp_path / "m.safetensors", tiny_model("gpt2"))
    assert torch.equal(run(loaded, IDS), run(model, IDS))
