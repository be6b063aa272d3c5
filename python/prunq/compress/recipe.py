"""Recipes: what `compress` does to a model, written as steps joined by '+'.

    int8               Linear -> Int8Linear(mode="dynamic"): int8 weights and activations
    int8-weight-only   Linear -> Int8Linear(mode="weight_only")
    int8:w4            the same with the weights on 16 levels per channel, saved at 4 bits (half
                       the file; the int8 kernels, on AVX2 a faster one that 4-bit weights allow),
                       the levels chosen by GPTQ with calibration data; also int8-weight-only:w4
    lowrank:R          Linear -> LowRankLinear keeping R of the weight's parameters (0 < R <= 1)
    emb8               Embedding -> Int8Embedding: tables stored as int8 rows, one scale per row
    emb4               Embedding -> Int4Embedding: 4-bit values, a float16 scale per 32 columns
    2:4                Linear -> Sparse24Linear: two of every four weights along K kept (Wanda
                       with calibration data, magnitude without); "2:4+int8" stores them as int8
    csr:S              Linear -> CSRLinear with the fraction S of each row's weights removed
                       (Wanda with calibration data, magnitude without); "csr:0.9+int8"
    layers:N           the N blocks that change their input least on the calibration data removed
    heads:F            the share F of the model's attention heads removed, ranked over all blocks
                       (structured pruning; config.pruned_heads records them)
    ffn:F              the share F of every block's FFN neurons removed: smaller dense layers, the
                       model's config updated (structured pruning; first, whatever else follows)
    binary             FFN Linear -> BinaryLinear (XNOR-Net: weights and activations +-1 with scales);
                       "binary:connect" binarizes the weights only (BinaryConnect); with include=
                       patterns, the layers they name

    +distill[:S[:LR]]  after the other steps, S training steps (default 400; learning rate LR,
                       default 3e-4) of distillation from the float model on compress()'s
                       training= batches (prunq.compress.recover)

Each step is a pass (prunq.compress.passes) in a module of its own; the passes run in their
canonical order whatever order the steps are written in, and compose where a kernel runs the
result: "lowrank:0.5+int8" quantizes both factors, "int8+emb8" also shrinks the embedding
tables. A combination in which a pass finds nothing it can take is an error naming both steps.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import binarize, embeddings, heads, lowrank, quantize, recover, sparsify, structured  # noqa: F401 - each registers its pass
from .passes import FLOAT_KINDS, PASSES, Pass



@dataclass(frozen=True)
class Step:
    name: str  # as written: "int8", "lowrank"
    text: str  # "lowrank:0.5"
    kind: Pass
    argument: object

    @property
    def makes(self) -> dict[str, str]:
        return self.kind.makes_of(self.argument)


@dataclass(frozen=True)
class Recipe:
    text: str
    steps: tuple[Step, ...]  # in canonical order

    def __str__(self) -> str:
        return self.text

    def names(self) -> set[str]:
        return {step.name for step in self.steps}


def parse_recipe(text: str) -> Recipe:
    """Parses and checks a recipe string; every error names the step at fault."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"recipe: expected a string such as 'int8' or 'lowrank:0.5+int8', got {text!r}")
    steps: list[Step] = []
    for part in (part.strip() for part in text.split("+")):
        # A pass named with a colon ("2:4") is matched whole; otherwise ':' starts the argument.
        name, _, value = (part, "", "") if part in PASSES else part.partition(":")
        kind = PASSES.get(name)
        if kind is None:
            known = ", ".join(sorted({*PASSES} - {"lowrank", "csr"} | {"lowrank:R", "csr:S"}))
            raise ValueError(f"recipe: unknown step {part!r}; the steps are {known}")
        if any(step.kind is kind for step in steps):
            raise ValueError(f"recipe: {text!r} {kind.repeated}")
        steps.append(Step(name, part, kind, kind.parse(name, value)))
    steps.sort(key=lambda step: step.kind.order)
    _check_kinds(text, steps)
    return Recipe(text.strip(), tuple(steps))


def _check_kinds(text: str, steps: list[Step]) -> None:
    """Each pass must find layers of a kind it takes, left by the model or an earlier pass."""
    available = dict.fromkeys(FLOAT_KINDS, "the model")
    for index, step in enumerate(steps):
        takes = [kind for kind in step.makes if kind in available]
        if step.makes and not takes:
            wanted = next(iter(step.makes))
            made = [earlier.text for earlier in steps[:index] if wanted in earlier.makes]
            raise ValueError(f"recipe: {text!r}: {step.text!r} takes {wanted} layers, which "
                             f"{made[-1] if made else 'no earlier step'} has already turned into something else")
        for kind in takes:
            del available[kind]
        for kind in takes:
            available[step.makes[kind]] = step.text
