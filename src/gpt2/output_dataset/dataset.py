"""The output dataset: unconditional samples in gpt-2-output-dataset's jsonl schema, and its human side.

    from gpt2.output_dataset import OutputSpec, generate_outputs
    spec = OutputSpec(name="small-117M", sampling=parse_sampling("topk:40"), splits=parse_splits("8:1:1"),
                      max_new_tokens=256, seed=0)
    generate_outputs(model, tokenizer, spec, "data/outputs")   # small-117M-k40.{train,valid,test}.jsonl

Each line is `{"id", "ended", "length", "text"}` as in OpenAI's files: `id` is the sample's index, counted
across the splits in the order train, valid, test (the originals' valid ids also start after the train
ids); `ended` says the sample stopped at <|endoftext|> rather than at `max_new_tokens`; `length` is its
number of tokens (the <|endoftext|> not counted). Every sample starts from <|endoftext|>, as the
originals do, and its randomness is a function of (seed, id) only: sample `id` is exactly sample `id` of
`gpt2 generate --seed SEED --num-samples N ""` with the same filters.

Runs are resumable: lines are appended and flushed batch by batch; a rerun reads the ids already written
(dropping a trailing partial line from a killed run) and generates only the missing ones, which, since a
sample depends only on (seed, id), gives the same files as an uninterrupted run. Work can be split into
shards (`shard=(i, n)`, or torchrun's RANK/WORLD_SIZE): shard i writes `<dataset>.<split>.shard-i-of-n.jsonl`
holding the i-th contiguous block of every split's ids, and `merge_shards` joins them into the final files.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gpt2.errors import DataError
from gpt2.files import atomic_write, atomic_write_text

SPLITS = ("train", "valid", "test")
FORMAT_VERSION = 1
HUMAN_NAME = "webtext"  # the human side's file prefix, as in gpt-2-output-dataset


# ---- options ----

@dataclass(frozen=True)
class Sampling:
    """A sampling scheme and the suffix gpt-2-output-dataset gives its files ('', '-k40', '-p0.9')."""

    top_k: int | None = None
    top_p: float | None = None

    @property
    def suffix(self) -> str:
        if self.top_k is not None:
            return f"-k{self.top_k}"
        if self.top_p is not None:
            return f"-p{self.top_p:g}"
        return ""

    @property
    def spec(self) -> str:
        if self.top_k is not None:
            return f"topk:{self.top_k}"
        if self.top_p is not None:
            return f"topp:{self.top_p:g}"
        return "pure"


def parse_sampling(spec: str) -> Sampling:
    """'pure' (temperature 1, no truncation), 'topk:K' or 'topp:P'."""
    kind, _, value = spec.partition(":")
    try:
        if kind == "pure" and not value:
            return Sampling()
        if kind == "topk" and int(value) >= 1:
            return Sampling(top_k=int(value))
        if kind == "topp" and 0 < float(value) < 1:
            return Sampling(top_p=float(value))
    except ValueError:
        pass
    raise DataError(f"sampling {spec!r}: expected 'pure', 'topk:K' (K >= 1, e.g. topk:40) or 'topp:P' "
                    "(0 < P < 1, e.g. topp:0.9)")


def parse_splits(spec: str, n: int | None = None) -> dict[str, int]:
    """Sample counts per split from 'train:valid:test' counts ('250000:5000:5000') or fractions
    ('0.9:0.05:0.05', or any parts summing to 1 such as '1:0:0'; these need `n` and are rounded by largest
    remainder so that they sum to n). One or two parts
    name train (and valid) only. Counts that do not sum to a given `n` are an error."""
    parts = spec.split(":")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise DataError(f"split {spec!r}: expected 1 to 3 numbers 'train:valid:test', e.g. 0.9:0.05:0.05 "
                        "or 1000:100:100")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise DataError(f"split {spec!r}: {parts} are not all numbers") from None
    if any(v < 0 for v in values):
        raise DataError(f"split {spec!r}: parts must be >= 0")
    if all(v.is_integer() for v in values) and sum(values) != 1:  # counts ('1:0:0' is a fraction)
        counts = [int(v) for v in values]
        if n is not None and sum(counts) != n:
            raise DataError(f"split {spec!r} adds up to {sum(counts)} samples but --n is {n}; drop --n or "
                            "give fractions")
    else:
        if abs(sum(values) - 1) > 1e-6:
            raise DataError(f"split {spec!r}: fractions must sum to 1, they sum to {sum(values):g}")
        if n is None:
            raise DataError(f"split {spec!r} is fractions; give the total number of samples (--n)")
        exact = [v * n for v in values]
        counts = [int(x) for x in exact]
        for i in sorted(range(len(exact)), key=lambda i: counts[i] - exact[i])[: n - sum(counts)]:
            counts[i] += 1
    return dict(zip(SPLITS, counts, strict=False))


def parse_shard(spec: str | None, env: dict[str, str] | None = None) -> tuple[int, int]:
    """(index, count) from 'i/n', else from torchrun's RANK and WORLD_SIZE, else (0, 1)."""
    env = os.environ if env is None else env
    if spec is None:
        if "RANK" in env and "WORLD_SIZE" in env:
            spec = f"{env['RANK']}/{env['WORLD_SIZE']}"
        else:
            return 0, 1
    m = re.fullmatch(r"(\d+)/(\d+)", spec.strip())
    if not m or not int(m[1]) < int(m[2]):
        raise DataError(f"shard {spec!r}: expected 'i/n' with 0 <= i < n, e.g. 0/4")
    return int(m[1]), int(m[2])


@dataclass
class OutputSpec:
    """What a dataset is: everything that decides its samples (batch size and shards do not)."""

    name: str  # model name in file names, e.g. small-117M
    sampling: Sampling
    splits: dict[str, int]
    max_new_tokens: int
    seed: int
    model: str = ""  # where the model came from, for the record
    temperature: float = 1.0

    @property
    def dataset(self) -> str:
        return f"{self.name}{self.sampling.suffix}"

    def id_range(self, split: str) -> range:
        start = 0
        for s in SPLITS:
            if s == split:
                return range(start, start + self.splits.get(s, 0))
            start += self.splits.get(s, 0)
        raise KeyError(split)

    def shard_ids(self, split: str, shard: tuple[int, int]) -> range:
        """The i-th of n contiguous blocks of a split's ids (sizes differ by at most one)."""
        ids, (i, n) = self.id_range(split), shard
        return ids[len(ids) * i // n : len(ids) * (i + 1) // n]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["sampling"] = self.sampling.spec
        return {"format": FORMAT_VERSION, "dataset": self.dataset, **d}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> OutputSpec:
        d = {k: v for k, v in d.items() if k not in ("format", "dataset", "shards", "dtype")}
        return cls(**{**d, "sampling": parse_sampling(d["sampling"])})


def split_path(out_dir: str | os.PathLike, dataset: str, split: str, shard: tuple[int, int] = (0, 1)) -> Path:
    i, n = shard
    tail = f".shard-{i}-of-{n}" if n > 1 else ""
    return Path(out_dir) / f"{dataset}.{split}{tail}.jsonl"


def manifest_path(out_dir: str | os.PathLike, dataset: str) -> Path:
    return Path(out_dir) / f"{dataset}.manifest.json"


# ---- reading and recovering jsonl ----

def read_samples(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every row of an output-dataset jsonl file, checked against the schema (errors name file:line)."""
    rows, _, partial = _scan(Path(path), repair=False)
    if partial:
        raise DataError(f"{path}: the last line is incomplete (an interrupted run?); rerun the command "
                        "that wrote it to finish it")
    return rows


def _scan(path: Path, repair: bool) -> tuple[list[dict[str, Any]], int, bool]:
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


def _recover(path: Path, expected: range) -> set[int]:
    """Ids already in `path` (creating nothing); a trailing partial line is cut off. Ids outside
    `expected` or repeated mean the file belongs to another run: an error."""
    if not path.exists():
        return set()
    rows, _, _ = _scan(path, repair=True)
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


def _check_manifest(path: Path, spec: OutputSpec, shards: int, dtype: str) -> None:
    """Write the manifest, or check that an existing one describes the same dataset, sampled in the same
    dtype (bf16 and fp32 samples differ: a resumed run or another shard must not mix them)."""
    want = {**spec.to_json(), "shards": shards, "dtype": dtype}
    if path.exists():
        try:
            have = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise DataError(f"{path}: unreadable manifest ({e}); remove it to start over") from None
        if "dtype" not in have:  # written before the dtype was recorded
            want.pop("dtype")
        diff = sorted(k for k in set(want) | set(have) if k != "model" and want.get(k) != have.get(k))
        if diff:
            detail = ", ".join(f"{k}: {have.get(k)!r} there, {want.get(k)!r} now" for k in diff)
            raise DataError(f"{path}: this directory holds a different run of {spec.dataset} ({detail}); "
                            "use the same options to resume, or another --out")
        return
    atomic_write_text(path, json.dumps(want, indent=2) + "\n")


def existing_seed(out_dir: str | os.PathLike, dataset: str) -> int | None:
    """The seed of an earlier run of `dataset` in `out_dir` (so that a resume needs no --seed)."""
    try:
        return int(json.loads(manifest_path(out_dir, dataset).read_text(encoding="utf-8"))["seed"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


# ---- generating ----

@dataclass
class Progress:
    """Counts of a run, for the CLI's summary."""

    written: dict[str, int] = field(default_factory=dict)  # new samples per split
    existing: dict[str, int] = field(default_factory=dict)  # samples already there
    tokens: int = 0
    batch_size: int = 0  # samples per batch, as chosen


MAX_AUTO_BATCH = 64
AUTO_CACHE_BUDGET = 2 * 2**30  # bytes of KV cache an automatic CPU batch may fill


def auto_batch_size(model, max_new_tokens: int, budget_bytes: int | None = None) -> int:
    """Samples per batch for bulk sampling: as many as fit a KV cache of `budget_bytes` at full length, from
    1 to MAX_AUTO_BATCH. The default budget is fixed (2 GiB on CPU, a quarter of the GPU's total memory),
    not read from free memory, so that a rerun or a resumed run batches alike: a row computed in another
    batch shape can round differently (bfloat16 at batch 1). Wider batches keep the matrix products busier
    (124M, bf16, packed, 2 CPU cores, 256 tokens: batch 16 462 tokens/s, 32 605, 64 704)."""
    import torch

    c = model.config
    per_sample = 2 * c.n_layer * c.n_embd * (max_new_tokens + 1) * model.dtype.itemsize  # keys + values
    if budget_bytes is None:
        cuda = model.device.type == "cuda"
        budget_bytes = torch.cuda.get_device_properties(model.device).total_memory // 4 if cuda else AUTO_CACHE_BUDGET
    return max(1, min(MAX_AUTO_BATCH, budget_bytes // per_sample))


def generate_outputs(
    model,
    tokenizer,
    spec: OutputSpec,
    out_dir: str | os.PathLike,
    *,
    batch_size: int | None = None,
    shard: tuple[int, int] = (0, 1),
    progress: bool = False,
    on_batch: Callable[[str, list[int]], None] | None = None,
) -> Progress:
    """Write (or finish) this shard's part of `spec` under `out_dir`; returns what it did. `batch_size`
    None: `auto_batch_size`.

    `on_batch(split, ids)` runs after each batch is on disk (tests use it to interrupt a run)."""
    from tqdm.auto import tqdm

    n_pos = model.config.n_positions
    if not 1 <= spec.max_new_tokens < n_pos:
        raise DataError(f"max_new_tokens must be in [1, {n_pos - 1}] (the prompt <|endoftext|> takes one "
                        f"of the model's {n_pos} positions); got {spec.max_new_tokens}")
    if batch_size is None:
        batch_size = auto_batch_size(model, spec.max_new_tokens)
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}")
    if tokenizer.vocab_size != model.config.vocab_size:
        raise DataError(f"tokenizer has {tokenizer.vocab_size} ids but the model {model.config.vocab_size}; "
                        "use the tokenizer saved with the checkpoint")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    from gpt2.hardware import dtype_name

    _check_manifest(manifest_path(out_dir, spec.dataset), spec, shard[1], dtype_name(model.dtype))
    result = Progress(batch_size=batch_size)
    todo = _todo(spec, out_dir, shard, result)
    bar = tqdm(total=sum(map(len, todo.values())), desc=spec.dataset, unit="sample", disable=not progress)
    for split, ids in todo.items():
        result.written[split] = 0
        with open(split_path(out_dir, spec.dataset, split, shard), "ab") as f:
            for batch in _runs(ids, batch_size):
                rows = sample_rows(model, tokenizer, batch, spec)
                f.write(b"".join((json.dumps(r, ensure_ascii=False) + "\n").encode() for r in rows))
                f.flush()
                os.fsync(f.fileno())  # a batch is on disk before the next begins
                result.written[split] += len(rows)
                result.tokens += sum(r["length"] for r in rows)
                bar.update(len(rows))
                if on_batch is not None:
                    on_batch(split, batch)
    bar.close()
    return result


def _todo(spec: OutputSpec, out_dir: Path, shard: tuple[int, int], result: Progress) -> dict[str, list[int]]:
    """The sample ids each split of this shard still needs (what is on disk is recovered and counted in
    `result.existing`); every split file to write is created, which says "started"."""
    todo: dict[str, list[int]] = {}
    for split in SPLITS:
        ids = spec.shard_ids(split, shard)
        if spec.splits.get(split, 0) == 0:
            continue
        path = split_path(out_dir, spec.dataset, split, shard)
        if shard[1] > 1 and not path.exists() and split_path(out_dir, spec.dataset, split).exists():
            result.existing[split] = len(ids)  # already merged: nothing left for this shard
            continue
        done = _recover(path, ids)
        result.existing[split] = len(done)
        todo[split] = [i for i in ids if i not in done]
        path.touch()
    return todo


def _runs(ids: Sequence[int], size: int) -> Iterable[list[int]]:
    """Batches of at most `size` consecutive ids (a resumed run's missing ids are one run, in practice)."""
    batch: list[int] = []
    for i in ids:
        if batch and (len(batch) == size or i != batch[-1] + 1):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def sample_rows(model, tokenizer, ids: list[int], spec: OutputSpec) -> list[dict[str, Any]]:
    """Samples for consecutive `ids` in one batch, as dataset rows; sample `i` draws from the stream (seed, i)."""
    from gpt2.sampling import generate

    eot = tokenizer.eot_token_id
    samples = generate(model, [[eot]], max_new_tokens=spec.max_new_tokens, temperature=spec.temperature,
                       top_k=spec.sampling.top_k, top_p=spec.sampling.top_p, seed=spec.seed, eos_token_id=eot,
                       tokenizer=tokenizer, num_samples=len(ids), first_sample=ids[0])
    return [{"id": i, "ended": s.finish_reason == "eos", "length": len(s.tokens), "text": s.text}
            for i, s in zip(ids, samples, strict=True)]


# ---- shards ----

def merge_shards(out_dir: str | os.PathLike, dataset: str, *, keep: bool = False) -> dict[str, Path]:
    """Join finished shards into `<dataset>.<split>.jsonl` (ids in order); remove the shard files unless
    `keep`. Every shard must be complete."""
    out_dir = Path(out_dir)
    mpath = manifest_path(out_dir, dataset)
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        spec, shards = OutputSpec.from_json(manifest), int(manifest.get("shards", 1))
    except FileNotFoundError:
        raise DataError(f"{mpath}: not found; is {dataset} the dataset name (e.g. small-117M-k40) and "
                        f"{out_dir} the --out of the run?") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{mpath}: unreadable manifest ({e})") from None
    merged: dict[str, Path] = {}
    for split in SPLITS:
        if spec.splits.get(split, 0) == 0:
            continue
        final = split_path(out_dir, dataset, split)
        parts = [split_path(out_dir, dataset, split, (i, shards)) for i in range(shards)]
        if shards == 1 or (final.exists() and not any(p.exists() for p in parts)):
            _check_complete(final, spec.id_range(split), dataset)
            merged[split] = final
            continue
        rows: list[dict[str, Any]] = []
        for i, part in enumerate(parts):
            if not part.exists():
                raise DataError(f"{part}: missing; run shard {i}/{shards} (--shard {i}/{shards}) first")
            _check_complete(part, spec.shard_ids(split, (i, shards)), dataset, f" --shard {i}/{shards}")
            rows += read_samples(part)
        rows.sort(key=lambda r: r["id"])
        _write_rows(final, rows)
        merged[split] = final
    if not keep:
        for split in merged:
            for i in range(shards if shards > 1 else 0):
                split_path(out_dir, dataset, split, (i, shards)).unlink(missing_ok=True)
    return merged


def _check_complete(path: Path, expected: range, dataset: str, how: str = "") -> None:
    if not path.exists():
        raise DataError(f"{path}: missing; run `gpt2 outputs` for {dataset}{how} first")
    have = sorted(r["id"] for r in read_samples(path))
    if have != list(expected):
        raise DataError(f"{path}: has {len(have)} of its {len(expected)} samples; rerun `gpt2 outputs` with "
                        f"the same options{how} to finish it")


def _write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")

    atomic_write(path, write)


# ---- the human side ----

def human_chunks(documents: Iterable[str], tokenizer, max_tokens: int, mode: str = "first",
                 min_tokens: int = 1) -> Iterable[tuple[str, int, bool]]:
    """(text, length, ended) pieces of documents, each at most `max_tokens` tokens: the start of every
    document (mode 'first', like OpenAI's webtext files, which hold each document's first 1,024 tokens), or
    every consecutive piece (mode 'all'). `ended`: the piece reaches its document's end."""
    if mode not in ("first", "all"):
        raise DataError(f"human chunk mode must be 'first' or 'all', got {mode!r}")
    for doc in documents:
        ids = tokenizer.encode(doc)
        start = 0
        while start < len(ids):
            end = _utf8_boundary(tokenizer, ids, start, min(start + max_tokens, len(ids)))
            if end - start >= min_tokens:
                yield tokenizer.decode(ids[start:end]), end - start, end == len(ids)
            if mode == "first":
                break
            start = end


def _utf8_boundary(tokenizer, ids: list[int], start: int, end: int) -> int:
    """`end`, moved back (a few tokens at most) so that ids[start:end] does not cut a character."""
    for e in range(end, max(start, end - 4), -1):
        try:
            tokenizer.decode_bytes(ids[start:e]).decode("utf-8")
            return e
        except UnicodeDecodeError:
            continue
    return end


def write_human_side(
    files: Sequence[str | os.PathLike],
    tokenizer,
    splits: dict[str, int],
    out_dir: str | os.PathLike,
    *,
    max_tokens: int,
    mode: str = "first",
    txt_split: str = "file",
    name: str = HUMAN_NAME,
) -> dict[str, int]:
    """`<name>.<split>.jsonl` from a corpus: pieces of documents (see `human_chunks`) in corpus order, the
    first `splits['train']` to train, the next to valid, then test; ids count across splits as on the
    machine side. A corpus too small for every split fills them in order and says so in the counts."""
    from gpt2.data import expand_inputs, read_documents

    paths = expand_inputs(files)
    docs = (d for p in paths for d in read_documents(p, txt_split=txt_split))
    pieces = iter(human_chunks(docs, tokenizer, max_tokens, mode))
    counts: dict[str, int] = {}
    next_id = 0
    for split in SPLITS:
        want = splits.get(split, 0)
        if want == 0:
            continue
        rows = []
        for _, (text, length, ended) in zip(range(want), pieces, strict=False):
            rows.append({"id": next_id, "ended": ended, "length": length, "text": text})
            next_id += 1
        _write_rows(Path(out_dir) / f"{name}.{split}.jsonl", rows)
        counts[split] = len(rows)
    return counts
