"""File I/O every module shares: atomic writes (a reader, or a crash, never sees a half-written file) and
the checks of one JSON-lines record."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from gpt2.errors import DataError

_TYPE_NAMES = {str: "string", int: "integer", float: "number", list: "list", dict: "object", bool: "boolean"}


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temporary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; a normal file follows the umask
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def current_umask() -> int:
    """The process's umask (read by setting and restoring it): what new files' permissions should follow."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(directory: Path) -> None:
    """Make a directory's entries (a rename, a new file) durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def parse_record(line: str, where: str, fields: Mapping[str, tuple[type, ...]],
                 aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One line of a JSON-lines file: a JSON object holding `fields` (name -> accepted types); `aliases` maps
    another name a field may have to its own. Errors start with `where` (the file and line) and say what
    was expected."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno}); expected one JSON object per "
                        f"line with {_wanted(fields)}") from None
    return check_record(row, where, fields, aliases)


def _wanted(fields: Mapping[str, tuple[type, ...]]) -> str:
    return f'a "{next(iter(fields))}" field' if len(fields) == 1 else "fields " + ", ".join(
        f'"{name}"' for name in fields)


def check_record(row: Any, where: str, fields: Mapping[str, tuple[type, ...]],
                 aliases: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`row` (parsed JSON) if it is an object holding `fields`, as `parse_record` checks a line."""
    wanted = _wanted(fields)
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object with {wanted}, got a JSON {type(row).__name__}")
    for alias, name in (aliases or {}).items():
        if name not in row and alias in row:
            row[name] = row[alias]
    missing = [name for name in fields if name not in row]
    if missing:
        raise DataError(f"{where}: expected a JSON object with {wanted}, got an object with fields "
                        f"{sorted(row)[:6]} (no {missing[0]!r})")
    for name, types in fields.items():
        if not isinstance(row[name], types) or (isinstance(row[name], bool) and bool not in types):
            expected = " or ".join(_TYPE_NAMES.get(t, t.__name__) for t in types)
            raise DataError(f'{where}: field "{name}" must be a {expected}, got {type(row[name]).__name__}')
    return row


def read_json_object(path: str | os.PathLike, what: str) -> dict[str, Any]:
    """A JSON file holding one object; a missing, unreadable or non-object file is a DataError naming the
    file and `what` it should be (e.g. "a results.json written by `gpt2 eval --out DIR`")."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; expected {what}") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory; expected {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e}); expected {what}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object ({what}), got {type(doc).__name__}")
    return doc
