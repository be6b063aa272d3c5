"""prunq.save / prunq.load: round trips, and files that do not match refused whole."""

import json
import struct

import pytest
import torch

import prunq
from prunq.nn import Int8Linear

from .models import ARCHITECTURES, run, tiny_model

IDS = torch.randint(0, 100, (2, 9), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("recipe", ["int8", "int8-weight-only", "int8+emb8", "int8+emb4", "lowrank:0.5+int8",
                                    "int8:w4", "int8-weight-only:w4"])
@pytest.mark.parametrize("kind", ARCHITECTURES)
def test_round_trip_gives_identical_outputs(tmp_path, kind, recipe):
    model = prunq.compress(tiny_model(kind), recipe, show_progress=False)
    path = tmp_path / "model.safetensors"
    prunq.save(model, path)
    loaded = prunq.load(path, tiny_model(kind, seed=5))  # different float weights: all must come from the file
    assert torch.equal(run(loaded, IDS), run(model, IDS))
    assert loaded.prunq_compression["modules"] == model.prunq_compression["modules"]


def test_four_bit_weights_are_saved_as_half_the_bytes(tmp_path):
    sizes = {}
    for recipe in ("int8", "int8:w4"):
        model = prunq.compress(tiny_model("bert"), recipe, show_progress=False)
        prunq.save(model, tmp_path / f"{recipe}.safetensors")
        sizes[recipe] = (tmp_path / f"{recipe}.safetensors").stat().st_size
    weight_bytes = sum(m.w_q.numel() for m in model.modules() if isinstance(m, Int8Linear))
    assert sizes["int8"] - sizes["int8:w4"] > 0.45 * weight_bytes


def test_float_model_round_trip(tmp_path):
    model = tiny_model("gpt2")
    prunq.save(model, tmp_path / "f.safetensors")
    loaded = prunq.load(tmp_path / "f.safetensors", tiny_model("gpt2", seed=3))
    assert torch.equal(run(loaded, IDS), run(model, IDS))


def untouched(model):
    """A check that `model` keeps its module types and weights."""
    types = [type(m) for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    return lambda: [type(m) for m in model.modules()] == types and all(
        torch.equal(state[k], v) for k, v in model.state_dict().items())


def rewrite_header(path, change):
    """Applies `change` to the prunq header of a safetensors file, keeping its tensors."""
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header["__metadata__"]["prunq"] = change(header["__metadata__"]["prunq"])
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + length:])


@pytest.fixture
def saved_bert(tmp_path):
    path = tmp_path / "bert.safetensors"
    prunq.save(prunq.compress(tiny_model("bert"), "int8", show_progress=False), path)
    return path


def test_another_architecture_is_refused(saved_bert):
    target = tiny_model("llama")
    check = untouched(target)
    with pytest.raises(ValueError, match="'BertModel'.*'LlamaModel'"):
        prunq.load(saved_bert, target)
    assert check()


def test_another_config_is_refused_before_anything_changes(saved_bert):
    target = tiny_model("bert", hidden=32)
    check = untouched(target)
    with pytest.raises(ValueError, match="shape"):
        prunq.load(saved_bert, target)
    assert check()


def test_truncated_file_is_refused(saved_bert):
    saved_bert.write_bytes(saved_bert.read_bytes()[:-100])
    target = tiny_model("bert")
    check = untouched(target)
    with pytest.raises(ValueError, match="truncated or damaged"):
        prunq.load(saved_bert, target)
    assert check()


@pytest.mark.parametrize("change,message", [
    (lambda text: text[:-5], "not valid JSON"),
    (lambda text: text.replace('"format": 1', '"format": 7'), "format"),
    (lambda text: text.replace('"Int8Linear"', '"Int4Linear"', 1), "unknown type"),
    (lambda text: text.replace('"in_features": 64', '"in_features": 65', 1), "shape"),
    (lambda text: text.replace('"mode": "dynamic"', '"mode": "fast"', 1), "mode"),
    (lambda text: text.replace("encoder.layer.0.attention.output", "encoder.layer.9.attention.output", 1),
     "does not exist"),
])
def test_tampered_header_is_refused(saved_bert, change, message):
    rewrite_header(saved_bert, change)
    target = tiny_model("bert")
    check = untouched(target)
    with pytest.raises(ValueError, match=message):
        prunq.load(saved_bert, target)
    assert check()


def test_missing_tensor_is_refused(tmp_path):
    from safetensors.torch import load_file, save_file

    model = prunq.compress(tiny_model("bert"), "int8", show_progress=False)
    path = tmp_path / "m.safetensors"
    prunq.save(model, path)
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as file:
        metadata = file.metadata()
    tensors = load_file(str(path))
    del tensors["encoder.layer.1.output.dense.w_scale"]
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(ValueError, match="missing: encoder.layer.1.output.dense.w_scale"):
        prunq.load(path, tiny_model("bert"))


def test_files_prunq_did_not_write(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(FileNotFoundError):
        prunq.load(tmp_path / "absent.safetensors", tiny_model("bert"))
    plain = tmp_path / "plain.safetensors"
    save_file(tiny_model("bert").state_dict(), str(plain))
    with pytest.raises(ValueError, match="not written by prunq.save"):
        prunq.load(plain, tiny_model("bert"))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="truncated or damaged"):
        prunq.load(junk, tiny_model("bert"))


def test_loading_into_a_compressed_model_is_refused(saved_bert):
    model = prunq.compress(tiny_model("bert"), "int8", show_progress=False)
    with pytest.raises(ValueError, match="already compressed"):
        prunq.load(saved_bert, model)
    assert isinstance(model.encoder.layer[0].attention.self.query, Int8Linear)
