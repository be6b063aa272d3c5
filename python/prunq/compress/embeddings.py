"""emb8 and emb4 — Embedding -> Int8Embedding (int8 rows, one scale per row) or Int4Embedding
(4-bit values, a float16 scale per group of 32 columns)."""

from __future__ import annotations

from ..nn import Int4Embedding, Int8Embedding
from .passes import EMBEDDING, QUANTIZED_EMBEDDING, Context, Pass, register
from .swap import replace

TABLES = {"emb8": Int8Embedding, "emb4": Int4Embedding}


@register
class Embeddings(Pass):
    names = tuple(TABLES)
    order = 40
    makes = {EMBEDDING: QUANTIZED_EMBEDDING}
    repeated = "quantizes the embeddings twice; choose emb8 or emb4"

    def parse(self, name: str, value: str) -> type:
        super().parse(name, value)
        return TABLES[name]

    def run(self, context: Context, table: type) -> None:
        for name in context.layers[EMBEDDING]:
            context.modules[name] = replace(context.model, name, table.from_embedding).config()
        context.layers[QUANTIZED_EMBEDDING], context.layers[EMBEDDING] = context.layers[EMBEDDING], []
