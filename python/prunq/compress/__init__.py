"""compress(model, recipe): swap a float model's layers for compressed ones, in place.

    model = prunq.compress(model, "int8")            # W8A8 Linear layers, fused add + norm
    model = prunq.compress(model, "lowrank:0.5+int8", calibration=batches)

Every recipe first fuses the residual add into the norm after it where the block is known
(BERT, GPT-2, Llama families); the recipe's steps then replace Linear (and, with emb8 or emb4,
Embedding) modules, and with int8 the GELU of BERT-family intermediate layers moves into the
GEMM's epilogue. What was done is recorded on the model, for prunq.save.
"""

from __future__ import annotations

import copy
import sys
import types
from collections.abc import Iterable

from torch import nn

from .binarize import binarize
from .convert import convert
from .fuse_norms import fuse_norms
from .heads import restore_heads
from .passes import EMBEDDING, LINEAR, RECORD, Context
from .prune import prune
from .qat import prepare_qat
from .recipe import Recipe, parse_recipe
from .recover import distill
from .structured import layer_stack
from .swap import DEFAULT_EXCLUDE, is_embedding, is_linear, modules_of_kind, selected


def compress(model: nn.Module, recipe: str, calibration: Iterable | None = None, *,
             include: Iterable[str] | None = None, exclude: Iterable[str] = DEFAULT_EXCLUDE,
             training: Iterable | None = None, show_progress: bool = True) -> nn.Module:
    """Compresses `model` in place and returns it.

    recipe: steps joined by '+' (see prunq.compress.recipe): "int8", "int8-weight-only",
        "lowrank:0.5", "2:4", "csr:0.9", "binary" (FFN layers; "binary:connect" binarizes only the
        weights), "emb8", "emb4", the structured "heads:0.25", "ffn:0.3" and "layers:1", and
        combinations such as "lowrank:0.5+int8", "2:4+int8", "int8+emb8" or
        "heads:0.25+ffn:0.3+int8+distill" (distillation last, whatever the order written).
    calibration: optional batches (each a dict of model keyword arguments, or a tensor passed
        as the first argument). lowrank uses them to factorise for the inputs the layers really
        see; int8 (dynamic) uses them for SmoothQuant, moving the activations' outlier channels
        into the weights; the structured steps rank heads and neurons by them and refit what
        remains (layers:N needs them). Without them int8 needs nothing: activation scales are per
        token.
    include / exclude: fnmatch patterns over module names ("encoder.layer.*.attention.*");
        by default every Linear except classifier and language-model heads.
    training: batches (as calibration) for the "+distill" step, which trains the compressed model
        against a copy of the float one; keep them apart from the data you evaluate on.

    The shared preamble fuses the norms, selects the layers, and collects the calibration
    statistics the passes ask for in one pass over the data (for every pass up to the first that
    replaces layers under new names); then the recipe's passes run in their canonical order.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
    if getattr(model, RECORD, None) is not None:
        raise ValueError(f"model: already compressed with {getattr(model, RECORD)['recipe']!r}; "
                         "start again from the float model")
    plan = parse_recipe(recipe)
    teacher = None
    if "distill" in plan.names():
        training = None if training is None else list(training)
        if not training:
            raise ValueError(f"training: {plan.text!r} distills the compressed model; pass training= batches")
        teacher = copy.deepcopy(model).eval()
    include = None if include is None else tuple(include)
    exclude = tuple(exclude)
    blocks_before = _blocks(model)
    for step in plan.steps:
        step.kind.prepare(model, step.argument, calibration)
    teacher_blocks = None if blocks_before is None else [blocks_before.index(block) for block in _blocks(model)]
    fused = fuse_norms(model)
    context = Context(model, plan.text, calibration, layers={
        LINEAR: [name for name, _ in modules_of_kind(model, is_linear) if selected(name, include, exclude)],
        EMBEDDING: [name for name, _ in modules_of_kind(model, is_embedding)
                    if include is None or selected(name, include, ())],
    }, show_progress=show_progress, include=include, teacher=teacher, training=training,
                      teacher_blocks=teacher_blocks)
    context.collect(_statistics_before_renaming(plan), context.layers[LINEAR])
    for step in plan.steps:
        step.kind.run(context, step.argument)
    setattr(model, RECORD, {"recipe": plan.text, "fused": fused, "gelu_fused": context.gelu_fused,
                            "modules": context.modules})
    return model


def _blocks(model: nn.Module) -> list[nn.Module] | None:
    """The model's Transformer blocks (layers:N keeps some of these same modules), or None for a
    model of no known family."""
    try:
        return list(layer_stack(model)[1])
    except ValueError:
        return None


def _statistics_before_renaming(plan: Recipe) -> set[str]:
    """The statistics of the model's own Linear inputs that the passes will ask for, up to the
    first pass that replaces layers by others."""
    kinds: set[str] = set()
    for step in plan.steps:
        if LINEAR in step.makes:
            kinds |= step.kind.statistics(step.argument)
        if step.kind.renames or step.makes.get(LINEAR, LINEAR) != LINEAR:
            break
    return kinds


class _CompressModule(types.ModuleType):
    """prunq.compress is this package and its main function at once: `prunq.compress(model,
    recipe)` compresses, and `prunq.compress.prune` and the other tools are its attributes."""

    def __call__(self, *args, **kwargs) -> nn.Module:
        return compress(*args, **kwargs)


sys.modules[__name__].__class__ = _CompressModule

__all__ = ["DEFAULT_EXCLUDE", "Recipe", "binarize", "compress", "convert", "distill", "parse_recipe", "prepare_qat", "prune", "restore_heads"]
