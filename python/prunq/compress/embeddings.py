"""emb8 — Embedding -> Int8Embedding: tables stored as int8 rows with one scale per row."""

from __future__ import annotations

from ..nn import Int8Embedding
from .passes import EMBEDDING, INT8_EMBEDDING, Context, Pass, register
from .swap import replace


@register
class Embeddings(Pass):
    names = ("emb8",)
    order = 40
    makes = {EMBEDDING: INT8_EMBEDDING}
    repeated = "has two emb8 steps"

    def run(self, context: Context, _) -> None:
        for name in context.layers[EMBEDDING]:
            context.modules[name] = replace(context.model, name, Int8Embedding.from_embedding).config()
        context.layers[INT8_EMBEDDING], context.layers[EMBEDDING] = context.layers[EMBEDDING], []
