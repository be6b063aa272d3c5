"""distill(student, teacher, batches, steps): recovery of a compressed model by knowledge
distillation from its float original, on the CPU.

The student's kernel modules are swapped for their training layers (prunq.compress.trainable:
int8 rounding, sparse masks and binary signs with straight-through gradients), its float
parameters are trained with AdamW to match the teacher on the batches (cycled), and the training
layers are converted back to the kernel modules, so the student is the same kind of compressed
model as before, with better weights. Dropout stays off: the student learns the teacher's
function, not the task's noise. Embedding tables stay fixed (most of their rows would see no
token of the training text).

Loss terms, named in `losses` with their weights (prunq.compress.losses):
    "soft"       soft_target_loss of the logits, temperature 2 (models with logits)
    "embedding"  embedding_loss (1 - cosine) of the mean-pooled last hidden states (over the
                 tokens of attention_mask): a sentence-embedding model's output
    "hidden"     feature_loss (MSE) of the last hidden states
    "blocks"     block_loss of every block's output against the teacher block it came from
                 (teacher_blocks), over the tokens of attention_mask
Default: {"soft": 1} for models with logits, else {"embedding": 1, "blocks": 16}: teaching every
block its teacher's output recovers more in the same steps than the last hidden state alone
(MiniLM, 25% of heads and 30% of neurons removed, 400 steps: cosine 0.961 with
{"embedding": 1, "hidden": 1}, 0.965 / 0.967 / 0.968 / 0.968 with blocks weighted 1 / 4 / 16 /
64). `losses` may also be a function (student_output, teacher_output, batch) -> loss; the
outputs hold hidden_states when the batches ask for them (output_hidden_states=True).

When the steps pass over the batches more than once, the teacher's output on each batch is
computed once and kept (up to TEACHER_CACHE_BYTES; the rest is computed again at each pass).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from .calibrate import run_batch
from .convert import convert
from .passes import RECORD, Context, Pass, register
from .losses import block_loss, embedding_loss, feature_loss, soft_target_loss
from .progress import progress
from .trainable import trainable

TERMS = ("soft", "embedding", "hidden", "blocks")
DEFAULT_STEPS, DEFAULT_LR = 400, 3e-4
WARMUP = 0.05  # the share of the steps over which the learning rate rises to lr
# The teacher's outputs are kept for the next pass over the batches while they fit in this many
# bytes: its forward pass is over a third of a step (MiniLM, combined recipe).
TEACHER_CACHE_BYTES = 4 << 30


def _call(model: nn.Module, batch, hidden_states: bool = False):
    """The model's output on the batch, with the hidden states of every block if asked."""
    return run_batch(model, batch, "batches", **({"output_hidden_states": True} if hidden_states else {}))


def _tensors(output):
    """The tensors a model output holds (in its fields, tuples of them, or itself)."""
    if isinstance(output, torch.Tensor):
        yield output
    elif isinstance(output, (tuple, list)):
        for item in output:
            yield from _tensors(item)
    elif isinstance(output, dict):
        for item in output.values():
            yield from _tensors(item)


def _nbytes(output) -> int:
    """The bytes of memory a model output keeps alive: each tensor's storage, counted once
    (last_hidden_state is also the last of hidden_states; a view keeps its whole storage)."""
    storages = {tensor.untyped_storage().data_ptr(): tensor.untyped_storage().nbytes() for tensor in _tensors(output)}
    return sum(storages.values())


class _TeacherOutputs:
    """The teacher's output on batch i, computed once and kept while the kept ones fit in
    TEACHER_CACHE_BYTES (only when the steps pass over the batches more than once)."""

    def __init__(self, teacher: nn.Module, batches: list, hidden_states: bool, keep: bool):
        self.teacher, self.batches, self.hidden_states = teacher, batches, hidden_states
        self.kept: dict[int, object] = {}
        self.room = TEACHER_CACHE_BYTES if keep else 0

    @torch.no_grad()
    def __getitem__(self, index: int):
        if index in self.kept:
            return self.kept[index]
        output = _call(self.teacher, self.batches[index], self.hidden_states)
        size = _nbytes(output)
        if size <= self.room:
            self.kept[index], self.room = output, self.room - size
        return output


def _mask(batch) -> torch.Tensor | None:
    return batch.get("attention_mask") if isinstance(batch, dict) else None


def _pooled(hidden: torch.Tensor, batch) -> torch.Tensor:
    mask = _mask(batch)
    if mask is None:
        return hidden.mean(1)
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1)


def matched_blocks(student_blocks: int, teacher_blocks: int) -> list[int]:
    """The teacher block each student block is taught by default: the same one when the counts
    agree, else evenly spaced, the last with the last."""
    return [round((i + 1) * teacher_blocks / student_blocks) - 1 for i in range(student_blocks)]


def _term(name: str, student, teacher, batch, teacher_blocks: list[int]) -> torch.Tensor:
    if name == "soft":
        return soft_target_loss(student.logits, teacher.logits)
    if name == "embedding":
        return embedding_loss(_pooled(student.last_hidden_state, batch), _pooled(teacher.last_hidden_state, batch))
    if name == "blocks":
        return block_loss(student.hidden_states[1:], [teacher.hidden_states[1 + i] for i in teacher_blocks],
                          _mask(batch))
    return feature_loss(student.last_hidden_state, teacher.last_hidden_state)


def loss_terms(losses: dict[str, float] | Callable | None, teacher_output) -> dict[str, float] | Callable:
    """`losses` checked against the teacher's output, the default filled in (see the module's
    docstring)."""
    if callable(losses):
        return losses
    if losses is None:
        losses = {"soft": 1.0} if hasattr(teacher_output, "logits") else {"embedding": 1.0, "blocks": 16.0}
    if not isinstance(losses, dict) or not losses or any(name not in TERMS for name in losses):
        raise ValueError(f"losses: expected weights of {', '.join(TERMS)} (e.g. {{'embedding': 1.0}}) or a "
                         f"function, got {losses!r}")
    for name in losses:
        field = {"soft": "logits", "blocks": "hidden_states"}.get(name, "last_hidden_state")
        # hidden_states stays None until asked for: that the output has the field is enough
        missing = not hasattr(teacher_output, field) if name == "blocks" else getattr(teacher_output, field, None) is None
        if missing:
            raise ValueError(f"losses: {name!r} needs the model's {field}, which its output lacks")
    return losses


def _loss(terms: dict[str, float] | Callable, student, teacher, batch, teacher_blocks: list[int]) -> torch.Tensor:
    if callable(terms):
        return terms(student, teacher, batch)
    return sum(weight * _term(name, student, teacher, batch, teacher_blocks) for name, weight in terms.items())


def rate_factor(step: int, steps: int) -> float:
    """The learning rate of step 0..steps-1 relative to lr: rising linearly over the first WARMUP
    of the steps to 1, then falling linearly towards 0."""
    warmup = max(1, int(WARMUP * steps))
    return min((step + 1) / warmup, (steps - step) / (steps - warmup + 1))


def distill(student: nn.Module, teacher: nn.Module, batches: Iterable, steps: int, lr: float = DEFAULT_LR,
            losses: dict[str, float] | Callable | None = None, show_progress: bool = True,
            teacher_blocks: list[int] | None = None) -> list[float]:
    """Trains `student` in place to match `teacher` on `batches` (dicts of model arguments or
    input tensors, cycled) for `steps` AdamW steps, the learning rate rising to `lr` over the
    first 5% of them and falling linearly to 0 after (rate_factor); returns the loss of each step.
    teacher_blocks: for the "blocks" loss, the index of the teacher block each student block came
    from (compress() passes the blocks layers:N kept; default: matched_blocks).
    The student keeps its kernel modules (and its compression record)."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps: expected a positive number of training steps, got {steps!r}")
    if not lr > 0:
        raise ValueError(f"lr: expected a positive learning rate, got {lr!r}")
    batches = list(batches)
    if not batches:
        raise ValueError("batches: no training batches")
    teacher.eval()
    with torch.no_grad():
        terms = loss_terms(losses, _call(teacher, batches[0]))
        hidden_states = isinstance(terms, dict) and "blocks" in terms
        if hidden_states:
            teacher_blocks = _checked_blocks(teacher_blocks, _call(student, batches[0], True),
                                             _call(teacher, batches[0], True))
    was_training = student.training
    trainable(student).eval()
    frozen = {id(p): p for m in student.modules() if isinstance(m, nn.Embedding) for p in m.parameters()
              if p.requires_grad}
    parameters = [p for p in student.parameters() if p.requires_grad and id(p) not in frozen]
    if not parameters:
        convert_back(student, was_training)
        raise ValueError("student: has no float parameters to train")
    # torch's fused AdamW: the same update as its loop, in a third of the time on a CPU
    fused = all(p.device.type in ("cpu", "cuda") for p in parameters)
    optimizer = torch.optim.AdamW(parameters, lr=lr, weight_decay=0.0, fused=fused)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: rate_factor(step, steps))
    targets = _TeacherOutputs(teacher, batches, hidden_states, keep=steps > len(batches))
    history = []
    # No gradient for the fixed tables: a word embedding's is a dense table-sized tensor each step
    # (8% of a step of MiniLM with 25% of heads and 30% of neurons removed).
    for parameter in frozen.values():
        parameter.requires_grad_(False)
    try:
        with torch.enable_grad():
            for step in progress(range(steps), "distill", show_progress, unit="step"):
                index = step % len(batches)
                batch = batches[index]
                loss = _loss(terms, _call(student, batch, hidden_states), targets[index], batch, teacher_blocks)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                history.append(loss.item())
    finally:
        for parameter in frozen.values():
            parameter.requires_grad_(True)
        convert_back(student, was_training)
    return history


def _checked_blocks(teacher_blocks: list[int] | None, student_output, teacher_output) -> list[int]:
    student_count, teacher_count = len(student_output.hidden_states) - 1, len(teacher_output.hidden_states) - 1
    if teacher_blocks is None:
        return matched_blocks(student_count, teacher_count)
    teacher_blocks = list(teacher_blocks)
    if len(teacher_blocks) != student_count or not all(0 <= i < teacher_count for i in teacher_blocks):
        raise ValueError(f"teacher_blocks: expected one index in [0, {teacher_count}) for each of the student's "
                         f"{student_count} blocks, got {teacher_blocks}")
    return teacher_blocks


def convert_back(student: nn.Module, was_training: bool) -> None:
    """The training layers back to kernel modules, the student in the mode it came in, its
    compression record describing them (a CSR layer's count of non-zeros may have changed)."""
    if any(hasattr(module, "converted") for module in student.modules()):
        convert(student)
    record = getattr(student, RECORD, None)
    if record is not None:
        refresh_configs(student, record["modules"])
    for parameter in student.parameters():
        parameter.grad = None
    student.train(was_training)


def refresh_configs(model: nn.Module, configs: dict[str, dict]) -> None:
    for name in configs:
        configs[name] = model.get_submodule(name).config()


@register
class Distill(Pass):
    """Recipe suffix "+distill[:steps[:lr]]": after every other step, the compressed model is
    trained against the float model it came from on compress()'s training= batches."""

    names = ("distill",)
    order = 100
    makes = {}  # changes weights, not layers
    repeated = "has two distill steps"

    def parse(self, name: str, value: str) -> tuple[int, float]:
        steps, _, lr = value.partition(":")
        try:
            steps, lr = int(steps) if steps else DEFAULT_STEPS, float(lr) if lr else DEFAULT_LR
        except ValueError:
            raise ValueError(f"recipe: 'distill' takes a number of training steps and optionally a learning rate, "
                             f"e.g. distill:400 or distill:200:2e-5, got {name}:{value}") from None
        if steps < 1:
            raise ValueError(f"recipe: 'distill' expects at least one training step, got {steps}")
        if not lr > 0:
            raise ValueError(f"recipe: 'distill' expects a positive learning rate, got {lr}")
        return steps, lr

    def run(self, context: Context, schedule: tuple[int, float]) -> None:
        steps, lr = schedule
        distill(context.model, context.teacher, context.training, steps, lr, show_progress=context.show_progress,
                teacher_blocks=context.teacher_blocks)
        refresh_configs(context.model, context.modules)
