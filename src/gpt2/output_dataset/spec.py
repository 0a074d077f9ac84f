"""What an output dataset is (`OutputSpec`), how its files are named, and its manifest on disk.

A dataset is named after the model and the sampling scheme as gpt-2-output-dataset names them:
`small-117M` (pure sampling), `small-117M-k40` (top-k 40), `small-117M-p0.96` (nucleus 0.96); each split is
`<dataset>.<split>.jsonl` (or a shard of it) beside `<dataset>.manifest.json`, which records the spec.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from gpt2.errors import DataError
from gpt2.files import atomic_write_text
from gpt2.sampling import GenerationConfig

SPLITS = ("train", "valid", "test")
FORMAT_VERSION = 1


# ---- the sampling scheme: 'pure', 'topk:K', 'topp:P' ----

def parse_sampling(spec: str) -> GenerationConfig:
    """'pure' (temperature 1, no truncation), 'topk:K' or 'topp:P', as a GenerationConfig holding the
    filter."""
    kind, _, value = spec.partition(":")
    try:
        if kind == "pure" and not value:
            return GenerationConfig()
        if kind == "topk" and int(value) >= 1:
            return GenerationConfig(top_k=int(value))
        if kind == "topp" and 0 < float(value) < 1:
            return GenerationConfig(top_p=float(value))
    except ValueError:
        pass
    raise DataError(f"sampling {spec!r}: expected 'pure', 'topk:K' (K >= 1, e.g. topk:40) or 'topp:P' "
                    "(0 < P < 1, e.g. topp:0.9)")


def sampling_name(config: GenerationConfig) -> str:
    """The scheme as `parse_sampling` reads it: 'pure', 'topk:40', 'topp:0.9'."""
    if config.top_k is not None:
        return f"topk:{config.top_k}"
    if config.top_p is not None:
        return f"topp:{config.top_p:g}"
    return "pure"


def sampling_suffix(config: GenerationConfig) -> str:
    """The suffix gpt-2-output-dataset gives the scheme's files: '', '-k40', '-p0.9'."""
    if config.top_k is not None:
        return f"-k{config.top_k}"
    if config.top_p is not None:
        return f"-p{config.top_p:g}"
    return ""


# ---- splits and shards ----

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


# ---- the spec ----

@dataclass
class OutputSpec:
    """What a dataset is: everything that decides its samples (batch size and shards do not).

    `sampling` names the scheme by its filter (top_k or top_p, see `parse_sampling`); the length,
    temperature and seed are this spec's own fields, and `generation_config` joins them."""

    name: str  # model name in file names, e.g. small-117M
    sampling: GenerationConfig
    splits: dict[str, int]
    max_new_tokens: int
    seed: int
    model: str = ""  # where the model came from, for the record
    temperature: float = 1.0
    watermark: dict[str, Any] | None = None  # the watermark's public settings (Watermark.describe()), no key

    @property
    def dataset(self) -> str:
        return f"{self.name}{sampling_suffix(self.sampling)}"

    @property
    def generation_config(self) -> GenerationConfig:
        """How every sample is drawn (each from its own stream (seed, id); the caller sets the EOS token)."""
        return replace(self.sampling, temperature=self.temperature, max_new_tokens=self.max_new_tokens,
                       seed=self.seed)

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
        d["sampling"] = sampling_name(self.sampling)
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


# ---- the manifest ----

def check_manifest(path: Path, spec: OutputSpec, shards: int, dtype: str) -> None:
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
