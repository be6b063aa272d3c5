"""2:4 — Linear -> Sparse24Linear: each group of four consecutive weights along K keeps its two
most important, chosen by Wanda (|w| times the input channel's norm) when calibration data is
given and by magnitude otherwise. With int8 in the recipe the kept values become int8."""

from __future__ import annotations

from ..nn import Sparse24Linear
from .passes import LINEAR, SPARSE24, Context, Pass, register
from .progress import progress
from .swap import as_linear, replace


@register
class Sparsify24(Pass):
    names = ("2:4",)
    order = 20
    makes = {LINEAR: SPARSE24}
    repeated = "has two 2:4 steps"

    def statistics(self, _):
        return frozenset({"norm"})

    def run(self, context: Context, _) -> None:
        names = context.layers[LINEAR]
        context.collect(self.statistics(None), names)
        for name in progress(names, f"{context.recipe} 2:4", context.show_progress):
            norms = context.statistic("norm", name)
            criterion = "magnitude" if norms is None else "wanda"
            module = replace(context.model, name,
                             lambda m: Sparse24Linear.from_linear(as_linear(m), criterion=criterion, input_norms=norms))
            context.modules[name] = module.config()
        context.layers[SPARSE24], context.layers[LINEAR] = names, []
