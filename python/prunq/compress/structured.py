"""Structured pruning: whole FFN neurons or whole blocks removed, so the dense layers shrink and
the model is faster on any hardware, and stays an ordinary Hugging Face model (its config
updated).

    layers:N  the N blocks that change their input least on the calibration data removed (1 -
            the mean cosine between a block's input and output hidden states); needs
            calibration data

    ffn:F   the fraction F (0 <= F < 1) of every block's feed-forward neurons removed, the same
            number in each block (the config holds one intermediate size), the count kept
            rounded to a multiple of 16 in blocks of 1024 neurons or more (kept_neurons). A
            neuron's importance is the L2 norm of its activation over the calibration data (the
            input of the down projection) times the norm of its column of the down projection;
            without data, the norms of its rows of the up projections instead of its activation.
            With data, the down projection is then refitted by least squares to the neurons
            kept, so that it reproduces on the calibration inputs what the whole layer gave.

Blocks are found by name: BERT (intermediate.dense / output.dense, config.intermediate_size),
GPT-2 (mlp.c_fc / mlp.c_proj, Conv1D, config.n_inner) and Llama (mlp.gate_proj, mlp.up_proj /
mlp.down_proj, config.intermediate_size).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .passes import LINEAR, Context, Pass, register
from .calibrate import run_batch
from .progress import progress
from .swap import as_linear, set_submodule


@dataclass(frozen=True)
class FFNBlock:
    ups: tuple[str, ...]  # the projections into the neurons
    down: str             # the projection out of them
    config_field: str


def ffn_blocks(model: nn.Module) -> list[FFNBlock]:
    blocks = []
    for name, _ in model.named_modules():
        if name.endswith(".intermediate.dense"):
            blocks.append(FFNBlock((name,), name.removesuffix("intermediate.dense") + "output.dense", "intermediate_size"))
        elif name.endswith(".mlp.c_fc"):
            blocks.append(FFNBlock((name,), name.removesuffix("c_fc") + "c_proj", "n_inner"))
        elif name.endswith(".mlp.down_proj"):
            prefix = name.removesuffix("down_proj")
            blocks.append(FFNBlock((prefix + "gate_proj", prefix + "up_proj"), name, "intermediate_size"))
    return blocks


def neuron_importance(model: nn.Module, block: FFNBlock, activation_norms: torch.Tensor | None) -> torch.Tensor:
    down = as_linear(model.get_submodule(block.down)).weight.detach().float()  # [hidden, neurons]
    score = down.norm(dim=0)
    if activation_norms is not None:
        return score * activation_norms.float()
    for name in block.ups:
        score = score * as_linear(model.get_submodule(name)).weight.detach().float().norm(dim=1)
    return score


def sliced(module: nn.Module, keep: torch.Tensor, rows: bool) -> nn.Module:
    """`module` (nn.Linear or Conv1D) with only the output channels (rows=True) or input channels
    `keep`, as a new module of the same type."""
    weight = module.weight.detach()
    conv1d = not isinstance(module, nn.Linear)  # Conv1D: weight [in, out]
    axis = (1 if conv1d else 0) if rows else (0 if conv1d else 1)
    weight = weight.index_select(axis, keep).clone()
    bias = None if module.bias is None else (module.bias.detach()[keep].clone() if rows else module.bias.detach().clone())
    if conv1d:
        new = type(module)(weight.shape[1], weight.shape[0])
    else:
        new = nn.Linear(weight.shape[1], weight.shape[0], bias is not None)
    new = new.to(device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def compensated(weight: torch.Tensor, gram: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The weight [out, len(keep)] on the kept input channels that best reproduces weight [out, in]
    on all of them, in least squares over the inputs whose Gram matrix is `gram` [in, in]:
    weight @ gram[:, keep] @ inverse(gram[keep, keep]), slightly damped (1% of the mean diagonal)."""
    kept = gram[keep][:, keep].double()
    kept = kept + 0.01 * kept.diagonal().mean().clamp_min(1e-12) * torch.eye(len(keep), dtype=kept.dtype,
                                                                           device=kept.device)
    cross = weight.double() @ gram[:, keep].double()
    return torch.linalg.solve(kept, cross, left=False).to(weight.dtype)


def set_input_weight(module: nn.Module, weight: torch.Tensor) -> None:
    """Sets the weight [out, in] of an nn.Linear or Conv1D (stored [in, out])."""
    with torch.no_grad():
        module.weight.copy_(weight if isinstance(module, nn.Linear) else weight.T)


# Kept neuron counts are multiples of this where the block's width is one of at least ALIGNED_FROM
# (there the rounding moves the share removed by under 1%): torch's fp32 GEMM ran 1.04x to 1.38x
# slower at widths that are not (MiniLM at batch 32 x 128: 4096 x 384 x 1075 against 1072).
NEURON_MULTIPLE, ALIGNED_FROM = 16, 1024


def kept_neurons(width: int, fraction: float) -> int:
    """How many of a block's `width` neurons ffn:fraction keeps: width - round(fraction * width),
    rounded to the nearest multiple of NEURON_MULTIPLE where width is one of at least ALIGNED_FROM
    (never all of them when some are to go)."""
    kept = width - round(fraction * width)
    if width % NEURON_MULTIPLE or width < ALIGNED_FROM or kept == width:
        return kept
    aligned = round(kept / NEURON_MULTIPLE) * NEURON_MULTIPLE
    return aligned if NEURON_MULTIPLE <= aligned < width else kept


def prune_ffn(model: nn.Module, fraction: float, grams: dict[str, torch.Tensor] | None = None,
              show_progress: bool = False) -> None:
    """Removes `fraction` of every FFN block's neurons in place. grams: {down projection name:
    the Gram matrix of its inputs over calibration data}; with it, neurons are ranked by their
    activations and the down projection is refitted to the neurons kept (compensated)."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction: expected a share of neurons in [0, 1), got {fraction}")
    blocks = ffn_blocks(model)
    if not blocks:
        raise ValueError(f"model: no feed-forward block of a known family (BERT, GPT-2, Llama) in "
                         f"{type(model).__name__}")
    kept = None
    for block in progress(blocks, "ffn", show_progress):
        gram = (grams or {}).get(block.down)
        score = neuron_importance(model, block, None if gram is None else gram.diagonal().sqrt())
        kept = kept_neurons(score.numel(), fraction)
        keep = torch.sort(torch.topk(score, kept).indices).values
        for name in block.ups:
            set_submodule(model, name, sliced(model.get_submodule(name), keep, rows=True))
        down = sliced(model.get_submodule(block.down), keep, rows=False)
        if gram is not None:
            full = as_linear(model.get_submodule(block.down)).weight.detach()
            set_input_weight(down, compensated(full, gram, keep))
        set_submodule(model, block.down, down)
    config = getattr(model, "config", None)
    if config is not None:
        setattr(config, blocks[0].config_field, kept)


class SharePass(Pass):
    """A structured-pruning step whose argument is the share of some part of the model removed
    (heads:F, ffn:F)."""

    makes = {LINEAR: LINEAR}
    renames = True  # later passes see the pruned layers' inputs, which have changed
    parts = ""      # what is removed, for the errors

    def parse(self, name: str, value: str) -> float:
        try:
            share = float(value)
        except ValueError:
            raise ValueError(f"recipe: {name!r} expects the share of {self.parts} to remove after ':', e.g. "
                             f"{name}:0.25, got {name}:{value}") from None
        if not 0 <= share < 1:
            raise ValueError(f"recipe: {name!r} expects a share in [0, 1), got {share}")
        return share


@register
class PruneFFN(SharePass):
    names = ("ffn",)
    order = 6
    repeated = "has two ffn steps"
    parts = "neurons"

    # statistics(): none for every layer; run() collects the Gram matrices of the down projections only.

    def run(self, context: Context, share: float) -> None:
        downs = [block.down for block in ffn_blocks(context.model)]
        grams = {}
        if context.calibration is not None:
            context.collect({"gram"}, downs)
            grams = {name: context.statistic("gram", name) for name in downs}
        prune_ffn(context.model, share, grams, context.show_progress)
        context.forget()


# The stack of Transformer blocks: BERT's encoder.layer, GPT-2's h, Llama's layers.
STACK_NAMES = ("encoder.layer", "h", "layers")


def layer_stack(model: nn.Module) -> tuple[str, nn.ModuleList]:
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and any(name == s or name.endswith("." + s) for s in STACK_NAMES):
            return name, module
    raise ValueError(f"model: no stack of Transformer blocks of a known family (BERT, GPT-2, Llama) in "
                     f"{type(model).__name__}")


def layer_changes(model: nn.Module, stack: nn.ModuleList, calibration, run_batch) -> torch.Tensor:
    """1 - the mean cosine between each block's input and output hidden states over the
    calibration batches: how much each block changes what passes through it."""
    totals = torch.zeros(len(stack), dtype=torch.float64)
    counts = torch.zeros(len(stack), dtype=torch.float64)

    def hook(index):
        def record(module, args, kwargs, output):
            before = args[0] if args else kwargs["hidden_states"]
            after = output[0] if isinstance(output, tuple) else output
            cos = nn.functional.cosine_similarity(before.double(), after.double(), dim=-1)
            totals[index] += (1 - cos).sum()
            counts[index] += cos.numel()
        return record

    handles = [block.register_forward_hook(hook(i), with_kwargs=True) for i, block in enumerate(stack)]
    try:
        with torch.no_grad():
            for batch in calibration:
                run_batch(model, batch)
    finally:
        for handle in handles:
            handle.remove()
    return totals / counts.clamp(min=1)


def prune_layers(model: nn.Module, count: int, changes: torch.Tensor) -> None:
    """Removes the `count` blocks that change their input least, in place; updates the config and
    each kept block's layer index."""
    stack_name, stack = layer_stack(model)
    if not isinstance(count, int) or not 0 < count < len(stack):
        raise ValueError(f"layers: expected to remove between 1 and {len(stack) - 1} of the model's {len(stack)} "
                         f"blocks, got {count!r}")
    drop = set(torch.argsort(changes)[:count].tolist())
    kept = [i for i in range(len(stack)) if i not in drop]
    set_submodule(model, stack_name, nn.ModuleList([stack[i] for i in kept]))
    for new, old in enumerate(kept):
        for module in stack[old].modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new
    config = getattr(model, "config", None)
    if config is not None:
        for field in ("num_hidden_layers", "n_layer"):
            if hasattr(config, field):
                setattr(config, field, len(kept))


@register
class PruneLayers(Pass):
    names = ("layers",)
    order = 4
    makes = {LINEAR: LINEAR}
    repeated = "has two layers steps"

    def parse(self, name: str, value: str) -> int:
        try:
            count = int(value)
        except ValueError:
            raise ValueError(f"recipe: 'layers' expects the number of blocks to remove after ':', e.g. layers:2, "
                             f"got {name}:{value}") from None
        if count < 1:
            raise ValueError(f"recipe: 'layers' expects at least one block to remove, got {count}")
        return count

    def prepare(self, model: nn.Module, count: int, calibration) -> None:
        _, stack = layer_stack(model)
        if count >= len(stack):
            raise ValueError(f"recipe: 'layers:{count}' removes at least as many blocks as the model has ({len(stack)})")
        if calibration is None:
            raise ValueError("calibration: 'layers' chooses the blocks to remove from calibration data; pass "
                             "calibration= batches")
        prune_layers(model, count, layer_changes(model, stack, calibration, run_batch))

    def run(self, context: Context, count: int) -> None:
        """Done in prepare, before the layer names were taken."""
