"""An embedded corpus every machine has: the running Python's standard library and its documentation.

`gpt2 demo` trains on it so that the README's main job needs no download and no data directory. Source
files are real, varied text (code, docstrings, comments in English); pydoc's topic pages are prose.
"""

from __future__ import annotations

import json
import sysconfig
from collections.abc import Iterator
from pathlib import Path

from gpt2.files import atomic_write

# Directories left out: tests (huge, repetitive), third-party packages, and the IDLE/turtle demos.
_SKIP_PARTS = {"site-packages", "dist-packages", "test", "tests", "idlelib", "turtledemo", "__pycache__"}


def stdlib_documents(max_bytes: int | None = None) -> Iterator[str]:
    """Documents from the standard library in a fixed order: doc topics first, then source files by path.

    Stops once `max_bytes` of text have been yielded (the file that crosses the limit is included).
    """
    total = 0
    for text in _doc_topics():
        yield text
        total += len(text.encode("utf-8"))
    for path in _source_files():
        if max_bytes is not None and total >= max_bytes:
            return
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # a handful of files are Latin-1 test data; not worth special handling
        if text.strip():
            yield text
            total += len(text.encode("utf-8"))


def write_jsonl(documents: Iterator[str], path: Path) -> tuple[int, int]:
    """Write documents as `{"text": ...}` lines; returns (documents, bytes)."""

    count = size = 0

    def write(tmp: Path) -> None:
        nonlocal count, size
        with open(tmp, "w", encoding="utf-8") as f:
            for text in documents:
                f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                count += 1
                size += len(text.encode("utf-8"))

    atomic_write(path, write)
    return count, size


def _doc_topics() -> Iterator[str]:
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some distributions strip pydoc_data
        return
    for name in sorted(topics):
        yield topics[name]


def _source_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    return sorted(p for p in root.rglob("*.py") if not _SKIP_PARTS.intersection(p.relative_to(root).parts))
