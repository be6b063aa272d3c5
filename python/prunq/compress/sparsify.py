"""Sparsity passes.

    2:4     Linear -> Sparse24Linear: each group of four consecutive weights along K keeps its two
            most important
    csr:S   Linear -> CSRLinear: the fraction S of each row's weights removed

With calibration data the weights are pruned by SparseGPT (the kept weights refitted to make up
for the removed ones on the calibration inputs; prunq.compress.prune), by magnitude without.
With int8 in the recipe the kept values become int8 (int8_values)."""

from __future__ import annotations

from torch import nn

from ..formats import csr, sparse24
from ..nn import CSRLinear, Sparse24Linear
from .convert import linear_from
from .lowrank import fraction
from .passes import CSR, LINEAR, SPARSE24, Context, Pass, register
from .progress import progress
from .prune import prune
from .swap import as_linear, replace


def pruned(module: nn.Module, gram, pattern: str, sparsity: float | None = None) -> nn.Linear:
    """A pruned copy of the layer: SparseGPT on the inputs' Gram matrix, else magnitude."""
    linear = as_linear(module)
    linear = linear_from(linear.weight.detach(), linear.bias)
    prune(linear, sparsity, pattern, "magnitude" if gram is None else "sparsegpt", input_gram=gram)
    return linear


@register
class Sparsify24(Pass):
    names = ("2:4",)
    order = 20
    makes = {LINEAR: SPARSE24}
    repeated = "has two 2:4 steps"

    def statistics(self, _):
        return frozenset({"gram"})

    def run(self, context: Context, _) -> None:
        names = context.layers[LINEAR]
        context.collect(self.statistics(None), names)
        for name in progress(names, f"{context.recipe} 2:4", context.show_progress):
            gram = context.statistic("gram", name)
            module = replace(context.model, name, lambda m: Sparse24Linear.from_linear(pruned(m, gram, "2:4")))
            context.modules[name] = module.config()
        context.layers[SPARSE24], context.layers[LINEAR] = names, []


@register
class SparsifyCSR(Pass):
    names = ("csr",)
    order = 20
    makes = {LINEAR: CSR}
    repeated = "has two csr steps"

    def parse(self, name: str, value: str) -> float:
        if not value:
            raise ValueError("recipe: 'csr' expects the sparsity after ':', e.g. csr:0.9")
        return fraction(f"{name}:{value}", value)

    def statistics(self, _):
        return frozenset({"gram"})

    def run(self, context: Context, sparsity: float) -> None:
        names = context.layers[LINEAR]
        context.collect(self.statistics(sparsity), names)
        for name in progress(names, f"{context.recipe} csr", context.show_progress):
            gram = context.statistic("gram", name)
            module = replace(context.model, name,
                             lambda m: CSRLinear.from_linear(pruned(m, gram, "unstructured", sparsity)))
            context.modules[name] = module.config()
        context.layers[CSR], context.layers[LINEAR] = names, []


def int8_values(module: Sparse24Linear | CSRLinear) -> Sparse24Linear | CSRLinear:
    """The same sparse layer with its kept values as int8, one scale per output channel."""
    if isinstance(module, Sparse24Linear):
        dense = sparse24.unpack(module.values, module.meta, module.in_features).float()
    else:
        dense = csr.to_dense(module.crow_indices, module.col_indices, module.values, module.in_features).float()
    if module.w_scale is not None:
        dense = dense * module.w_scale[:, None]
    linear = linear_from(dense, module.bias)
    # Already sparse: 2:4 pruning keeps the kept values, and CSR keeps the zero pattern.
    return type(module).from_linear(linear, int8=True)
