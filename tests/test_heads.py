"""Structured pruning of attention heads: smaller attention layers, the removed heads recorded in
the config so that a model built from it is reshaped before its weights load."""

import pytest
import torch

import prunq
from prunq.compress.heads import attention_blocks, prune_heads

from .models import ARCHITECTURES, cosine, run, tiny_model

IDS = torch.randint(0, 100, (2, 9), generator=torch.Generator().manual_seed(3))
BATCHES = [{"input_ids": IDS}]


def heads_per_block(model):
    return [a.heads(model) for a in attention_blocks(model)]


@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_head_pruning_makes_a_model_that_reloads_from_its_config(tmp_path, kind):
    from safetensors.torch import load_file

    model = tiny_model(kind)
    reference = run(model, IDS)
    prunq.compress(model, "heads:0.5", calibration=BATCHES, show_progress=False)
    removed = model.config.pruned_heads
    assert sum(map(len, removed.values())) == 4 and all(len(h) < 4 for h in removed.values())
    assert heads_per_block(model) == [4 - len(removed.get(i, [])) for i in range(2)]
    assert cosine(run(model, IDS), reference) > 0.5
    model.save_pretrained(tmp_path)
    fresh = type(model)(type(model.config).from_pretrained(tmp_path)).eval()
    assert heads_per_block(fresh) == [4, 4]
    prunq.compress.restore_heads(fresh)
    fresh.load_state_dict(load_file(tmp_path / "model.safetensors"), strict=False)
    torch.testing.assert_close(run(fresh, IDS), run(model, IDS))


@pytest.mark.parametrize("calibration", [BATCHES, None])
def test_the_head_that_writes_nothing_goes_first(calibration):
    model = tiny_model("bert")
    attention = model.encoder.layer[1].attention
    with torch.no_grad():  # head 2 of block 1: no value, no output
        attention.self.value.weight[32:48].zero_()
        attention.self.value.bias[32:48] = 0
        attention.output.dense.weight[:, 32:48].zero_()
    query = attention.self.query.weight.detach().clone()
    prunq.compress(model, "heads:0.125", calibration=calibration, show_progress=False)
    assert model.config.pruned_heads == {1: [2]}
    kept = model.encoder.layer[1].attention.self.query.weight.detach()
    assert torch.equal(kept, torch.cat([query[:32], query[48:]]))


def test_grouped_attention_loses_whole_groups():
    model = tiny_model("llama")  # 4 query heads sharing 2 key-value heads per block
    removed = prune_heads(model, 0.25)
    (block, heads), = removed.items()
    assert heads in ([0, 1], [2, 3])
    attention = model.layers[block].self_attn
    assert attention.q_proj.out_features == 32 and attention.k_proj.out_features == 16
    run(model, IDS)


@pytest.mark.parametrize("recipe", ["heads:0.5+ffn:0.25+int8", "heads:0.25+2:4+emb8", "heads:0.25+layers:1+int8"])
def test_heads_compose_and_round_trip_through_prunq_save(tmp_path, recipe):
    model = prunq.compress(tiny_model("bert"), recipe, calibration=BATCHES, show_progress=False)
    prunq.save(model, tmp_path / "m.safetensors")
    loaded = prunq.load(tmp_path / "m.safetensors", type(model)(model.config).eval())
    assert torch.equal(run(loaded, IDS), run(model, IDS))


@pytest.mark.parametrize("recipe,message", [("heads:1", r"\[0, 1\)"), ("heads:-0.5", r"\[0, 1\)"),
                                            ("heads:some", "share of heads")])
def test_bad_head_recipes_leave_the_model_untouched(recipe, message):
    model = tiny_model("llama")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        prunq.compress(model, recipe, show_progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_record_that_does_not_fit_the_model_is_refused():
    model = tiny_model("llama")
    model.config.pruned_heads = {0: [1]}  # half of a key-value group
    with pytest.raises(ValueError, match="whole groups of 2"):
        prunq.compress.restore_heads(model)
