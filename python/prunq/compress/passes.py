"""The passes of a recipe: each kind of compression step is a Pass in its own module of this
package, registered under its recipe name.

A pass says what it parses (the text after "name:"), the kinds of layer it takes and what it
turns them into (so that a recipe can be checked before any work starts), its place in the
canonical order, and the calibration statistics it needs; `run` then does the work on a Context
shared by the passes of one compress() call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from .calibrate import input_statistics

# Layer kinds a pass takes and makes.
LINEAR, EMBEDDING, INT8_LINEAR, QUANTIZED_EMBEDDING = "linear", "embedding", "int8 linear", "quantized embedding"
SPARSE24, CSR, BINARY = "2:4 linear", "csr linear", "binary linear"
FLOAT_KINDS = frozenset({LINEAR, EMBEDDING})

PASSES: dict[str, Pass] = {}
RECORD = "prunq_compression"  # the attribute of a compressed model that records what was done


class Pass:
    """One kind of step. Subclasses set the class attributes and implement run()."""

    names: tuple[str, ...] = ()   # recipe names ("int8", "int8-weight-only")
    order: int = 0                # canonical position: lower runs first
    makes: dict[str, str] = {LINEAR: LINEAR}  # kind of layer it acts on -> what those become ({}: none)
    renames: bool = False         # replaces layers by others under new names, or changes what later
                                  # layers receive: later passes collect their statistics anew
    repeated: str = "repeats a step"  # the error for two steps of this pass

    def parse(self, name: str, value: str):
        """The step's argument from its text after ':' (empty if none); raise ValueError."""
        if value:
            raise ValueError(f"recipe: {name!r} takes no ':' argument, got {name}:{value}")
        return name

    def makes_of(self, argument) -> dict[str, str]:
        """What the step with this argument makes of each kind of layer (default: makes)."""
        return self.makes

    def statistics(self, argument) -> frozenset[str]:
        """Input statistics it uses when calibration data is given ("gram", "absmax", "norm")."""
        return frozenset()

    def prepare(self, model: nn.Module, argument, calibration: Iterable | None) -> None:
        """Runs before the shared preamble, on the float model: for steps that change the model's
        structure and so the names every later step sees (removing whole blocks)."""

    def run(self, context: Context, argument) -> None:
        raise NotImplementedError


def register(cls: type[Pass]) -> type[Pass]:
    instance = cls()
    for name in cls.names:
        PASSES[name] = instance
    return cls


@dataclass
class Context:
    """What the passes of one compress() call share: the model, the names of the layers each
    pass acts on (updated as passes replace layers), the calibration data and the statistics
    already collected from it, and the record of what was done."""

    model: nn.Module
    recipe: str
    calibration: Iterable | None
    layers: dict[str, list[str]]  # kind -> names of the layers of that kind the passes act on
    show_progress: bool
    include: tuple[str, ...] | None = None  # the user's include patterns, if any
    teacher: nn.Module | None = None  # the float model, kept for distillation
    training: list | None = None      # batches to train on
    teacher_blocks: list[int] | None = None  # the teacher's index of each block the model kept
    modules: dict[str, dict] = field(default_factory=dict)
    gelu_fused: list[str] = field(default_factory=list)
    _statistics: dict[tuple[str, str], torch.Tensor] = field(default_factory=dict)

    def collect(self, kinds: Iterable[str], names: list[str]) -> None:
        """Collects the statistics `kinds` of the inputs of the layers `names` that are not
        collected yet, all in one pass over the calibration data."""
        if self.calibration is None:
            return
        wanted = {(kind, name) for kind in kinds for name in names} - self._statistics.keys()
        if wanted:
            found = input_statistics(self.model, sorted({name for _, name in wanted}), sorted({k for k, _ in wanted}),
                                     self.calibration, self.show_progress)
            self._statistics.update({key: found[key] for key in wanted})

    def forget(self) -> None:
        """Drops every statistic collected: a pass has changed what the layers receive."""
        self._statistics = {}

    def statistic(self, kind: str, name: str) -> torch.Tensor | None:
        """A statistic of layer `name`'s inputs (collecting it if needed), or None without
        calibration data."""
        self.collect([kind], [name])
        return self._statistics.get((kind, name))
