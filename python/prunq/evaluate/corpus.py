"""Real English text for fidelity checks: sentences from the documentation Python ships.

The docstrings of standard-library modules, classes and functions were written by their authors
for people, not for this project, and every Python installation carries them, so the corpus is
the same wherever the same Python runs and needs no download.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sysconfig
from pathlib import Path

MODULES = ("argparse", "asyncio", "collections", "concurrent.futures", "contextlib", "csv", "datetime",
           "decimal", "difflib", "email.message", "fractions", "functools", "gzip", "heapq", "http.client",
           "http.cookies", "inspect", "ipaddress", "json", "logging", "mailbox", "multiprocessing", "pathlib",
           "pickle", "queue", "random", "shutil", "socket", "sqlite3", "statistics", "string", "subprocess",
           "tarfile", "tempfile", "textwrap", "threading", "typing", "unittest", "urllib.parse", "uuid",
           "zipfile")

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_WORD = re.compile(r"[A-Za-z]+")
_CODE_MARKS = ("(", ")", "=", "_", "`", "*", "[", "]", "{", ":", "\\", "/")


def _is_sentence(sentence: str, plain_share: float) -> bool:
    """6 to 40 words, a capital first and a full stop last, no interpreter prompt, and at least
    plain_share of the words plain English words (with the punctuation around them)."""
    words = sentence.split()
    if not 6 <= len(words) <= 40 or not sentence[0].isupper() or not sentence.endswith(".") or ">>>" in sentence:
        return False
    return sum(bool(_WORD.fullmatch(word.strip(".,;:'\"-()`"))) for word in words) >= plain_share * len(words)


def _is_prose(sentence: str) -> bool:
    """A sentence of plain prose, no mark of code in it: what fidelity is measured on."""
    return not any(mark in sentence for mark in _CODE_MARKS) and _is_sentence(sentence, 0.9)


def _is_training_prose(sentence: str) -> bool:
    """Looser than _is_prose: names of code, quotes and brackets may stand among the words. The
    model learns from more of the documentation's sentences; it is evaluated on plain prose."""
    return _is_sentence(sentence, 0.8)


def _docstrings(module_name: str):
    module = importlib.import_module(module_name)
    yield inspect.getdoc(module)
    for name, member in sorted(vars(module).items()):
        if name.startswith("_") or getattr(member, "__module__", None) != module.__name__:
            continue
        yield inspect.getdoc(member)


def _sentences_in(doc: str | None):
    for paragraph in (doc or "").split("\n\n"):
        yield from _SENTENCE_END.split(" ".join(paragraph.split()))


def sentences(limit: int = 512) -> list[str]:
    """Up to `limit` distinct prose sentences, in a fixed order."""
    found: dict[str, None] = {}
    for module_name in MODULES:
        for doc in _docstrings(module_name):
            for sentence in filter(_is_prose, _sentences_in(doc)):
                found.setdefault(sentence)
                if len(found) == limit:
                    return list(found)
    return list(found)


def _documentation():
    """The docstrings in the standard library's source (read, not imported), then the language
    reference's text that pydoc shows (pydoc_data.topics, where the installation ships it)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        if any(part in ("test", "tests", "idle_test", "site-packages") for part in path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                yield ast.get_docstring(node)
    try:
        from pydoc_data.topics import topics
    except ImportError:
        return
    yield from topics.values()


def training_sentences(limit: int | None = None) -> list[str]:
    """Sentences of the standard library's documentation (_documentation), none of which
    sentences() can return: text to train on, kept apart from the text evaluated on."""
    held_out = set(sentences(10**9))
    found: dict[str, None] = {}
    for doc in _documentation():
        for sentence in filter(_is_training_prose, _sentences_in(doc)):
            if sentence not in held_out:
                found.setdefault(sentence)
                if len(found) == limit:
                    return list(found)
    return list(found)
