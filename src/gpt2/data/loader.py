"""Token shards → batches: the split as one memory-mapped stream, and the deterministic batch loader."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from gpt2.data.shards import MANIFEST, SPLITS, load_manifest
from gpt2.errors import DataError


class TokenDataset:
    """One split of a prepared directory, read as a single token stream over its memory-mapped shards."""

    def __init__(self, directory: str | os.PathLike, split: str = "train") -> None:
        if split not in SPLITS:
            raise DataError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        self.directory = Path(directory)
        self.split = split
        self.manifest = load_manifest(directory)
        self.dtype = np.dtype(self.manifest["dtype"])
        self.shards = [self._open(s) for s in self.manifest["splits"][split]["shards"]]
        sizes = [len(s) for s in self.shards]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])

    def _open(self, info: dict[str, Any]) -> np.ndarray:
        path = self.directory / info["file"]
        if not path.is_file():
            raise DataError(f"{path}: shard listed in {MANIFEST} is missing")
        expected = info["tokens"] * self.dtype.itemsize
        if path.stat().st_size != expected:
            raise DataError(f"{path}: {path.stat().st_size} bytes, {MANIFEST} says {expected}; the shard is "
                            "truncated or from another run: prepare the data again")
        return np.memmap(path, dtype=self.dtype, mode="r")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def tokenizer_dir(self) -> Path:
        return self.directory / self.manifest["tokenizer"]["dir"]

    def read(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) of the stream as int64, crossing shard boundaries as needed."""
        out = np.empty(length, dtype=np.int64)
        filled = 0
        shard = int(np.searchsorted(self.offsets, start, side="right")) - 1
        while filled < length:
            begin = start + filled - int(self.offsets[shard])
            piece = self.shards[shard][begin : begin + length - filled]
            out[filled : filled + piece.size] = piece
            filled += piece.size
            shard += 1
        return out

    def documents(self) -> Iterator[np.ndarray]:
        """Each document's tokens (end-of-text separators removed), in order; for checks and small data."""
        eot = self.manifest["tokenizer"]["eot_token_id"]
        tokens = self.read(0, len(self))
        starts = np.flatnonzero(tokens == eot)
        for a, b in zip(starts, [*starts[1:], len(tokens)], strict=True):
            yield tokens[a + 1 : b]


class BatchLoader:
    """Batches of (inputs, targets) windows, deterministic given (seed, position, rank).

    The stream is cut into windows of `seq_len + 1` tokens (consecutive windows share one token, the last
    target of one being the first input of the next). Each epoch visits every window once, in an order and
    at a start phase drawn from a generator seeded by (seed, epoch). Windows are numbered globally; an
    optimizer step takes the next `batch_size * grad_accum * world_size` of them, micro-batch `m` of rank
    `r` holding block `m * world_size + r`. So the ranks see disjoint data, and one process accumulating
    over N micro-batches sees exactly what N processes see in one each. The whole state is `position`, the
    number of windows consumed: `state_dict()` is a small dict that restores the exact sequence.
    """

    def __init__(self, dataset: TokenDataset, batch_size: int, seq_len: int, *, seed: int = 0,
                 grad_accum: int = 1, rank: int = 0, world_size: int = 1) -> None:
        if len(dataset) < seq_len + 1:
            raise DataError(
                f"{dataset.directory}: the {dataset.split} split has {len(dataset)} tokens, fewer than "
                f"seq_len + 1 = {seq_len + 1}; use a shorter --seq-len or more data"
            )
        self.dataset, self.batch_size, self.seq_len, self.seed = dataset, batch_size, seq_len, seed
        self.grad_accum, self.rank, self.world_size = grad_accum, rank, world_size
        self.windows_per_epoch = (len(dataset) - 1) // seq_len
        self.position = 0  # global windows consumed by completed steps
        self._micro = 0
        self._epoch_cache: dict[int, tuple[int, np.ndarray]] = {}

    @property
    def windows_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.world_size

    @property
    def epoch(self) -> float:
        return self.position / self.windows_per_epoch

    def next_batch(self) -> tuple[np.ndarray, np.ndarray]:
        """This rank's next micro-batch: inputs and targets, each (batch_size, seq_len) int64."""
        block = self._micro * self.world_size + self.rank
        first = self.position + block * self.batch_size
        windows = np.stack([self._window(k) for k in range(first, first + self.batch_size)])
        self._micro += 1
        if self._micro == self.grad_accum:
            self._micro = 0
            self.position += self.windows_per_step
        return windows[:, :-1], windows[:, 1:]

    def _window(self, k: int) -> np.ndarray:
        epoch, i = divmod(k, self.windows_per_epoch)
        phase, order = self._epoch(epoch)
        return self.dataset.read(phase + int(order[i]) * self.seq_len, self.seq_len + 1)

    def _epoch(self, epoch: int) -> tuple[int, np.ndarray]:
        if epoch not in self._epoch_cache:
            rng = np.random.default_rng([self.seed, epoch])
            slack = len(self.dataset) - 1 - self.windows_per_epoch * self.seq_len  # in [0, seq_len)
            phase = int(rng.integers(0, slack + 1))
            self._epoch_cache = {epoch: (phase, rng.permutation(self.windows_per_epoch))}
        return self._epoch_cache[epoch]

    def state_dict(self) -> dict[str, int]:
        if self._micro:
            raise RuntimeError("loader state is only defined between optimizer steps")
        return {"position": self.position, "seed": self.seed, "seq_len": self.seq_len,
                "tokens": len(self.dataset)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["tokens"] != len(self.dataset) or state["seq_len"] != self.seq_len:
            raise DataError(
                f"{self.dataset.directory}: the checkpoint's loader saw {state['tokens']} tokens with "
                f"seq_len {state['seq_len']}; now {len(self.dataset)} with {self.seq_len}. Resume with the "
                "same data and --seq-len"
            )
        self.seed, self.position, self._micro = state["seed"], state["position"], 0


def eval_batches(dataset: TokenDataset, batch_size: int, seq_len: int, max_tokens: int, *,
                 rank: int = 0, world_size: int = 1) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The same held-out windows every time: the first `max_tokens // seq_len` (at least one) windows of
    the stream in order, dealt round-robin to ranks."""
    n = min((len(dataset) - 1) // seq_len, max(1, max_tokens // seq_len))
    mine = list(range(rank, n, world_size))
    for i in range(0, len(mine), batch_size):
        windows = np.stack([dataset.read(k * seq_len, seq_len + 1) for k in mine[i : i + batch_size]])
        yield windows[:, :-1], windows[:, 1:]
