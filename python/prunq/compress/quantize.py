"""int8 and int8-weight-only — Linear -> Int8Linear (per-channel int8 weights). int8 (W8A8,
activations quantized per token) moves the activations' outlier channels into the weights
(SmoothQuant) when calibration data is given, and runs BERT's intermediate GELU in the GEMM's
epilogue. After 2:4 or csr, the sparse layers' kept values become int8 with per-channel scales
(weight-only in both modes: no kernel multiplies int8 activations by a sparse weight).
":w4" (int8:w4, int8-weight-only:w4) puts the weights on 16 levels, saved at 4 bits
(Int8Linear(weight_bits=4)), the levels chosen by GPTQ when calibration data is given; dense
layers only: the sparse formats store 8-bit values."""

from __future__ import annotations

from ..nn import Int8Linear
from .fuse_gelu import fuse_gelu
from .passes import CSR, INT8_LINEAR, LINEAR, SPARSE24, Context, Pass, register
from .progress import progress
from .sparsify import int8_values
from .swap import as_linear, replace

MODES = {"int8": "dynamic", "int8-weight-only": "weight_only"}


@register
class Quantize(Pass):
    names = tuple(MODES)
    order = 30
    makes = {LINEAR: INT8_LINEAR, SPARSE24: SPARSE24, CSR: CSR}
    repeated = f"quantizes twice; choose one of {', '.join(MODES)}"

    def parse(self, name: str, value: str) -> tuple[str, int]:
        if value not in ("", "w4"):
            raise ValueError(f"recipe: {name!r} takes ':w4' (weights on 4 bits) or nothing, got {name}:{value}")
        return MODES[name], 4 if value else 8

    def makes_of(self, argument):
        return {LINEAR: INT8_LINEAR} if argument[1] == 4 else self.makes

    def statistics(self, argument):
        mode, bits = argument
        return frozenset(({"absmax"} if mode == "dynamic" else set()) | ({"gram"} if bits == 4 else set()))

    def run(self, context: Context, argument: tuple[str, int]) -> None:
        mode, bits = argument
        names = context.layers[LINEAR]
        context.collect(self.statistics(argument), names)
        for name in progress(names, f"{context.recipe} quantize", context.show_progress):
            absmax = context.statistic("absmax", name) if mode == "dynamic" else None
            gram = context.statistic("gram", name) if bits == 4 else None
            module = replace(context.model, name, lambda m: Int8Linear.from_linear(
                as_linear(m), mode, absmax, weight_bits=bits, input_gram=gram))
            context.modules[name] = module.config()
        context.layers[INT8_LINEAR], context.layers[LINEAR] = names, []
        for name in context.layers.get(SPARSE24, []) + context.layers.get(CSR, []):
            context.modules[name] = replace(context.model, name, int8_values).config()
        context.gelu_fused = fuse_gelu(context.model)
        for name in context.gelu_fused:
            context.modules[f"{name}.dense"] = context.model.get_submodule(f"{name}.dense").config()

