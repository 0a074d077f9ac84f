"""Joining shards: shard i of n holds the i-th contiguous block of every split's ids
(`<dataset>.<split>.shard-i-of-n.jsonl`); `merge_shards` checks each is complete and writes the final files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from gpt2.errors import DataError
from gpt2.output_dataset.jsonl import read_samples, write_rows
from gpt2.output_dataset.spec import SPLITS, OutputSpec, manifest_path, split_path


def merge_shards(out_dir: str | os.PathLike, dataset: str, *, keep: bool = False) -> dict[str, Path]:
    """Join finished shards into `<dataset>.<split>.jsonl` (ids in order); remove the shard files unless
    `keep`. Every shard must be complete."""
    out_dir = Path(out_dir)
    spec, shards = _read_manifest(out_dir, dataset)
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
        write_rows(final, rows)
        merged[split] = final
    if not keep:
        for split in merged:
            for i in range(shards if shards > 1 else 0):
                split_path(out_dir, dataset, split, (i, shards)).unlink(missing_ok=True)
    return merged


def _read_manifest(out_dir: Path, dataset: str) -> tuple[OutputSpec, int]:
    """The spec of the run that wrote `dataset` under `out_dir`, and its number of shards."""
    path = manifest_path(out_dir, dataset)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        return OutputSpec.from_json(manifest), int(manifest.get("shards", 1))
    except FileNotFoundError:
        raise DataError(f"{path}: not found; is {dataset} the dataset name (e.g. small-117M-k40) and "
                        f"{out_dir} the --out of the run?") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: unreadable manifest ({e})") from None


def _check_complete(path: Path, expected: range, dataset: str, how: str = "") -> None:
    if not path.exists():
        raise DataError(f"{path}: missing; run `gpt2 outputs` for {dataset}{how} first")
    have = sorted(r["id"] for r in read_samples(path))
    if have != list(expected):
        raise DataError(f"{path}: has {len(have)} of its {len(expected)} samples; rerun `gpt2 outputs` with "
                        f"the same options{how} to finish it")
