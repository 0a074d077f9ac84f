"""The `manifest.json` of prepared data as a typed document: what `prepare` (gpt2.data.shards) and
`prepare_corpus` (gpt2.data.corpora) write, read back with every field checked.

    from gpt2.data.manifest import read_manifest
    manifest = read_manifest("data/shakespeare")      # the directory, or its manifest.json
    manifest.splits["train"].tokens, manifest.inputs[0].sha256
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpt2.data.shards import FORMAT, MANIFEST, SPLITS, load_manifest
from gpt2.errors import DataError

VERSION = 1
INT, NUMBER, TEXT, FLAG = (int,), (int, float), (str,), (bool,)
_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               type(None): "null", dict: "an object", list: "a list"}


def _get(doc: dict[str, Any], key: str, types: tuple[type, ...], source: str, where: str) -> Any:
    """doc[key] if it is one of `types` (true and false are not integers here); errors name the field."""
    name = f"{where}.{key}" if where else key
    if key not in doc:
        raise DataError(f"{source}: field '{name}' is missing")
    value = doc[key]
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        wanted = " or ".join(_TYPE_NAMES[t] for t in types)
        raise DataError(f"{source}: field '{name}' must be {wanted}, got {value!r}"[:300])
    return value


def _object(doc: Any, source: str, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise DataError(f"{source}: field '{where}' must be an object, got {doc!r}"[:300])
    return doc


def _list(doc: Any, source: str, where: str) -> list[Any]:
    if not isinstance(doc, list):
        raise DataError(f"{source}: field '{where}' must be a list, got {doc!r}"[:300])
    return doc


@dataclass
class TokenizerEntry:
    """The tokenizer that made the shards, saved beside them."""

    name: str  # as given to prepare: a hub name or a directory
    dir: str  # its saved files, relative to the prepared directory
    vocab_size: int
    eot_token_id: int

    @classmethod
    def from_dict(cls, doc: Any, source: str, where: str = "tokenizer") -> TokenizerEntry:
        doc = _object(doc, source, where)
        return cls(_get(doc, "name", TEXT, source, where), _get(doc, "dir", TEXT, source, where),
                   _get(doc, "vocab_size", INT, source, where), _get(doc, "eot_token_id", INT, source, where))


@dataclass
class Shard:
    file: str
    tokens: int
    sha256: str

    @classmethod
    def from_dict(cls, doc: Any, source: str, where: str) -> Shard:
        doc = _object(doc, source, where)
        return cls(_get(doc, "file", TEXT, source, where), _get(doc, "tokens", INT, source, where),
                   _get(doc, "sha256", TEXT, source, where))


@dataclass
class Split:
    documents: int
    tokens: int
    shards: list[Shard]

    @classmethod
    def from_dict(cls, doc: Any, source: str, where: str) -> Split:
        doc = _object(doc, source, where)
        shards = _list(_get(doc, "shards", (list,), source, where), source, f"{where}.shards")
        return cls(_get(doc, "documents", INT, source, where), _get(doc, "tokens", INT, source, where),
                   [Shard.from_dict(s, source, f"{where}.shards[{i}]") for i, s in enumerate(shards)])


@dataclass
class DataInput:
    """A file prepare read: a local path, or for a corpus from the Hub an hf://datasets/REPO@COMMIT/... one."""

    path: str
    bytes: int
    sha256: str | None  # None: a Hub file stored without LFS, whose listing gives no sha256
    documents: int

    @classmethod
    def from_dict(cls, doc: Any, source: str, where: str) -> DataInput:
        doc = _object(doc, source, where)
        return cls(_get(doc, "path", TEXT, source, where), _get(doc, "bytes", INT, source, where),
                   _get(doc, "sha256", (str, type(None)), source, where),
                   _get(doc, "documents", INT, source, where))


@dataclass
class HubDataset:
    """Where a corpus streamed from the Hub came from (gpt2.data.corpora), and how much of it was used."""

    name: str
    repo: str
    revision: str
    commit: str
    partial: bool  # the Hub's parquet conversion holds only part of the dataset
    files_used: int
    files_in_corpus: int
    max_tokens: int | None

    @classmethod
    def from_dict(cls, doc: Any, source: str, where: str = "dataset") -> HubDataset:
        doc = _object(doc, source, where)
        texts = [_get(doc, k, TEXT, source, where) for k in ("name", "repo", "revision", "commit")]
        return cls(*texts, _get(doc, "partial", FLAG, source, where), _get(doc, "files_used", INT, source, where),
                   _get(doc, "files_in_corpus", INT, source, where),
                   _get(doc, "max_tokens", (int, type(None)), source, where))


@dataclass
class Manifest:
    """A prepared directory's manifest.json; `to_dict` is the document as the writers write it."""

    tokenizer: TokenizerEntry
    dtype: str  # of the shards' token ids: uint16, or uint32 for vocabularies over 65,536 ids
    seed: int  # of the train/val split
    val_fraction: float
    txt_split: str | None  # how text files were cut into documents (None: a corpus from the Hub)
    shard_tokens: int
    splits: dict[str, Split]  # "train", "val"
    inputs: list[DataInput]
    dataset: HubDataset | None = None  # only for a corpus from the Hub; left out of the JSON otherwise
    version: int = VERSION

    def to_dict(self) -> dict[str, Any]:
        doc = {"format": FORMAT, "version": self.version, **asdict(self)}  # format and version first
        if self.dataset is None:
            del doc["dataset"]
        return doc

    @classmethod
    def from_dict(cls, doc: Any, source: str = MANIFEST) -> Manifest:
        doc = _object(doc, source, "")
        if doc.get("format") != FORMAT:
            raise DataError(f"{source}: field 'format' must be {FORMAT!r}, got {doc.get('format')!r}; is this "
                            "the manifest.json of `gpt2 prepare`?")
        if _get(doc, "version", INT, source, "") != VERSION:
            raise DataError(f"{source}: field 'version' must be {VERSION}, got {doc['version']!r}")
        return cls(  # checked in the order the writers write the fields
            tokenizer=TokenizerEntry.from_dict(_get(doc, "tokenizer", (dict,), source, ""), source),
            dtype=_get(doc, "dtype", TEXT, source, ""), seed=_get(doc, "seed", INT, source, ""),
            val_fraction=_get(doc, "val_fraction", NUMBER, source, ""),
            txt_split=_get(doc, "txt_split", (str, type(None)), source, ""),
            shard_tokens=_get(doc, "shard_tokens", INT, source, ""),
            splits=_splits(_get(doc, "splits", (dict,), source, ""), source),
            inputs=[DataInput.from_dict(v, source, f"inputs[{i}]")
                    for i, v in enumerate(_get(doc, "inputs", (list,), source, ""))],
            dataset=HubDataset.from_dict(doc["dataset"], source) if "dataset" in doc else None,
        )


def _splits(doc: dict[str, Any], source: str) -> dict[str, Split]:
    for split in SPLITS:
        _get(doc, split, (dict,), source, "splits")
    return {s: Split.from_dict(v, source, f"splits.{s}") for s, v in doc.items()}


def read_manifest(path: str | os.PathLike) -> Manifest:
    """The manifest of prepared data: `path` is the prepared directory or its manifest.json. Errors name the
    file and the field."""
    path = Path(path)
    if path.name == MANIFEST and not path.is_dir():
        path = path.parent
    return Manifest.from_dict(load_manifest(path), source=str(path / MANIFEST))
