"""What every task returns (`TaskResult`) and the file helpers the task readers share."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gpt2.errors import DataError


@dataclass
class TaskResult:
    """One task's outcome: its metrics plus the raw sums they come from, so results can be re-aggregated."""

    task: str
    metrics: dict[str, float]
    n_examples: int
    nll: float | None  # summed negative log-likelihood of everything scored, nats (None: generative task)
    tokens: int | None  # BPE tokens scored (None: generative task)
    words: int | None = None  # original (pre-detokenization) words, where the task has them
    bytes: int | None = None  # UTF-8 bytes of the scored text, where the task has them
    runtime_s: float = 0.0
    data_file: str | None = None
    data_sha256: str | None = None
    details: dict[str, Any] = field(default_factory=dict)  # task-specific settings (stride, variant, ...)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_bytes(path: str | os.PathLike, what: str) -> bytes:
    """A task file's bytes; a missing or empty file is a DataError naming the file and what it should be."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; expected {what}") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory; expected {what}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror}); expected {what}") from None
    if not data.strip():
        raise DataError(f"{path}: file is empty; expected {what}")
    return data


def decode_utf8(data: bytes, path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """Decode a task file, naming the line and byte offset of the first invalid byte."""
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(
            f"{path}: line {line}: byte {data[e.start]:#04x} at offset {e.start} is not valid {encoding}; "
            f"expected a {encoding} text file (re-encode it, e.g. with iconv -t utf-8)"
        ) from None


def read_text(path: str | os.PathLike, what: str) -> str:
    return decode_utf8(read_bytes(path, what), path)


def check_protocol(protocol: str, offered: tuple[str, ...], task: str) -> tuple[str, ...]:
    """The protocols to compute for `protocol` (one of `offered`, or "both"), or one line saying what is offered."""
    if protocol == "both":
        return offered
    if protocol not in offered:
        raise DataError(f"{task} has no protocol {protocol!r}; choose one of {', '.join(offered)} or both")
    return (protocol,)
