"""Recovery by distillation: the training forms of the kernel modules, the training loop, and the
+distill recipe."""

import copy

import pytest
import torch

import prunq
from prunq.compress import recover
from prunq.compress.recover import WARMUP, distill, matched_blocks, rate_factor
from prunq.compress.trainable import TrainingNorm, trainable
from prunq.nn import AddLayerNorm, BinaryLinear, CSRLinear, Int8Linear, Sparse24Linear

from .models import cosine, run, tiny_model

IDS = torch.randint(0, 100, (4, 9), generator=torch.Generator().manual_seed(3))
TRAINING = [{"input_ids": torch.randint(0, 100, (4, 9), generator=torch.Generator().manual_seed(s))} for s in range(4)]


@pytest.mark.parametrize("recipe", ["int8", "int8-weight-only", "2:4+int8", "2:4", "csr:0.6+int8", "csr:0.8",
                                    "binary:connect", "lowrank:0.5+int8", "heads:0.25+ffn:0.25+int8+emb8", "int8:w4"])
def test_the_training_form_computes_what_the_kernels_compute(recipe):
    model = prunq.compress(tiny_model("bert"), recipe, calibration=TRAINING, show_progress=False)
    expected = run(model, IDS)
    trained = trainable(copy.deepcopy(model))
    assert not any(isinstance(m, (Int8Linear, Sparse24Linear, CSRLinear, BinaryLinear)) for m in trained.modules())
    norms = [m for m in trained.modules() if isinstance(m, TrainingNorm)]
    assert len(norms) == sum(isinstance(m, AddLayerNorm) for m in trained.modules()) > 0
    torch.testing.assert_close(run(trained, IDS), expected, atol=2e-4, rtol=1e-3)
    back = prunq.compress.convert(trained)
    torch.testing.assert_close(run(back, IDS), expected, atol=2e-4, rtol=1e-3)
    assert [type(m) for m in back.modules()] == [type(m) for m in model.modules()]
    assert [m.config() for m in back.modules() if isinstance(m, Int8Linear)] == [
        m.config() for m in model.modules() if isinstance(m, Int8Linear)]


def test_the_training_form_of_an_xnor_layer_computes_what_it_computes():
    # Layer by layer: through a whole model, an input within rounding of zero may take either sign.
    layer = BinaryLinear.from_linear(torch.nn.Linear(70, 20))
    x = torch.randn(5, 70)
    trained = trainable(torch.nn.Sequential(layer))[0]
    torch.testing.assert_close(trained(x), layer(x), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(prunq.compress.convert(trained)(x), layer(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind,recipe", [("bert", "heads:0.5+ffn:0.5+int8"), ("gpt2", "2:4+int8"),
                                         ("llama", "lowrank:0.5"), ("bert", "heads:0.5+int8:w4")])
def test_distillation_lowers_the_loss_it_optimises_and_keeps_the_kernels(kind, recipe):
    teacher = tiny_model(kind)
    student = prunq.compress(copy.deepcopy(teacher), recipe, calibration=TRAINING, show_progress=False)
    types = [type(m) for m in student.modules()]
    before = cosine(run(student, IDS), run(teacher, IDS))
    losses = distill(student, teacher, TRAINING, steps=40, lr=1e-3, show_progress=False)
    assert sum(losses[-4:]) < 0.8 * sum(losses[:4])
    assert [type(m) for m in student.modules()] == types and not student.training
    assert all(p.grad is None for p in student.parameters())
    assert cosine(run(student, IDS), run(teacher, IDS)) > before


def test_sparse_patterns_stay_fixed():
    teacher = tiny_model("bert")
    student = prunq.compress(copy.deepcopy(teacher), "2:4+int8", show_progress=False)
    layer = student.encoder.layer[0].intermediate.dense
    meta, values = layer.meta.clone(), layer.values.clone()
    distill(student, teacher, TRAINING, steps=5, lr=1e-2, show_progress=False)
    kept = student.encoder.layer[0].intermediate.dense
    dense_before = prunq.formats.sparse24.unpack(values, meta, kept.in_features) != 0
    dense_after = prunq.formats.sparse24.unpack(kept.values, kept.meta, kept.in_features) != 0
    assert not (dense_after & ~dense_before).any()
    assert not torch.equal(kept.values, values)  # trained


def test_embedding_tables_stay_fixed_and_get_no_gradient():
    teacher = tiny_model("bert")
    student = prunq.compress(copy.deepcopy(teacher), "heads:0.5+int8", calibration=TRAINING, show_progress=False)
    table = student.embeddings.word_embeddings.weight
    before = table.detach().clone()
    seen = []

    def loss(student_output, teacher_output, batch):
        seen.append(table.requires_grad)
        return recover.embedding_loss(student_output.last_hidden_state.mean(1), teacher_output.last_hidden_state.mean(1))

    distill(student, teacher, TRAINING, steps=3, lr=1e-2, losses=loss, show_progress=False)
    assert seen == [False] * 3
    assert torch.equal(table, before) and table.requires_grad and table.grad is None

    def failing(student_output, teacher_output, batch):
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        distill(student, teacher, TRAINING, steps=3, lr=1e-2, losses=failing, show_progress=False)
    assert table.requires_grad


def test_the_distill_recipe_trains_after_the_other_steps():
    teacher = tiny_model("gpt2")
    plain = prunq.compress(copy.deepcopy(teacher), "ffn:0.5+int8", show_progress=False)
    recovered = prunq.compress(copy.deepcopy(teacher), "ffn:0.5+int8+distill:30:1e-3", training=TRAINING,
                               show_progress=False)
    assert recovered.prunq_compression["recipe"] == "ffn:0.5+int8+distill:30:1e-3"
    assert cosine(run(recovered, IDS), run(teacher, IDS)) > cosine(run(plain, IDS), run(teacher, IDS))


@pytest.mark.parametrize("call,message", [
    (lambda m, t: prunq.compress(m, "int8+distill"), "training= batches"),
    (lambda m, t: prunq.compress(m, "int8+distill:0", training=TRAINING), "at least one training step"),
    (lambda m, t: prunq.compress(m, "int8+distill:many", training=TRAINING), "number of training steps"),
    (lambda m, t: prunq.compress(m, "int8+distill:5:fast", training=TRAINING), "learning rate"),
    (lambda m, t: prunq.compress(m, "int8+distill:5:-1e-4", training=TRAINING), "positive learning rate"),
    (lambda m, t: distill(m, t, TRAINING, steps=0), "steps"),
    (lambda m, t: distill(m, t, [], steps=1), "no training batches"),
    (lambda m, t: distill(m, t, TRAINING, steps=1, losses={"soft": 1.0}), "needs the model's logits"),
    (lambda m, t: distill(m, t, TRAINING, steps=1, losses={"kl": 1.0}), "losses: expected"),
    (lambda m, t: distill(m, t, TRAINING, steps=1, teacher_blocks=[0]), "teacher_blocks: expected one index"),
    (lambda m, t: distill(m, t, TRAINING, steps=1, teacher_blocks=[0, 2]), r"teacher_blocks: expected one index in \[0, 2\)"),
])
def test_bad_distillation_requests_leave_the_model_untouched(call, message):
    teacher = tiny_model("bert")
    model = copy.deepcopy(teacher)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=message):
        call(model, teacher)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_distilled_model_round_trips_through_prunq_save(tmp_path):
    teacher = tiny_model("llama")
    student = prunq.compress(copy.deepcopy(teacher), "heads:0.25+csr:0.8+int8+emb4+distill:5:1e-3", training=TRAINING,
                             show_progress=False)
    prunq.save(student, tmp_path / "m.safetensors")
    loaded = prunq.load(tmp_path / "m.safetensors", type(teacher)(student.config).eval())
    assert torch.equal(run(loaded, IDS), run(student, IDS))


@pytest.mark.parametrize("steps", [1, 2, 19, 20, 400])
def test_the_learning_rate_warms_up_then_falls_to_zero(steps):
    factors = [rate_factor(step, steps) for step in range(steps)]
    peak = max(1, int(WARMUP * steps)) - 1
    assert factors[peak] == 1 and all(0 < f <= 1 for f in factors)
    assert factors[:peak + 1] == sorted(factors[:peak + 1]) and factors[peak:] == sorted(factors[peak:], reverse=True)
    if peak > 0:
        assert factors[0] < 1 and factors[-1] < 2 / steps


def test_each_student_block_is_taught_by_the_teacher_block_it_came_from(monkeypatch):
    assert matched_blocks(3, 3) == [0, 1, 2] and matched_blocks(5, 6) == [0, 1, 3, 4, 5]
    teacher = tiny_model("bert", blocks=4)
    with torch.no_grad():  # block 2 adds nothing to what passes through it: layers:1 removes it
        for dense in (teacher.encoder.layer[2].attention.output.dense, teacher.encoder.layer[2].output.dense):
            dense.weight.zero_()
            dense.bias.zero_()
    taught = {}
    monkeypatch.setattr(recover, "distill", lambda *args, teacher_blocks, **kwargs: taught.update(blocks=teacher_blocks))
    prunq.compress(copy.deepcopy(teacher), "layers:1+distill:1", calibration=TRAINING, training=TRAINING,
                   show_progress=False)
    assert taught["blocks"] == [0, 1, 3]


def test_the_blocks_loss_needs_a_model_that_returns_hidden_states():
    teacher = torch.nn.Sequential(torch.nn.Embedding(100, 8), torch.nn.Linear(8, 8))  # returns a bare tensor
    with pytest.raises(ValueError, match="'blocks' needs the model's hidden_states"):
        distill(copy.deepcopy(teacher), teacher, [IDS], steps=1, losses={"blocks": 1.0}, show_progress=False)


def test_the_blocks_loss_teaches_every_block():
    teacher = tiny_model("bert", blocks=3)
    student = prunq.compress(copy.deepcopy(teacher), "heads:0.5+ffn:0.75", show_progress=False)  # no refit: far off
    def block_errors():
        with torch.no_grad():
            s, t = (m(input_ids=IDS, output_hidden_states=True).hidden_states for m in (student, teacher))
        return [(a - b).pow(2).mean().item() for a, b in zip(s[1:], t[1:])]
    before = block_errors()
    distill(student, teacher, TRAINING, steps=30, lr=1e-3, losses={"blocks": 1.0}, show_progress=False)
    assert all(after < 0.5 * b for after, b in zip(block_errors(), before))


@pytest.mark.parametrize("kept,calls", [(4, 4), (2, 6), (0, 10)])
def test_the_teachers_outputs_are_kept_across_passes_while_they_fit(monkeypatch, kept, calls):
    teacher = tiny_model("bert")
    student = prunq.compress(copy.deepcopy(teacher), "2:4+int8", calibration=TRAINING, show_progress=False)
    reference = copy.deepcopy(student)
    monkeypatch.setattr(recover, "TEACHER_CACHE_BYTES", 0)
    expected = distill(reference, teacher, TRAINING, steps=10, lr=1e-3, show_progress=False)
    with torch.no_grad():  # the training batches are all one shape: room for `kept` of their outputs
        size = recover._nbytes(recover._call(teacher, TRAINING[0], hidden_states=True))
    monkeypatch.setattr(recover, "TEACHER_CACHE_BYTES", kept * size)
    forwards = []
    teacher.register_forward_hook(lambda *args: forwards.append(1))
    losses = distill(student, teacher, TRAINING, steps=10, lr=1e-3, show_progress=False)
    # 2: the first batch, to check the losses and count the blocks; then 4 batches cycled over 10 steps
    assert len(forwards) == 2 + calls
    assert losses == expected


def test_a_tensor_an_output_holds_twice_is_counted_once():
    teacher = tiny_model("bert")
    with torch.no_grad():
        output = recover._call(teacher, TRAINING[0], hidden_states=True)
    assert output.last_hidden_state is output.hidden_states[-1]
    pooler = getattr(output.pooler_output, "nbytes", 0)
    assert recover._nbytes(output) == sum(tensor.nbytes for tensor in output.hidden_states) + pooler
