"""Input files → documents: which files an input names, and the documents each file holds."""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from gpt2.errors import DataError
from gpt2.files import parse_record

TXT_SPLITS = ("file", "paragraph", "line")
DIRECTORY_SUFFIXES = (".txt", ".jsonl")  # what a directory input contributes (recursively)
NEWLINE = b"\n"


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Files named by `inputs` (files, directories searched recursively for *.txt / *.jsonl, globs), in the
    given order, each once."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in DIRECTORY_SUFFIXES and p.is_file())
            if not found:
                raise DataError(f"{path}: directory holds no {' or '.join(DIRECTORY_SUFFIXES)} files")
            files += found
        elif path.is_file():
            files.append(path)
        elif glob.has_magic(str(item)):
            found = sorted(Path(p) for p in glob.glob(os.path.expanduser(str(item)), recursive=True))
            found = [p for p in found if p.is_file()]
            if not found:
                raise DataError(f"{item}: pattern matches no files")
            files += found
        else:
            raise DataError(f"{path}: no such file or directory")
    if not files:
        raise DataError("no input files given")
    unique = dict.fromkeys(p.resolve() for p in files)
    return list(unique)


def read_documents(path: Path, txt_split: str = "file") -> Iterator[str]:
    """The non-empty documents of one input file: each `{"text": ...}` line of a .jsonl file; for other
    files, the whole file, each paragraph (lines up to a blank or whitespace-only line, without the
    final newline) or each line (without its newline), as `txt_split` says. Only "file" reads the file
    whole; the others stream it, so a corpus of one huge text file needs little memory."""
    if txt_split not in TXT_SPLITS:
        raise DataError(f"txt_split must be one of {', '.join(TXT_SPLITS)}, got {txt_split!r}")
    if path.suffix == ".jsonl":
        yield from _jsonl_documents(path)
    elif txt_split == "file":
        text = _decode(path, _read_bytes(path))
        if text.strip():
            yield text
    elif txt_split == "line":
        for _, line in _lines(path):
            if line.strip():
                yield _strip_newline(line)
    else:
        yield from _paragraphs(path)


def _paragraphs(path: Path) -> Iterator[str]:
    paragraph: list[str] = []
    for _, line in _lines(path):
        if line.strip():
            paragraph.append(line)
        elif paragraph:
            yield _strip_newline("".join(paragraph))
            paragraph = []
    if paragraph:
        yield _strip_newline("".join(paragraph))


def _strip_newline(text: str) -> str:
    return text[:-2] if text.endswith("\r\n") else text[:-1] if text.endswith("\n") else text


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, decoded line with its newline) for each line of a UTF-8 file, read as a stream."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    with f:
        for number, raw in enumerate(f, start=1):
            yield number, _decode(path, raw, number)


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _decode(path: Path, data: bytes, line: int | None = None) -> str:
    """`data` (a whole file, or its line number `line`) as text; a DataError saying where it is not."""
    where = f"{path}:{line}" if line is not None else str(path)
    at = (lambda i: f"offset {i}") if line is None else (lambda i: f"byte {i + 1} of the line")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataError(f"{where}: NUL byte at {at(nul)}; this looks like a binary file, not UTF-8 text. "
                        "Pass text (.txt) or JSON lines (.jsonl) files only")
    try:
        return data.decode("utf-8-sig" if line in (None, 1) else "utf-8")
    except UnicodeDecodeError as e:
        if line is None:
            where = f"{path}:{data.count(NEWLINE, 0, e.start) + 1}"
        raise DataError(f"{where}: not valid UTF-8 (byte 0x{data[e.start]:02x} at {at(e.start)}); convert "
                        "the file to UTF-8, e.g. `iconv -f latin1 -t utf-8`") from None


def _jsonl_documents(path: Path) -> Iterator[str]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        text = parse_record(line, f"{path}:{number}", {"text": (str,)})["text"]
        if text:
            yield text
