"""Recipes: what `compress` does to a model, written as steps joined by '+'.

    int8               Linear -> Int8Linear(mode="dynamic"): int8 weights and activations
    int8-weight-only   Linear -> Int8Linear(mode="weight_only")
    lowrank:R          Linear -> LowRankLinear keeping R of the weight's parameters (0 < R <= 1)
    emb8               Embedding -> Int8Embedding: tables stored as int8 rows, one scale per row
    2:4, csr:S, binary pruning and binarization recipes whose kernels prunq does not have yet

Steps compose where a kernel runs the result: "lowrank:0.5+int8" quantizes both factors,
"int8+emb8" also shrinks the embedding tables. A combination no kernel runs is an error.
"""

from __future__ import annotations

from dataclasses import dataclass

QUANTIZE = {"int8": "dynamic", "int8-weight-only": "weight_only"}
NOT_YET = {
    "2:4": "2:4 sparsity needs Sparse24Linear and the sparse24 kernels",
    "csr": "CSR sparsity needs CSRLinear and the csr kernels",
    "binary": "binary weights need BinaryLinear and the binary kernels",
}


@dataclass(frozen=True)
class Recipe:
    text: str
    quantize: str | None = None  # Int8Linear mode
    lowrank: float | None = None  # fraction of parameters kept
    embeddings: bool = False

    def __str__(self) -> str:
        return self.text


def _fraction(step: str, value: str) -> float:
    try:
        fraction = float(value)
    except ValueError:
        raise ValueError(f"recipe: {step!r} expects a number after ':', got {value!r}") from None
    if not 0 < fraction <= 1:
        raise ValueError(f"recipe: {step!r} expects a fraction in (0, 1], got {fraction}")
    return fraction


def parse_recipe(text: str) -> Recipe:
    """Parses and checks a recipe string; every error names the step at fault."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"recipe: expected a string such as 'int8' or 'lowrank:0.5+int8', got {text!r}")
    quantize = lowrank = None
    embeddings = False
    for step in (part.strip() for part in text.split("+")):
        name, _, value = step.partition(":")
        missing = NOT_YET.get(step, NOT_YET.get(name))
        if missing:
            raise ValueError(f"recipe: {step!r} is not available yet: {missing}, which prunq does not have")
        if name in QUANTIZE and not value:
            if quantize is not None:
                raise ValueError(f"recipe: {text!r} quantizes twice; choose one of {', '.join(QUANTIZE)}")
            quantize = QUANTIZE[name]
        elif name == "lowrank":
            if lowrank is not None:
                raise ValueError(f"recipe: {text!r} has two lowrank steps")
            lowrank = _fraction(step, value)
        elif step == "emb8":
            embeddings = True
        else:
            known = ", ".join([*QUANTIZE, "lowrank:R", "emb8"])
            raise ValueError(f"recipe: unknown step {step!r}; the steps are {known}")
    return Recipe(text.strip(), quantize, lowrank, embeddings)
