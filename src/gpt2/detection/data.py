"""Labelled texts for detection: jsonl readers whose errors name file and line; the real-data split."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpt2.errors import DataError
from gpt2.files import parse_record


@dataclass
class Texts:
    """Texts read from a jsonl file, with their token lengths where the file has them (`length`)."""

    texts: list[str]
    lengths: list[int | None] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int | None) -> Texts:
        if n is None:
            return self
        return Texts(self.texts[:n], self.lengths[:n], self.source)


def read_texts(path: str | os.PathLike, limit: int | None = None) -> Texts:
    """The `text` of every line of a jsonl file (gpt-2-output-dataset's schema, or any object with a
    string `text`). Blank lines are skipped; anything else malformed is an error naming file and line."""
    path = Path(path)
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file; expected a jsonl file of {{\"text\": ...}} lines") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    texts: list[str] = []
    lengths: list[int | None] = []
    with f:
        for number, raw in enumerate(f, start=1):
            if limit is not None and len(texts) >= limit:
                break
            if not raw.strip():
                continue
            row = _parse(raw, path, number)
            texts.append(row["text"])
            length = row.get("length")
            lengths.append(length if isinstance(length, int) and not isinstance(length, bool) else None)
    if not texts:
        raise DataError(f"{path}: holds no texts; expected jsonl lines like {{\"text\": \"...\"}}")
    return Texts(texts, lengths, str(path))


def _parse(raw: bytes, path: Path, number: int) -> dict[str, Any]:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}:{number}: not valid UTF-8 (byte 0x{raw[e.start]:02x} at column "
                        f"{e.start + 1})") from None
    return parse_record(line, f"{path}:{number}", {"text": (str,)})


def labelled(real: Texts, fake: Texts) -> tuple[list[str], list[int], list[int | None]]:
    """Texts, labels (0 = human, 1 = machine) and lengths of a real and a fake set, real first."""
    return (real.texts + fake.texts, [0] * len(real) + [1] * len(fake), real.lengths + fake.lengths)


# ---- the shared real-data subsets ----

REAL_DATA_FILES = {
    "fake_train": "small-117M-k40.train.subset.jsonl",
    "fake_valid": "small-117M-k40.valid.subset.jsonl",
    "real": "webtext.subset.jsonl",
}


@dataclass
class Split:
    real: Texts
    fake: Texts


PROTOCOLS = ("subsets", "pooled", "openai")
# protocol "openai": OpenAI's full files, as `gpt2 data get gpt2-output/...` (gpt2.data.sources) fetches them
OPENAI_FILES = {"real": "webtext.{split}.jsonl", "fake": "small-117M-k40.{split}.jsonl"}


def real_data_splits(directory: str | os.PathLike, protocol: str = "subsets", limit: int | None = None
                     ) -> dict[str, Split]:
    """train / valid / test from the gpt2-output subsets, human and machine balanced in every split.

    protocol "subsets" keeps the files' own train/valid roles:
    - machine train = the 158 samples of small-117M-k40.train.subset.jsonl;
    - the 529 samples of small-117M-k40.valid.subset.jsonl, in file order: the first 264 valid, the other
      265 test (there is no test subset);
    - human: the 1,000 webtext documents in file order: the first 158 train, the next 264 valid, the next
      265 test; the last 313 are unused.
    The two machine files are not alike, though (a TF-IDF model tells them apart with AUROC ~0.94: many
    train-subset samples start mid-sentence), so this protocol tests transfer across that shift.

    protocol "pooled" draws every split from one distribution: the 687 machine samples of both files, and
    the 1,000 webtext documents, each ordered by sha256("<file name>/<id>"), are cut into train / valid /
    test at 50% / 25% / 25% of the 687 (343 / 172 / 172 each side; 313 webtext documents unused).
    """
    if protocol not in PROTOCOLS:
        raise DataError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    directory = Path(directory)
    if protocol == "openai":  # the files' own splits, as OpenAI's baseline; `limit` texts per file
        return {split: Split(*(read_texts(directory / OPENAI_FILES[side].format(split=split), limit)
                               for side in ("real", "fake"))) for split in ("train", "valid", "test")}
    paths = {k: directory / v for k, v in REAL_DATA_FILES.items()}
    for p in paths.values():
        if not p.is_file():
            raise DataError(f"{p}: not found; expected the gpt2-output subsets in {directory}")
    fake_train, fake_rest, real = (read_texts(paths[k]) for k in ("fake_train", "fake_valid", "real"))
    if protocol == "pooled":
        fake = _ordered([(paths["fake_train"], fake_train), (paths["fake_valid"], fake_rest)])
        real = _ordered([(paths["real"], real)])
        fake_train, fake_rest = fake.head(len(fake) // 2), _part(fake, len(fake) // 2, len(fake))
    n_train, n_valid = len(fake_train), len(fake_rest) // 2
    n_test = len(fake_rest) - n_valid
    if len(real) < n_train + n_valid + n_test:
        raise DataError(f"{paths['real']}: {len(real)} documents, need {n_train + n_valid + n_test}")
    return {
        "train": Split(_part(real, 0, n_train), fake_train),
        "valid": Split(_part(real, n_train, n_train + n_valid), _part(fake_rest, 0, n_valid)),
        "test": Split(_part(real, n_train + n_valid, n_train + n_valid + n_test),
                      _part(fake_rest, n_valid, n_valid + n_test)),
    }


def _part(t: Texts, a: int, b: int) -> Texts:
    return Texts(t.texts[a:b], t.lengths[a:b], f"{t.source}[{a}:{b}]")


def _ordered(files: list[tuple[Path, Texts]]) -> Texts:
    """The rows of several files in the order of sha256("<file name>/<id>") (ids read from the files)."""
    keyed = []
    for path, texts in files:
        lines = path.read_text(encoding="utf-8").splitlines()
        ids = [json.loads(line)["id"] for line in lines if line.strip()]
        for i, text, length in zip(ids, texts.texts, texts.lengths, strict=True):
            keyed.append((hashlib.sha256(f"{path.name}/{i}".encode()).hexdigest(), text, length))
    keyed.sort()
    source = "+".join(p.name for p, _ in files) + " (hashed)"
    return Texts([k[1] for k in keyed], [k[2] for k in keyed], source)
