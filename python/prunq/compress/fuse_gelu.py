"""Moving the GELU of BERT-family intermediate layers into the epilogue of their int8 GEMM.

    BertIntermediate:  gelu(dense(h))  ->  dense(h) with Int8Linear(activation="gelu")

The intermediate activation is the widest tensor of the block (4 x hidden); applying the GELU
while the GEMM's results are still in registers saves writing and reading it once more. Only the
exact (erf) GELU is fused, and only where dense is an Int8Linear in dynamic mode.
"""

from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from ..nn import Int8Linear

_BLOCKS = {f"{family}Intermediate" for family in ("Bert", "Roberta", "XLMRoberta", "Electra", "Camembert")}


class _GeluInEpilogue:
    def forward(self, hidden_states):
        return self.dense(hidden_states)


_fused_classes: dict[type, type] = {}


def _is_exact_gelu(act) -> bool:
    if isinstance(act, nn.GELU):
        return act.approximate == "none"
    return type(act).__name__ == "GELUActivation" and getattr(act, "act", None) is F.gelu


def fusable(module: nn.Module, dense: nn.Module | None = None) -> bool:
    """Whether `module` is an unfused intermediate block with an exact GELU and an int8 dense
    (its own, or `dense` that is to replace it)."""
    dense = getattr(module, "dense", None) if dense is None else dense
    return (type(module).__name__ in _BLOCKS and _is_exact_gelu(getattr(module, "intermediate_act_fn", None))
            and isinstance(dense, Int8Linear) and dense.mode == "dynamic")


def fuse_block(module: nn.Module) -> None:
    cls = type(module)
    if cls not in _fused_classes:
        _fused_classes[cls] = type(f"GeluFused{cls.__name__}", (_GeluInEpilogue, cls), {"__module__": __name__})
    module.dense.activation = "gelu"
    module.__class__ = _fused_classes[cls]


def fuse_gelu(model: nn.Module) -> list[str]:
    """Fuses every eligible block of `model` in place; returns their names."""
    names = [name for name, module in model.named_modules() if fusable(module)]
    for name in names:
        fuse_block(model.get_submodule(name))
    return names
