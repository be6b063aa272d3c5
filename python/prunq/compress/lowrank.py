"""lowrank:R — Linear -> LowRankLinear keeping the fraction R (0 < R <= 1) of the weight's
parameters: a truncated SVD, fitted to the inputs the layer sees when calibration data is given.
The two factors are Linear layers again, so later passes (int8) take them."""

from __future__ import annotations

from ..nn import LowRankLinear
from ..nn.lowrank_linear import rank_for_ratio
from .passes import LINEAR, Context, Pass, register
from .progress import progress
from .swap import as_linear, replace


def fraction(step: str, value: str) -> float:
    """A recipe argument in (0, 1]."""
    try:
        result = float(value)
    except ValueError:
        raise ValueError(f"recipe: {step!r} expects a number after ':', got {value!r}") from None
    if not 0 < result <= 1:
        raise ValueError(f"recipe: {step!r} expects a fraction in (0, 1], got {result}")
    return result


@register
class LowRank(Pass):
    names = ("lowrank",)
    order = 10
    renames = True
    repeated = "has two lowrank steps"

    def parse(self, name: str, value: str) -> float:
        return fraction(f"{name}:{value}", value)

    def statistics(self, ratio):
        return frozenset({"gram"})

    def run(self, context: Context, ratio: float) -> None:
        names = context.layers[LINEAR]
        context.collect(self.statistics(ratio), names)
        for name in progress(names, f"{context.recipe} low-rank", context.show_progress):
            def factorise(module):
                linear = as_linear(module)
                rank = rank_for_ratio(ratio, linear.out_features, linear.in_features)
                return LowRankLinear.from_linear(linear, rank, context.statistic("gram", name))
            context.modules[name] = replace(context.model, name, factorise).config()
        context.layers[LINEAR] = [f"{name}.{factor}" for name in names for factor in ("down", "up")]
