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


def _prose(doc: str | None):
    for paragraph in (doc or "").split("\n\n"):
        for sentence in _SENTENCE_END.split(" ".join(paragraph.split())):
            if _is_prose(sentence):
                yield sentence


def sentences(limit: int = 512) -> list[str]:
    """Up to `limit` distinct prose sentences, in a fixed order."""
    found: dict[str, None] = {}
    for module_name in MODULES:
        for doc in _docstrings(module_name):
            for sentence in _prose(doc):
                found.setdefault(sentence)
                if len(found) == limit:
                    return list(found)
    return list(found)


def training_sentences(limit: int | None = None) -> list[str]:
    """Prose sentences of the docstrings in the standard library's source (read, not imported),
    none of which sentences() can return: text to train on, kept apart from the text evaluated on."""
    held_out = set(sentences(10**9))
    root = Path(sysconfig.get_paths()["stdlib"])
    found: dict[str, None] = {}
    for path in sorted(root.rglob("*.py")):
        if any(part in ("test", "tests", "idle_test", "site-packages") for part in path.relative_to(root).parts):
            continue
        try:
            tree = ast.parse(path.read_bytes())
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                for sentence in _prose(ast.get_docstring(node)):
                    if sentence not in held_out:
                        found.setdefault(sentence)
                        if len(found) == limit:
                            return list(found)
    return list(found)
