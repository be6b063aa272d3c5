"""Structured pruning of FFN neurons: smaller ordinary Hugging Face models."""

import pytest
import torch

import prunq
from prunq.compress.structured import ffn_blocks, kept_neurons

from .models import ARCHITECTURES, cosine, run, tiny_model

IDS = torch.randint(0, 100, (2, 9), generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_ffn_pruning_makes_a_smaller_model_that_transformers_saves_and_loads(tmp_path, kind):
    def neurons(model):
        downs = [model.get_submodule(block.down) for block in ffn_blocks(model)]
        return [d.in_features if isinstance(d, torch.nn.Linear) else d.weight.shape[0] for d in downs]

    model = tiny_model(kind)
    reference = run(model, IDS)
    before = neurons(model)[0]
    batches = [{"input_ids": IDS}]
    prunq.compress(model, "ffn:0.25", calibration=batches, show_progress=False)
    assert neurons(model) == [before * 3 // 4] * 2
    assert getattr(model.config, ffn_blocks(model)[0].config_field) == before * 3 // 4
    assert cosine(run(model, IDS), reference) > 0.9
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path).eval()
    torch.testing.assert_close(run(loaded, IDS), run(model, IDS))


def test_the_neuron_that_does_nothing_goes_first():
    model = tiny_model("bert")
    block = ffn_blocks(model)[0]
    up, down = model.get_submodule(block.ups[0]), model.get_submodule(block.down)
    with torch.no_grad():
        up.weight[5].zero_()
        up.bias[5] = 0
        down.weight[:, 5].zero_()
    before = up.weight.detach().clone()
    prunq.compress(model, f"ffn:{1 / 128}", show_progress=False)
    kept = model.get_submodule(block.ups[0]).weight.detach()
    assert kept.shape[0] == 127 and torch.equal(kept, torch.cat([before[:5], before[6:]]))


@pytest.mark.parametrize("width,fraction,kept", [
    (1536, 0.3, 1072),    # 1075.2 to the nearest multiple of 16
    (1536, 0.6, 608),     # 614.4
    (1536, 0.0, 1536),    # nothing removed stays nothing removed
    (1536, 0.001, 1534),  # rounding would keep them all: the exact count instead
    (1000, 0.3, 700),     # not a multiple of 16: exact
    (512, 0.3, 358),      # narrow: rounding would move the share by more than 1%
])
def test_kept_neuron_counts(width, fraction, kept):
    assert kept_neurons(width, fraction) == kept


def test_ffn_composes_with_int8_and_round_trips(tmp_path):
    model = prunq.compress(tiny_model("llama"), "ffn:0.5+int8", show_progress=False)
    assert model.config.intermediate_size == 64
    prunq.save(model, tmp_path / "m.safetensors")
    fresh = type(model)(model.config).eval()
    loaded = prunq.load(tmp_path / "m.safetensors", fresh)
    assert torch.equal(run(loaded, IDS), run(model, IDS))


@pytest.mark.parametrize("recipe,message", [("ffn:1.0", r"\[0, 1\)"), ("ffn:-0.1", r"\[0, 1\)"),
                                            ("ffn:half", "share of neurons")])
def test_bad_ffn_recipes_leave_the_model_untouched(recipe, message):
    model = tiny_model("gpt2")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        prunq.compress(model, recipe, show_progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_removing_a_block_keeps_an_ordinary_model(tmp_path, kind):
    model = prunq.compress(tiny_model(kind), "layers:1", calibration=[{"input_ids": IDS}], show_progress=False)
    assert model.config.num_hidden_layers == 1
    model.save_pretrained(tmp_path)
    loaded = type(model).from_pretrained(tmp_path).eval()
    torch.testing.assert_close(run(loaded, IDS), run(model, IDS))


def test_the_block_that_changes_nothing_goes_first():
    model = tiny_model("llama")
    with torch.no_grad():  # block 0 adds nothing to its residual stream: its output is its input
        model.layers[0].self_attn.o_proj.weight.zero_()
        model.layers[0].mlp.down_proj.weight.zero_()
    second = model.layers[1].mlp.up_proj.weight.detach().clone()
    prunq.compress(model, "layers:1", calibration=[{"input_ids": IDS}], show_progress=False)
    assert len(model.layers) == 1 and torch.equal(model.layers[0].mlp.up_proj.weight, second)
    assert model.layers[0].self_attn.layer_idx == 0


@pytest.mark.parametrize("recipe,calibration,message", [
    ("layers:2", True, "as many blocks as the model has"), ("layers:1", False, "^calibration:"),
    ("layers:0", True, "at least one block"), ("layers:x", True, "number of blocks")])
def test_bad_layer_recipes_leave_the_model_untouched(recipe, calibration, message):
    model = tiny_model("bert")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        prunq.compress(model, recipe, calibration=[{"input_ids": IDS}] if calibration else None, show_progress=False)
    assert set(before) == set(model.state_dict()) and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
