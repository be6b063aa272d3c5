"""int8 and int8-weight-only — Linear -> Int8Linear (per-channel int8 weights). int8 (W8A8,
activations quantized per token) moves the activations' outlier channels into the weights
(SmoothQuant) when calibration data is given, and runs BERT's intermediate GELU in the GEMM's
epilogue."""

from __future__ import annotations

from ..nn import Int8Linear
from .fuse_gelu import fuse_gelu
from .passes import INT8_LINEAR, Context, Pass, register
from .progress import progress
from .swap import as_linear, replace

MODES = {"int8": "dynamic", "int8-weight-only": "weight_only"}


@register
class Quantize(Pass):
    names = tuple(MODES)
    order = 30
    makes = INT8_LINEAR
    repeated = f"quantizes twice; choose one of {', '.join(MODES)}"

    def parse(self, name: str, value: str) -> str:
        super().parse(name, value)
        return MODES[name]

    def statistics(self, mode):
        return frozenset({"absmax"} if mode == "dynamic" else ())

    def run(self, context: Context, mode: str) -> None:
        context.collect(self.statistics(mode), context.linears)
        for name in progress(context.linears, f"{context.recipe} quantize", context.show_progress):
            absmax = context.statistic("absmax", name) if mode == "dynamic" else None
            module = replace(context.model, name, lambda m: Int8Linear.from_linear(as_linear(m), mode, absmax))
            context.modules[name] = module.config()
        context.gelu_fused = fuse_gelu(context.model)
        for name in context.gelu_fused:
            context.modules[f"{name}.dense"] = context.model.get_submodule(f"{name}.dense").config()
