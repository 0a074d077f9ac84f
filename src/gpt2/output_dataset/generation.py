"""Writing a dataset's samples: `generate_outputs` fills (or finishes) one shard of every split, batch by
batch, each batch on disk before the next begins; `auto_batch_size` picks the batch."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from gpt2.errors import DataError
from gpt2.hardware import dtype_name
from gpt2.output_dataset.jsonl import encode_rows, recover
from gpt2.output_dataset.spec import SPLITS, OutputSpec, check_manifest, manifest_path, split_path
from gpt2.sampling import Watermark, generate

MAX_AUTO_BATCH = 64
AUTO_CACHE_BUDGET = 2 * 2**30  # bytes of KV cache an automatic CPU batch may fill


@dataclass
class Progress:
    """Counts of a run, for the CLI's summary."""

    written: dict[str, int] = field(default_factory=dict)  # new samples per split
    existing: dict[str, int] = field(default_factory=dict)  # samples already there
    tokens: int = 0
    batch_size: int = 0  # samples per batch, as chosen


def auto_batch_size(model, max_new_tokens: int, budget_bytes: int | None = None) -> int:
    """Samples per batch for bulk sampling: as many as fit a KV cache of `budget_bytes` at full length, from
    1 to MAX_AUTO_BATCH. The default budget is fixed (2 GiB on CPU, a quarter of the GPU's total memory),
    not read from free memory, so that a rerun or a resumed run batches alike: a row computed in another
    batch shape can round differently (bfloat16 at batch 1). Wider batches keep the matrix products busier
    (124M, bf16, packed, 2 CPU cores, 256 tokens: batch 16 462 tokens/s, 32 605, 64 704)."""
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
    watermark: Watermark | None = None,
) -> Progress:
    """Write (or finish) this shard's part of `spec` under `out_dir`; returns what it did. `batch_size`
    None: `auto_batch_size`. `watermark` biases every sample; the manifest records its public settings
    (a resumed run must use the same ones), never its key.

    `on_batch(split, ids)` runs after each batch is on disk (tests use it to interrupt a run)."""
    batch_size = _check(model, tokenizer, spec, batch_size)
    if watermark is not None:
        spec = replace(spec, watermark=watermark.describe())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    check_manifest(manifest_path(out_dir, spec.dataset), spec, shard[1], dtype_name(model.dtype))
    result = Progress(batch_size=batch_size)
    todo = _todo(spec, out_dir, shard, result)
    bar = tqdm(total=sum(map(len, todo.values())), desc=spec.dataset, unit="sample", disable=not progress)
    for split, ids in todo.items():
        result.written[split] = 0
        with open(split_path(out_dir, spec.dataset, split, shard), "ab") as f:
            for batch in _runs(ids, batch_size):
                rows = sample_rows(model, tokenizer, batch, spec, watermark)
                f.write(encode_rows(rows))
                f.flush()
                os.fsync(f.fileno())  # a batch is on disk before the next begins
                result.written[split] += len(rows)
                result.tokens += sum(r["length"] for r in rows)
                bar.update(len(rows))
                if on_batch is not None:
                    on_batch(split, batch)
    bar.close()
    return result


def _check(model, tokenizer, spec: OutputSpec, batch_size: int | None) -> int:
    """The batch size to use, once the spec, the model and the tokenizer are known to fit together."""
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
    return batch_size


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
        done = recover(path, ids)
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


def sample_rows(model, tokenizer, ids: list[int], spec: OutputSpec,
                watermark: Watermark | None = None) -> list[dict[str, Any]]:
    """Samples for consecutive `ids` in one batch, as dataset rows; sample `i` draws from the stream (seed, i)."""
    eot = tokenizer.eot_token_id
    config = replace(spec.generation_config, eos_token_id=eot, num_return_sequences=len(ids),
                     watermark=watermark)
    samples = generate(model, [[eot]], config, tokenizer=tokenizer, first_sample=ids[0])
    return [{"id": i, "ended": s.finish_reason == "eos", "length": len(s.tokens), "text": s.text}
            for i, s in zip(ids, samples, strict=True)]
