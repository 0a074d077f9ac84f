"""Output-dataset jsonl files: one `{"id", "ended", "length", "text"}` object a line, read with the schema
checked (errors name file:line), recovered after a killed run, and written atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gpt2.errors import DataError
from gpt2.files import atomic_write


def read_samples(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every row of an output-dataset jsonl file, checked against the schema (errors name file:line)."""
    rows, _, partial = scan(Path(path), repair=False)
    if partial:
        raise DataError(f"{path}: the last line is incomplete (an interrupted run?); rerun the command "
                        "that wrote it to finish it")
    return rows


def scan(path: Path, repair: bool) -> tuple[list[dict[str, Any]], int, bool]:
    """(rows, end offset of the last complete line, whether a partial last line follows). With `repair`,
    the partial line is cut off the file."""
    rows: list[dict[str, Any]] = []
    good = 0
    partial = False
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                partial = True  # the only line that may lack a newline is the last
                break
            try:
                row = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise DataError(f"{path}:{number}: not valid JSON ({e}); the file is corrupt, remove the "
                                "line or the file") from None
            _check_row(row, f"{path}:{number}")
            rows.append(row)
            good += len(raw)
    if partial and repair:
        with open(path, "rb+") as f:
            f.truncate(good)
    return rows, good, partial


def _check_row(row: Any, where: str) -> None:
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object with id, ended, length, text; got a JSON "
                        f"{type(row).__name__}")
    for key, kind in (("id", int), ("ended", bool), ("length", int), ("text", str)):
        if key not in row:
            raise DataError(f"{where}: field {key!r} is missing; expected {{id, ended, length, text}}")
        if not isinstance(row[key], kind) or (kind is int and isinstance(row[key], bool)):
            raise DataError(f"{where}: field {key!r} must be {kind.__name__}, got {type(row[key]).__name__}")


def recover(path: Path, expected: range) -> set[int]:
    """Ids already in `path` (creating nothing); a trailing partial line is cut off. Ids outside
    `expected` or repeated mean the file belongs to another run: an error."""
    if not path.exists():
        return set()
    rows, _, _ = scan(path, repair=True)
    done: set[int] = set()
    for number, row in enumerate(rows, start=1):
        if row["id"] not in expected:
            raise DataError(f"{path}:{number}: id {row['id']} is outside this file's ids "
                            f"[{expected.start}, {expected.stop}); the file is from another run, "
                            "move it away")
        if row["id"] in done:
            raise DataError(f"{path}:{number}: id {row['id']} appears twice; the file is corrupt")
        done.add(row["id"])
    return done


def encode_rows(rows: Iterable[dict[str, Any]]) -> bytes:
    """Rows as jsonl bytes (UTF-8 text, not \\u escapes, as in OpenAI's files)."""
    return b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode() for r in rows)


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """Replace `path` with these rows, atomically."""
    data = encode_rows(rows)
    atomic_write(path, lambda tmp: tmp.write_bytes(data))
