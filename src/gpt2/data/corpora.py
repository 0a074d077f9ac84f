"""A pretraining corpus on the Hugging Face Hub → token shards, streamed (`gpt2 prepare --dataset NAME`).

    prepare_corpus("fineweb-edu", "gpt2", "data/fineweb-edu", max_tokens=1_000_000_000)

The corpus is never stored whole (FineWeb-Edu's 10B-token sample is 28 GB of parquet): its files are fetched
into OUT/.download/ (gpt2.data.download.hub_download: resumable, checked against the Hub's sha256), the next one
while the current one is read a row group at a time and tokenized on every core, and deleted once their
tokens are in the shards (at most two raw files on disk). After each file OUT/progress.json records what is
done, atomically; the same command run again after a stop (Ctrl-C, a lost connection, a full disk)
continues with the first file not done, dropping whatever the interrupted file had begun. The manifest,
the one `gpt2 prepare` writes (so `gpt2 train --data OUT` reads it), comes last. Documents go to train or
val by the same seeded hash of their index as in `prepare`.

Shards end at file boundaries (a file's last shard may be short): that is what makes a file the unit of
resumption, and the loader reads shards of any length.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpt2.data.download import first_on_hub, hub_commit, hub_download, hub_list
from gpt2.data.shards import (
    DEFAULT_SHARD_TOKENS,
    DEFAULT_VAL_FRACTION,
    DOWNLOAD_DIR,
    MANIFEST,
    PROGRESS,
    TOKENIZER_DIR,
    ShardSink,
    check_settings,
    chunked,
    clear_output,
    encode_chunks,
    manifest_for,
)
from gpt2.data.sources import CORPORA
from gpt2.errors import DataError
from gpt2.files import atomic_write_text
from gpt2.tokenizer import Tokenizer


def prepare_corpus(
    name: str,
    tokenizer: str | os.PathLike,
    out: str | os.PathLike,
    *,
    max_tokens: int | None = None,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    prefetch: bool = True,
) -> dict[str, Any]:
    """Stream corpus `name` (gpt2.data.sources.CORPORA) into train/val token shards under `out`, stopping after
    `max_tokens` tokens if given; returns the manifest. Resumes an interrupted run with the same settings.
    `prefetch=False` fetches each file only when its turn comes (for measuring what prefetching gains)."""

    if name not in CORPORA:
        raise DataError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    check_settings(val_fraction, shard_tokens)
    if max_tokens is not None and max_tokens < 1:
        raise DataError(f"max_tokens must be a positive integer, got {max_tokens}")
    corpus = CORPORA[name]
    tok = Tokenizer.from_pretrained(tokenizer)  # before touching `out`: a wrong name changes nothing
    out = Path(out)
    settings = {"dataset": name, "repo": corpus.repo, "column": corpus.column, "tokenizer": str(tokenizer),
                "tokenizer_sha256": _tokenizer_digest(tok), "seed": seed, "val_fraction": val_fraction,
                "shard_tokens": shard_tokens, "max_tokens": max_tokens}
    state = _resume_or_start(out, settings, overwrite)
    _pin_source(out, corpus, state)
    if not (out / TOKENIZER_DIR).is_dir():
        tok.save_pretrained(out / TOKENIZER_DIR)
    sink = ShardSink(out, tok, shard_tokens, seed, val_fraction, state["sink"])
    _drop_unrecorded_shards(out, sink)
    _stream(out, name, tok, sink, state, max_tokens=max_tokens, workers=workers, progress=progress,
            prefetch=prefetch)
    return _finish(out, tok, sink, state, corpus)


def _pin_source(out: Path, corpus, state: dict[str, Any]) -> None:
    """Fix which files, at which commit, on a fresh run, so that every resume reads the same version."""
    if state["source"] is None:
        state["source"] = _locate(corpus)
        atomic_write_text(out / PROGRESS, json.dumps(state, indent=1) + "\n")
    source = state["source"]
    if source["partial"]:
        warnings.warn(f"{corpus.repo} has no parquet files of its own; the Hub's conversion at "
                      f"{source['revision']} holds only part of it ({len(source['files'])} files)", stacklevel=3)


def _stream(out: Path, name: str, tok: Tokenizer, sink: ShardSink, state: dict[str, Any], *,
            max_tokens: int | None, workers: int | None, progress: bool, prefetch: bool) -> None:
    """Fetch, tokenize and drop the files not done yet, one at a time (the next fetched meanwhile), recording
    each finished file in progress.json; stops early once `max_tokens` are written."""
    corpus, source = CORPORA[name], state["source"]
    done = {f["path"] for f in state["files"]}
    todo = [f for f in source["files"] if f[0] not in done]
    fetch = _Prefetcher(lambda path, shown: hub_download(corpus.repo, path, out / DOWNLOAD_DIR,
                                                         revision=source["commit"], progress=progress and shown))
    with _Meter(source["files"], state["files"], sink, max_tokens, f"prepare {name}", progress) as meter:
        for k, (path, size, sha256) in enumerate(todo):
            if max_tokens is not None and sum(sink.tokens.values()) >= max_tokens:
                break
            local = fetch.get(path)
            if prefetch and k + 1 < len(todo) and max_tokens is None:  # with a budget, it may not be needed
                fetch.start(todo[k + 1][0])
            documents = _tokenize_file(local, corpus.column, tok, sink, workers, max_tokens, meter, size)
            sink.close()
            state["files"].append({"path": path, "bytes": size, "sha256": sha256, "documents": documents})
            state["sink"] = sink.state()
            atomic_write_text(out / PROGRESS, json.dumps(state, indent=1) + "\n")
            local.unlink()  # the raw file is in the shards now


def _locate(corpus) -> dict[str, Any]:
    """The corpus's parquet files at the first of its locations that has any, and the commit to read them at."""

    revision, files = first_on_hub([lambda r=revision, f=folder: (r, hub_list(corpus.repo, f, revision=r))
                                    for revision, folder in corpus.locations])
    # the viewer's conversion of a large dataset stops after a few GB, in "partial-<split>" folders
    partial = any("/partial-" in path for path, _, _ in files)
    return {"revision": revision, "commit": hub_commit(corpus.repo, files[0][0], revision),
            "files": [list(f) for f in files], "partial": partial}


def _tokenizer_digest(tok) -> str:
    """sha256 of the tokenizer's saved files: a resumed run must write the same ids as the run it continues."""
    digest = hashlib.sha256()
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(Path(tok.save_pretrained(tmp)).rglob("*")):
            if path.is_file():
                digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


class _Prefetcher:
    """Fetches the next file while the current one is tokenized, so the network and the cores work at the
    same time (at most two raw files on disk). A daemon thread: Ctrl-C does not wait for a 2 GB transfer,
    and the part it leaves is resumed by the next run."""

    def __init__(self, fetch) -> None:
        self.fetch, self.pending = fetch, None

    def start(self, path: str) -> None:
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["path"] = self.fetch(path, False)  # no second progress bar under the main one
            except BaseException as e:  # noqa: B036 (handed to the main thread, which raises it)
                box["error"] = e

        thread = threading.Thread(target=run, name=f"prefetch {path}", daemon=True)
        thread.start()
        self.pending = (path, thread, box)

    def get(self, path: str) -> Path:
        if self.pending is None or self.pending[0] != path:
            return self.fetch(path, True)
        _, thread, box = self.pending
        self.pending = None
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["path"]


class _Meter:
    """The progress bar: bytes of the corpus read or, with a token budget, tokens written (so its ETA is
    that of the budget, not of the whole corpus)."""

    def __init__(self, files, done, sink: ShardSink, max_tokens: int | None, desc: str, progress: bool) -> None:
        from tqdm import tqdm

        self.sink, self.by_tokens = sink, max_tokens is not None
        total, initial = ((max_tokens, sum(sink.tokens.values())) if self.by_tokens else
                          (sum(f[1] for f in files), sum(f["bytes"] for f in done)))
        self.bar = tqdm(total=total, initial=initial, unit="tok" if self.by_tokens else "B", unit_scale=True,
                        desc=desc, disable=not progress, file=sys.stderr, dynamic_ncols=True)

    def advance(self, nbytes: int) -> None:
        tokens = sum(self.sink.tokens.values())
        self.bar.update(min(tokens, self.bar.total) - self.bar.n if self.by_tokens else nbytes)
        self.bar.set_postfix(tokens=f"{tokens:,}")

    def __enter__(self) -> _Meter:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


def _tokenize_file(local: Path, column: str, tok, sink: ShardSink, workers: int | None, max_tokens: int | None,
                   meter: _Meter, size: int) -> int:
    """Append the documents of one parquet file to `sink` (up to the token budget); their number."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(local)
    except (OSError, ValueError) as e:
        raise DataError(f"{local}: not a readable parquet file ({e}); delete it to fetch it again") from None
    if column not in parquet.schema_arrow.names:
        raise DataError(f"{local}: no {column!r} column (it has {', '.join(parquet.schema_arrow.names)})")
    rows = max(1, parquet.metadata.num_rows)
    seen = [0]

    def texts() -> Iterator[str]:
        for batch in parquet.iter_batches(batch_size=1024, columns=[column]):
            seen[0] += batch.num_rows
            yield from (text for text in batch.column(0).to_pylist() if text)

    documents, shown = 0, 0
    for _, ids in encode_chunks(chunked(texts()), tok, workers or os.cpu_count() or 1):
        for doc_ids in ids:
            sink.add(doc_ids)
            documents += 1
            if max_tokens is not None and sum(sink.tokens.values()) >= max_tokens:
                meter.advance(size - shown)
                return documents
        now = size * seen[0] // rows
        meter.advance(now - shown)
        shown = now
    meter.advance(size - shown)
    return documents


def _resume_or_start(out: Path, settings: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """The progress of an interrupted run with these settings, or a fresh start in an empty `out`."""
    record = out / PROGRESS
    if record.is_file() and not (out / MANIFEST).exists() and not overwrite:
        try:
            state = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"{record}: unreadable ({e}); pass --overwrite to start again") from None
        if state.get("settings") != settings:
            before = state.get("settings") or {}
            changed = "; ".join(f"{k} was {before.get(k)!r}, now {v!r}" for k, v in settings.items()
                                if before.get(k) != v)
            raise DataError(f"{out}: holds an interrupted prepare with other settings ({changed}); run it again "
                            "as before to continue it, or pass --overwrite")
        return state
    # A first file stopped mid-download is continued, not fetched again (huggingface_hub resumes it there).
    clear_output(out, overwrite, keep=() if overwrite else (DOWNLOAD_DIR,))
    return {"settings": settings, "source": None, "files": [], "sink": None}


def _drop_unrecorded_shards(out: Path, sink: ShardSink) -> None:
    """Remove the shards an interrupted file had begun: they are not in the recorded state."""
    recorded = {shard["file"] for writer in sink.writers.values() for shard in writer.shards}
    for path in out.iterdir():
        if (path.suffix == ".bin" and path.name not in recorded) or path.name.endswith(".bin.tmp"):
            path.unlink()


def _finish(out: Path, tok, sink: ShardSink, state: dict[str, Any], corpus) -> dict[str, Any]:
    settings, source = state["settings"], state["source"]
    if not sum(sink.documents.values()):
        raise DataError(f"{corpus.repo}: no documents in its {corpus.column!r} column")
    dataset = {"name": corpus.name, "repo": corpus.repo, "revision": source["revision"], "commit": source["commit"],
               "partial": source["partial"], "files_used": len(state["files"]), "files_in_corpus": len(source["files"]),
               "max_tokens": settings["max_tokens"]}
    inputs = [{**f, "path": f"hf://datasets/{corpus.repo}@{source['commit']}/{f['path']}"} for f in state["files"]]
    manifest = manifest_for(tok, settings["tokenizer"], sink, inputs, seed=settings["seed"],
                            val_fraction=settings["val_fraction"], shard_tokens=settings["shard_tokens"],
                            txt_split=None, dataset=dataset)
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    (out / PROGRESS).unlink(missing_ok=True)
    shutil.rmtree(out / DOWNLOAD_DIR, ignore_errors=True)
    return manifest
