"""Documents → token shards: `prepare` and the `manifest.json` that describes what it wrote."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from gpt2.data.documents import TXT_SPLITS, expand_inputs, read_documents
from gpt2.errors import DataError
from gpt2.files import atomic_write_text, file_sha256, fsync_dir
from gpt2.tokenizer import Tokenizer

MANIFEST = "manifest.json"
TOKENIZER_DIR = "tokenizer"
PROGRESS = "progress.json"  # a corpus streamed from the Hub (gpt2.data.corpora): what is done so far
DOWNLOAD_DIR = ".download"  # ... and the raw files it is reading (this one, the next)
FORMAT = "gpt2-token-shards"
SPLITS = ("train", "val")
DEFAULT_SHARD_TOKENS = 100_000_000  # 200 MB of uint16: large enough for few files, small enough to copy
DEFAULT_VAL_FRACTION = 0.0005
_CHUNK_DOCS = 256  # documents per tokenizer task: amortises per-task cost, bounds memory
_CHUNK_CHARS = 4_000_000


def is_validation(doc_index: int, seed: int, val_fraction: float) -> bool:
    """Whether document `doc_index` belongs to the validation split: a hash, so stable and order-free."""
    digest = hashlib.blake2b(f"{seed}:{doc_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64 < val_fraction


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint16 if vocab_size <= 2**16 else np.uint32)


# ---- shards ----

class ShardWriter:
    """Appends one split's tokens to `{split}_{n:06d}.bin` files of `shard_tokens` tokens each, numbered on
    from the `shards` already written (a resumed run).

    Each shard is written under a temporary name and renamed once complete and fsynced, so a crash leaves
    at most a stray temporary file, never a short shard under its real name.
    """

    def __init__(self, directory: Path, split: str, shard_tokens: int, dtype: np.dtype,
                 shards: list[dict[str, Any]] | None = None) -> None:
        self.directory, self.split, self.shard_tokens, self.dtype = directory, split, shard_tokens, dtype
        self.shards: list[dict[str, Any]] = list(shards or [])
        self._file = None
        self._filled = 0
        self._hash = hashlib.sha256()

    def write(self, tokens: np.ndarray) -> None:
        while tokens.size:
            if self._file is None:
                self._file = open(self._tmp_path(), "wb")
            take = min(tokens.size, self.shard_tokens - self._filled)
            data = tokens[:take].tobytes()
            self._file.write(data)
            self._hash.update(data)
            self._filled += take
            tokens = tokens[take:]
            if self._filled == self.shard_tokens:
                self._finish_shard()

    def close(self) -> list[dict[str, Any]]:
        if self._filled:
            self._finish_shard()
        return self.shards

    def _tmp_path(self) -> Path:
        return self.directory / f".{self._name()}.tmp"

    def _name(self) -> str:
        return f"{self.split}_{len(self.shards):06d}.bin"

    def _finish_shard(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp_path(), self.directory / self._name())
        self.shards.append({"file": self._name(), "tokens": self._filled, "sha256": self._hash.hexdigest()})
        self._file, self._filled, self._hash = None, 0, hashlib.sha256()


class ShardSink:
    """Tokenized documents → the train/val shards: which split each document goes to, the separator before
    it, the counts. `state()` after `close()` is everything needed to continue later (`state=`)."""

    def __init__(self, out: Path, tok, shard_tokens: int, seed: int, val_fraction: float,
                 state: dict[str, Any] | None = None) -> None:
        self.dtype = token_dtype(tok.vocab_size)
        self.eot, self.seed, self.val_fraction = tok.eot_token_id, seed, val_fraction
        state = state or {}
        self.documents = dict(state.get("documents") or dict.fromkeys(SPLITS, 0))
        self.tokens = dict(state.get("tokens") or dict.fromkeys(SPLITS, 0))
        shards = state.get("shards") or {}
        self.writers = {s: ShardWriter(out, s, shard_tokens, self.dtype, shards.get(s)) for s in SPLITS}

    def add(self, ids: list[int]) -> None:
        index = sum(self.documents.values())
        split = "val" if is_validation(index, self.seed, self.val_fraction) else "train"
        tokens = np.empty(len(ids) + 1, dtype=self.dtype)
        tokens[0] = self.eot  # the separator goes first, so every document (the first too) starts fresh
        tokens[1:] = ids
        self.writers[split].write(tokens)
        self.documents[split] += 1
        self.tokens[split] += tokens.size

    def close(self) -> None:
        """Finish the shards being filled (short ones, if need be)."""
        for writer in self.writers.values():
            writer.close()

    def state(self) -> dict[str, Any]:
        return {"documents": dict(self.documents), "tokens": dict(self.tokens),
                "shards": {s: list(w.shards) for s, w in self.writers.items()}}


def encode_chunks(chunks: Iterator[list[str]], tok, workers: int
                   ) -> Iterator[tuple[list[str], list[list[int]]]]:
    """(texts, token ids) of each chunk, in order, encoded by `workers` threads. Threads, not processes:
    tiktoken releases the GIL while it encodes, and ids need no pickling. One chunk per task amortises the
    per-task cost that would dominate for short documents; at most 2 chunks per thread are in flight, so
    memory stays bounded however large the corpus is."""
    def encode(texts: list[str]) -> tuple[list[str], list[list[int]]]:
        return texts, [tok.encode(t) for t in texts]

    with ThreadPoolExecutor(max(1, workers)) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.submit(encode, chunk))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def chunked(docs: Iterator[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    chars = 0
    for doc in docs:
        chunk.append(doc)
        chars += len(doc)
        if len(chunk) >= _CHUNK_DOCS or chars >= _CHUNK_CHARS:
            yield chunk
            chunk, chars = [], 0
    if chunk:
        yield chunk


# ---- prepare ----

def prepare(
    inputs: Sequence[str | os.PathLike],
    tokenizer: str | os.PathLike,
    out: str | os.PathLike,
    *,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    txt_split: str = "file",
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Tokenize `inputs` into train/val token shards under `out`; returns the manifest.

    Memory stays bounded: documents stream through the tokenizer in chunks and shards are appended to as
    they go. Only a text file that is one document (txt_split="file") is read whole; split it by
    paragraph or line, or use .jsonl, for files larger than memory.
    """
    check_settings(val_fraction, shard_tokens)
    if txt_split not in TXT_SPLITS:
        raise DataError(f"txt_split must be one of {', '.join(TXT_SPLITS)}, got {txt_split!r}")
    files = expand_inputs(inputs)
    tok = Tokenizer.from_pretrained(tokenizer)  # before touching `out`: a wrong name changes nothing
    out = Path(out)
    created = not out.exists()
    clear_output(out, overwrite)
    try:
        manifest = _write(files, tok, str(tokenizer), out, shard_tokens=shard_tokens, txt_split=txt_split,
                          seed=seed, val_fraction=val_fraction, workers=workers, progress=progress)
    except BaseException:  # a bad input file, Ctrl-C: leave no half-written dataset behind
        _remove_partial(out, created)
        raise
    return manifest


def _write(files: list[Path], tok, tokenizer_name: str, out: Path, *, shard_tokens: int, txt_split: str,
           seed: int, val_fraction: float, workers: int | None, progress: bool) -> dict[str, Any]:
    """The tokenizer's files, the shards and (last) the manifest, in the empty directory `out`."""
    tok.save_pretrained(out / TOKENIZER_DIR)
    sink = ShardSink(out, tok, shard_tokens, seed, val_fraction)
    inputs: list[dict[str, Any]] = []
    workers = workers or os.cpu_count() or 1
    total_bytes = sum(p.stat().st_size for p in files)
    with tqdm(total=total_bytes, unit="B", unit_scale=True, desc="prepare", disable=not progress,
              file=sys.stderr, dynamic_ncols=True) as bar:
        docs = _documents(files, txt_split, inputs)
        for texts, ids in encode_chunks(chunked(docs), tok, workers):
            for text, doc_ids in zip(texts, ids, strict=True):
                sink.add(doc_ids)
                bar.update(len(text.encode("utf-8")))
            bar.set_postfix(docs=sum(sink.documents.values()), tokens=sum(sink.tokens.values()))
        bar.update(max(0, total_bytes - bar.n))

    if not sum(sink.documents.values()):
        names = ", ".join(str(p) for p in files[:5]) + (" ..." if len(files) > 5 else "")
        raise DataError(f"no documents in the inputs ({names}): every file is empty or whitespace")
    sink.close()
    manifest = manifest_for(tok, tokenizer_name, sink, inputs, seed=seed, val_fraction=val_fraction,
                            shard_tokens=shard_tokens, txt_split=txt_split)
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest


def _remove_partial(out: Path, created: bool) -> None:
    """Remove what a failed prepare wrote in `out` (and `out` itself if it made it)."""
    for p in out.iterdir():
        if _is_prepare_output(p):
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    if created and not any(out.iterdir()):
        out.rmdir()


def _documents(files: list[Path], txt_split: str, inputs: list[dict[str, Any]]) -> Iterator[str]:
    for path in files:
        count = 0
        for doc in read_documents(path, txt_split):
            count += 1
            yield doc
        inputs.append({"path": str(path), "bytes": path.stat().st_size, "sha256": file_sha256(path),
                       "documents": count})


def check_settings(val_fraction: float, shard_tokens: int) -> None:
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if shard_tokens <= 0:
        raise DataError(f"shard_tokens must be positive, got {shard_tokens}")


def clear_output(out: Path, overwrite: bool, keep: tuple[str, ...] = ()) -> None:
    """Make `out` an empty directory (but for the names in `keep`). A previous dataset there goes only with
    `overwrite` (manifest first, so a crash midway never leaves an old manifest describing new shards); the
    remains of a prepare that failed (no manifest, only shards and the tokenizer) go without asking; anything
    else stays."""
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    if out.is_dir():
        ours = [p for p in out.iterdir() if _is_prepare_output(p)]
        if len(ours) < len(list(out.iterdir())):
            raise DataError(f"{out}: directory holds files that `gpt2 prepare` did not write; choose a new "
                            "or empty --out")
        if (out / MANIFEST).exists() and not overwrite:
            raise DataError(f"{out}: holds a prepared dataset already; pass --overwrite to replace it or "
                            "choose a new --out")
        (out / MANIFEST).unlink(missing_ok=True)
        for p in ours:
            if p.name in keep:
                continue
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    fsync_dir(out)


def _is_prepare_output(path: Path) -> bool:
    name = path.name
    if name in (TOKENIZER_DIR, DOWNLOAD_DIR):
        return path.is_dir()
    return name in (MANIFEST, PROGRESS) or (name.endswith(".bin") and name.split("_")[0] in SPLITS) or \
        (name.startswith(".") and name.endswith(".bin.tmp"))


def manifest_for(tok, tokenizer_name: str, sink: ShardSink, inputs: list[dict[str, Any]], *, seed: int,
                 val_fraction: float, shard_tokens: int, txt_split: str | None,
                 dataset: dict[str, Any] | None = None) -> dict[str, Any]:
    """The manifest of a finished prepare: what `TokenDataset` reads, and where the tokens came from."""
    manifest = {
        "format": FORMAT,
        "version": 1,
        "tokenizer": {"name": str(tokenizer_name), "dir": TOKENIZER_DIR, "vocab_size": tok.vocab_size,
                      "eot_token_id": tok.eot_token_id},
        "dtype": sink.dtype.name,
        "seed": seed,
        "val_fraction": val_fraction,
        "txt_split": txt_split,
        "shard_tokens": shard_tokens,
        "splits": {s: {"documents": sink.documents[s], "tokens": sink.tokens[s],
                       "shards": sink.writers[s].shards} for s in SPLITS},
        "inputs": inputs,
    }
    if dataset is not None:
        manifest["dataset"] = dataset
    return manifest


def load_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise DataError(f"{directory}: no {MANIFEST}; prepare the data first with "
                        "`gpt2 prepare INPUTS --tokenizer NAME --out DIR`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"{path}: not a gpt2 prepare manifest (expected \"format\": \"{FORMAT}\")")
    return manifest
