"""A progress bar on stderr for the long loops of compression, silent when asked."""

from __future__ import annotations

from collections.abc import Iterable


def progress(items: Iterable, description: str, show: bool, unit: str = "layer") -> Iterable:
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=description, unit=unit, leave=False)
