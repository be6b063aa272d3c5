"""csr:S — Linear -> CSRLinear after removing the fraction S of each row's weights (Wanda with
calibration data, magnitude otherwise). With int8 in the recipe the non-zeros become int8."""

from __future__ import annotations

from torch import nn

from ..formats import csr
from ..nn import CSRLinear
from .lowrank import fraction
from .passes import CSR, LINEAR, Context, Pass, register
from .progress import progress
from .prune import prune
from .swap import as_linear, replace


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
        return frozenset({"norm"})

    def run(self, context: Context, sparsity: float) -> None:
        names = context.layers[LINEAR]
        context.collect(self.statistics(sparsity), names)
        for name in progress(names, f"{context.recipe} csr", context.show_progress):
            norms = context.statistic("norm", name)

            def sparsify(module):
                linear = as_linear(module)
                pruned = nn.Linear(linear.in_features, linear.out_features, linear.bias is not None,
                                   device=linear.weight.device, dtype=linear.weight.dtype)
                pruned.load_state_dict(linear.state_dict())
                prune(pruned, sparsity, criterion="magnitude" if norms is None else "wanda", input_norms=norms)
                return CSRLinear.from_linear(pruned)
            context.modules[name] = replace(context.model, name, sparsify).config()
        context.layers[CSR], context.layers[LINEAR] = names, []


def int8_values(module: CSRLinear) -> CSRLinear:
    """The same CSR layer with its non-zeros as int8, one scale per output channel."""
    dense = csr.to_dense(module.crow_indices, module.col_indices, module.values, module.in_features).float()
    if module.w_scale is not None:
        dense = dense * module.w_scale[:, None]
    linear = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None, device=dense.device)
    linear.weight.data = dense
    if module.bias is not None:
        linear.bias.data = module.bias.detach().clone()
    return CSRLinear.from_linear(linear, int8=True)
