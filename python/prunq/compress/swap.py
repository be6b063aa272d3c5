"""Finding the modules a recipe replaces, and replacing them by name."""

from __future__ import annotations

from fnmatch import fnmatchcase

import torch
from torch import nn

# Left alone unless a user's include pattern names them: the classifier and language-model heads
# (small, and the most sensitive to error; lm_head often shares its weight with the embeddings).
DEFAULT_EXCLUDE = ("*lm_head*", "*classifier*", "*score*", "*qa_outputs*", "*pooler*")


def _is_conv1d(module: nn.Module) -> bool:
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and module.weight.dim() == 2


def as_linear(module: nn.Module) -> nn.Linear | None:
    """nn.Linear as it is; Hugging Face's Conv1D (GPT-2: weight [K, N], y = x @ W + b) as the
    equivalent nn.Linear; anything else None."""
    if isinstance(module, nn.Linear):
        return module
    if _is_conv1d(module):
        in_features, out_features = module.weight.shape
        linear = nn.Linear(in_features, out_features, device=module.weight.device, dtype=module.weight.dtype)
        linear.weight = nn.Parameter(module.weight.detach().t().contiguous())
        linear.bias = nn.Parameter(module.bias.detach().clone())
        return linear
    return None


def selected(name: str, include: tuple[str, ...] | None, exclude: tuple[str, ...]) -> bool:
    """Whether the module called `name` is compressed: include patterns (fnmatch) name the
    candidates (all when None), exclude patterns remove some; an explicit include wins."""
    if include is not None:
        return any(fnmatchcase(name, pattern) for pattern in include)
    return not any(fnmatchcase(name, pattern) for pattern in exclude)


def set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def modules_of_kind(model: nn.Module, kind) -> list[tuple[str, nn.Module]]:
    """(name, module) for each module that `kind(module)` accepts, listed before any change."""
    return [(name, module) for name, module in model.named_modules() if name and kind(module)]


def is_embedding(module: nn.Module) -> bool:
    return isinstance(module, nn.Embedding) and module.max_norm is None and module.weight.dtype.is_floating_point


def is_linear(module: nn.Module) -> bool:
    return isinstance(module, nn.Linear) or _is_conv1d(module)


def linear_features(module: nn.Module) -> tuple[int, int] | None:
    """(in_features, out_features) of an nn.Linear or Conv1D, without converting it."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    return tuple(module.weight.shape) if _is_conv1d(module) else None


@torch.no_grad()
def replace(model: nn.Module, name: str, build) -> nn.Module:
    module = build(model.get_submodule(name))
    set_submodule(model, name, module)
    return module


def swap_selected_linears(model: nn.Module, include, exclude, build) -> nn.Module:
    """Replaces each nn.Linear of `model` that the fnmatch patterns select (see selected) by
    build(linear), in place; returns the model. ValueError when none is selected."""
    include = None if include is None else tuple(include)
    names = [name for name, module in modules_of_kind(model, is_linear)
             if isinstance(module, nn.Linear) and selected(name, include, tuple(exclude))]
    if not names:
        raise ValueError(f"include: no nn.Linear of the model matches {include!r} (exclude {tuple(exclude)!r})")
    for name in names:
        set_submodule(model, name, build(model.get_submodule(name)))
    return model
