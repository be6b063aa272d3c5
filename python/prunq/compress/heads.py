"""Structured pruning of attention heads (recipe heads:F): the fraction F of the model's heads
removed, ranked over all blocks, at least one kept in each. The query, key and value projections
lose the heads' rows and the output projection their columns.

A head's importance is what removing it changes: the energy of its share of the output
projection's result, W_o[:, head] x_head, over the calibration data (from the Gram matrix of the
output projection's input), relative to the energy of the block's input, so that blocks compare.
Without data, the norms of its value and output weights. With data, the output projection is
then refitted by least squares to the heads kept. In a model with grouped key-value heads
(Llama's num_key_value_heads) the unit removed is a key-value head with its group of query heads.

Transformers builds every block with config.num_attention_heads heads, so the removed heads are
recorded in config.pruned_heads ({block index: [head indices as the model was built]});
restore_heads(model) reshapes a model built from that config before its weights are loaded:

    model = AutoModel.from_config(AutoConfig.from_pretrained(path))
    prunq.compress.restore_heads(model)
    model.load_state_dict(safetensors.torch.load_file(f"{path}/model.safetensors"))

(prunq.load calls it.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .passes import Context, register
from .structured import SharePass, compensated, layer_stack, set_input_weight, sliced
from .swap import as_linear, set_submodule


@dataclass(frozen=True)
class Attention:
    layer: int
    module: str                # holds the head-count attributes
    projections: tuple[str, ...]  # query, key, value: separate (BERT, Llama) or one fused (GPT-2)
    out: str
    head_dim: int

    def heads(self, model: nn.Module) -> int:
        return _rows(model.get_submodule(self.projections[0])) // (3 if self.fused else 1) // self.head_dim

    def key_value_heads(self, model: nn.Module) -> int:
        return self.heads(model) if self.fused else _rows(model.get_submodule(self.projections[1])) // self.head_dim

    @property
    def fused(self) -> bool:
        return len(self.projections) == 1


def _rows(module: nn.Module) -> int:
    return as_linear(module).out_features


def attention_blocks(model: nn.Module) -> list[Attention]:
    """The self-attention of each block of the stack, BERT, GPT-2 or Llama."""
    stack_name, stack = layer_stack(model)
    found = []
    for index, block in enumerate(stack):
        prefix = f"{stack_name}.{index}."
        for name, module in block.named_modules():
            if name.endswith("attention.self") and hasattr(module, "query"):
                found.append(Attention(index, prefix + name, tuple(f"{prefix}{name}.{p}" for p in ("query", "key", "value")),
                                       f"{prefix}{name.removesuffix('self')}output.dense", module.attention_head_size))
            elif name.endswith("attn") and hasattr(module, "c_attn") and not hasattr(module, "q_attn"):
                found.append(Attention(index, prefix + name, (f"{prefix}{name}.c_attn",), f"{prefix}{name}.c_proj",
                                       module.head_dim))
            elif name.endswith("self_attn") and hasattr(module, "q_proj"):
                found.append(Attention(index, prefix + name, tuple(f"{prefix}{name}.{p}_proj" for p in "qkv"),
                                       f"{prefix}{name}.o_proj", module.head_dim))
    if len(found) != len(stack):
        raise ValueError(f"model: no self-attention of a known family (BERT, GPT-2, Llama) in every block of "
                         f"{type(model).__name__}")
    return found


def head_importance(model: nn.Module, attention: Attention, out_gram: torch.Tensor | None,
                    in_gram: torch.Tensor | None) -> torch.Tensor:
    """The importance of each key-value group of `attention` (each head without grouping)."""
    out = as_linear(model.get_submodule(attention.out)).weight.detach().double()  # [hidden, heads * head_dim]
    groups = attention.key_value_heads(model)
    width = out.shape[1] // groups
    if out_gram is not None:
        energy = torch.stack([(out[:, s] @ out_gram[s, s] * out[:, s]).sum()
                              for s in (slice(g * width, (g + 1) * width) for g in range(groups))])
        return energy / in_gram.diagonal().sum().clamp(min=1e-30)
    value = as_linear(model.get_submodule(attention.projections[-1])).weight.detach().double()
    if attention.fused:
        value = value[2 * out.shape[1]:]
    value_width = value.shape[0] // groups
    return torch.stack([out[:, g * width:(g + 1) * width].norm() * value[g * value_width:(g + 1) * value_width].norm()
                        for g in range(groups)])


def remove_heads(model: nn.Module, attention: Attention, groups: list[int], out_gram: torch.Tensor | None = None) -> None:
    """Removes the key-value groups `groups` (indices among the attention's current ones). With
    the Gram matrix of the output projection's inputs, the projection is refitted to the heads kept."""
    heads, kv_heads, d = attention.heads(model), attention.key_value_heads(model), attention.head_dim
    per_group = heads // kv_heads
    kept = [g for g in range(kv_heads) if g not in set(groups)]
    kv_channels = torch.tensor([g * d + i for g in kept for i in range(d)], dtype=torch.long)
    q_channels = torch.tensor([(g * per_group + h) * d + i for g in kept for h in range(per_group) for i in range(d)],
                              dtype=torch.long)
    if attention.fused:
        width = heads * d
        keep = {attention.projections[0]: torch.cat([q_channels, width + q_channels, 2 * width + q_channels])}
    else:
        keep = dict(zip(attention.projections, (q_channels, kv_channels, kv_channels)))
    for name, channels in keep.items():
        set_submodule(model, name, sliced(model.get_submodule(name), channels, rows=True))
    out = sliced(model.get_submodule(attention.out), q_channels, rows=False)
    if out_gram is not None:
        set_input_weight(out, compensated(as_linear(model.get_submodule(attention.out)).weight.detach(), out_gram,
                                          q_channels))
    set_submodule(model, attention.out, out)
    module, count = model.get_submodule(attention.module), len(kept) * per_group
    for field, value in (("num_attention_heads", count), ("all_head_size", count * d),
                         ("num_heads", count), ("split_size", count * d)):
        if hasattr(module, field):
            setattr(module, field, value)


def _recorded(model: nn.Module) -> dict[int, list[int]]:
    recorded = getattr(getattr(model, "config", None), "pruned_heads", None) or {}
    return {int(layer): sorted(int(h) for h in heads) for layer, heads in recorded.items()}


def prune_heads(model: nn.Module, fraction: float, grams: dict[str, torch.Tensor] | None = None) -> dict[int, list[int]]:
    """Removes `fraction` of the model's heads (key-value groups with grouped attention), ranked
    over all blocks, in place; returns {block: heads removed, as the model was built}, recorded in
    config.pruned_heads. grams: {layer name: Gram matrix of its input} for the output and query projections."""
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction: expected a share of heads in [0, 1), got {fraction}")
    attentions = attention_blocks(model)
    grams = grams or {}
    scores = [head_importance(model, a, grams.get(a.out), grams.get(a.projections[0])) for a in attentions]
    ranked = sorted(((score.item(), a.layer, g) for a, s in zip(attentions, scores) for g, score in enumerate(s)))
    remaining = {a.layer: len(s) for a, s in zip(attentions, scores)}
    removed: dict[int, list[int]] = {}
    wanted = round(fraction * len(ranked))
    for _, layer, group in ranked:
        if sum(map(len, removed.values())) == wanted:
            break
        if remaining[layer] > 1:
            remaining[layer] -= 1
            removed.setdefault(layer, []).append(group)
    recorded = _recorded(model)
    for attention in attentions:
        groups = removed.get(attention.layer)
        if not groups:
            continue
        per_group = attention.heads(model) // attention.key_value_heads(model)
        original = [h for h in range(_built_heads(model, attention)) if h not in recorded.get(attention.layer, [])]
        recorded[attention.layer] = sorted(recorded.get(attention.layer, []) +
                                           [original[g * per_group + h] for g in groups for h in range(per_group)])
        remove_heads(model, attention, groups, grams.get(attention.out))
    if getattr(model, "config", None) is not None:
        model.config.pruned_heads = recorded
    return recorded


def _built_heads(model: nn.Module, attention: Attention) -> int:
    config = getattr(model, "config", None)
    return getattr(config, "num_attention_heads", None) or attention.heads(model)


def restore_heads(model: nn.Module) -> nn.Module:
    """Removes from `model`, built from a config that records pruned heads, the heads its
    config.pruned_heads names, so that the pruned model's weights load into it; a model already in
    that shape is left as it is. Returns the model."""
    recorded = _recorded(model)
    if not recorded:
        return model
    for attention in attention_blocks(model):
        gone = recorded.get(attention.layer, [])
        heads, built = attention.heads(model), _built_heads(model, attention)
        if not gone or heads == built - len(gone):
            continue
        per_group = heads // attention.key_value_heads(model)
        groups = sorted({h // per_group for h in gone})
        if heads != built or any(h < 0 or h >= built for h in gone) or len(groups) * per_group != len(gone):
            raise ValueError(f"model: block {attention.layer} has {heads} heads; config.pruned_heads removes {gone} "
                             f"of {built} (whole groups of {per_group})")
        remove_heads(model, attention, groups)
    return model


@register
class PruneHeads(SharePass):
    names = ("heads",)
    order = 5
    repeated = "has two heads steps"
    parts = "heads"

    # statistics(): none for every layer; run() collects the Gram matrices of the attention layers only.

    def run(self, context: Context, share: float) -> None:
        grams = {}
        if context.calibration is not None:
            names = [name for a in attention_blocks(context.model) for name in (a.out, a.projections[0])]
            context.collect({"gram"}, names)
            grams = {name: context.statistic("gram", name) for name in names}
        prune_heads(context.model, share, grams)
        context.forget()
