"""compress(model, recipe): swap a float model's layers for compressed ones, in place.

    model = prunq.compress(model, "int8")            # W8A8 Linear layers, fused add + norm
    model = prunq.compress(model, "lowrank:0.5+int8", calibration=batches)

Every recipe first fuses the residual add into the norm after it where the block is known
(BERT, GPT-2, Llama families); the recipe's steps then replace Linear (and, with emb8,
Embedding) modules, and with int8 the GELU of BERT-family intermediate layers moves into the
GEMM's epilogue. What was done is recorded on the model, for prunq.save.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ..nn import Int8Embedding, Int8Linear, LowRankLinear
from ..nn.lowrank_linear import rank_for_ratio
from .calibrate import input_absmax, input_grams
from .fuse_gelu import fuse_gelu
from .fuse_norms import fuse_norms
from .progress import progress
from .recipe import Recipe, parse_recipe
from .swap import DEFAULT_EXCLUDE, as_linear, is_embedding, is_linear, modules_of_kind, replace, selected

RECORD = "prunq_compression"


def compress(model: nn.Module, recipe: str, calibration: Iterable | None = None, *,
             include: Iterable[str] | None = None, exclude: Iterable[str] = DEFAULT_EXCLUDE,
             show_progress: bool = True) -> nn.Module:
    """Compresses `model` in place and returns it.

    recipe: steps joined by '+' (see prunq.compress.recipe): "int8", "int8-weight-only",
        "lowrank:0.5", "emb8", and combinations such as "lowrank:0.5+int8" or "int8+emb8".
    calibration: optional batches (each a dict of model keyword arguments, or a tensor passed
        as the first argument). lowrank uses them to factorise for the inputs the layers really
        see; int8 (dynamic) uses them for SmoothQuant, moving the activations' outlier channels
        into the weights. Without them int8 needs nothing: activation scales are per token.
    include / exclude: fnmatch patterns over module names ("encoder.layer.*.attention.*");
        by default every Linear except classifier and language-model heads.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if getattr(model, RECORD, None) is not None:
        raise ValueError(f"model: already compressed with {getattr(model, RECORD)['recipe']!r}; "
                         "start again from the float model")
    plan = parse_recipe(recipe)
    include = None if include is None else tuple(include)
    exclude = tuple(exclude)
    modules: dict[str, dict] = {}
    gelu_fused: list[str] = []
    fused = fuse_norms(model)

    linears = [name for name, _ in modules_of_kind(model, is_linear) if selected(name, include, exclude)]
    if plan.lowrank is not None:
        grams = input_grams(model, linears, calibration, show_progress) if calibration is not None else {}
        for name in progress(linears, f"{plan} low-rank", show_progress):
            module = replace(model, name, lambda m: _low_rank(m, plan.lowrank, grams.get(name)))
            modules[name] = module.config()
        linears = [f"{name}.{factor}" for name in linears for factor in ("down", "up")]
    if plan.quantize is not None:
        absmax = {}
        if calibration is not None and plan.quantize == "dynamic":
            absmax = input_absmax(model, linears, calibration, show_progress)
        for name in progress(linears, f"{plan} quantize", show_progress):
            module = replace(model, name, lambda m: Int8Linear.from_linear(as_linear(m), plan.quantize,
                                                                           absmax.get(name)))
            modules[name] = module.config()
        gelu_fused = fuse_gelu(model)
        for name in gelu_fused:
            modules[f"{name}.dense"] = model.get_submodule(f"{name}.dense").config()
    if plan.embeddings:
        for name, _ in modules_of_kind(model, is_embedding):
            if include is None or selected(name, include, ()):
                modules[name] = replace(model, name, Int8Embedding.from_embedding).config()

    setattr(model, RECORD, {"recipe": plan.text, "fused": fused, "gelu_fused": gelu_fused, "modules": modules})
    return model


def _low_rank(module: nn.Module, ratio: float, gram: torch.Tensor | None) -> LowRankLinear:
    linear = as_linear(module)
    return LowRankLinear.from_linear(linear, rank_for_ratio(ratio, linear.out_features, linear.in_features), gram)


__all__ = ["DEFAULT_EXCLUDE", "Recipe", "compress", "parse_recipe"]
