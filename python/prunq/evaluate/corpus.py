"""Real English text for fidelity checks: sentences from the documentation Python ships.

The docstrings of standard-library modules, classes and functions were written by their authors
for people, not for this project, and every Python installation carries them, so the corpus is
the same wherever the same Python runs and needs no download.
"""

from __future__ import annotations

import importlib
import inspect
import re

MODULES = ("argparse", "asyncio", "collections", "concurrent.futures", "contextlib", "csv", "datetime",
           "decimal", "difflib", "email.message", "fractions", "functools", "gzip", "heapq", "http.client",
           "http.cookies", "inspect", "ipaddress", "json", "logging", "mailbox", "multiprocessing", "pathlib",
           "pickle", "queue", "random", "shutil", "socket", "sqlite3", "statistics", "string", "subprocess",
           "tarfile", "tempfile", "textwrap", "threading", "typing", "unittest", "urllib.parse", "uuid",
           "zipfile")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z]+")


def _is_prose(sentence: str) -> bool:
    words = sentence.split()
    if not 6 <= len(words) <= 40 or not sentence[0].isupper() or not sentence.endswith("."):
        return False
    if any(mark in sentence for mark in (">>>", "(", ")", "=", "_", "`", "*", "[", "]", "{", ":", "\\", "/")):
        return False
    return sum(bool(_WORD.fullmatch(word.strip(".,;'\"-"))) for word in words) >= 0.9 * len(words)


def _docstrings(module_name: str):
    module = importlib.import_module(module_name)
    yield inspect.getdoc(module)
    for name, member in sorted(vars(module).items()):
        if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
            continue
        yield inspect.getdoc(member)


def sentences(limit: int = 512) -> list[str]:
    """Up to `limit` distinct prose sentences, in a fixed order."""
    found: dict[str, None] = {}
    for module_name in MODULES:
        for doc in _docstrings(module_name):
            for paragraph in (doc or "").split("\n\n"):
                for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
                    if _is_prose(sentence):
                        found.setdefault(sentence)
                        if len(found) == limit:
                            return list(found)
    return list(found)
