"""The green-list watermark of Kirchenbauer et al. 2023 ("A Watermark for Large Language Models"): a logit
bias at sampling time, and the z-test that finds it in a token sequence.

At each step the previous `context_width` tokens (h in the paper; 1 by default) seed a pseudo-random
permutation of the vocabulary; its first int(gamma * V) ids are the step's green list, and `delta` is added
to their logits. Text sampled so holds more green tokens than the gamma of them that text written without
the key holds on average; `score_ids` counts them and reports z = (green - gamma T) / sqrt(T gamma (1 -
gamma)) over the T tokens scored, with the one-sided normal p-value.

The seeding hash, stable across versions and machines (`seeding`):

- "hmac-sha256" (the default): seed = the first 8 bytes, little-endian, of HMAC-SHA256(key, the context's
  ids each as an 8-byte little-endian signed integer), its top bit cleared; a CPU `torch.Generator` seeded
  with it draws `torch.randperm(V)`. Without the key the green lists cannot be told from random ones.
- "lefthash": the authors' default scheme of lm-watermarking (their "simple_1"/"lefthash":
  additive PRF, h = 1): seed = (salt * sum(context ids)) mod (2**64 - 1), the key being the decimal
  integer salt (theirs is 15485863). Public arithmetic: anyone who learns the salt can compute the green
  lists, and a small salt can be guessed. It is here so that `benchmarks/watermark_reference.py` can run
  their detector on our text; use "hmac-sha256" otherwise.

The key is a secret: it is never part of a repr, a manifest or a report (`describe()` gives the public
settings), and the commands read it from a file or $GPT2_WATERMARK_KEY, never from argv.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from gpt2.errors import GPT2Error

SEEDINGS = ("hmac-sha256", "lefthash")
ENV_KEY = "GPT2_WATERMARK_KEY"
MIN_KEY_BYTES = 8  # an HMAC key shorter than this is a password, not a key


class WatermarkError(GPT2Error, ValueError):
    """A watermark key or setting is missing or invalid (the message never holds the key)."""


@dataclass(frozen=True)
class Watermark:
    """The green-list watermark's settings and key. `key` is bytes (a str is UTF-8 encoded)."""

    key: bytes = field(repr=False)
    gamma: float = 0.25
    delta: float = 2.0
    context_width: int = 1
    seeding: str = "hmac-sha256"

    def __post_init__(self) -> None:
        key = self.key.encode() if isinstance(self.key, str) else self.key
        if not isinstance(key, bytes) or not key:
            raise WatermarkError("watermark key must be non-empty bytes or text")
        object.__setattr__(self, "key", key)
        g, d, h = self.gamma, self.delta, self.context_width
        _check(isinstance(g, int | float) and 0 < g < 1, f"watermark gamma must be in (0, 1); got {g!r}")
        _check(isinstance(d, int | float) and math.isfinite(d) and d >= 0,
               f"watermark delta must be a finite number >= 0; got {d!r}")
        _check(isinstance(h, int) and not isinstance(h, bool) and h >= 1,
               f"watermark context width must be an integer >= 1; got {h!r}")
        _check(self.seeding in SEEDINGS, f"watermark seeding must be one of {', '.join(SEEDINGS)}; "
               f"got {self.seeding!r}")
        if self.seeding == "hmac-sha256":
            _check(len(key) >= MIN_KEY_BYTES, f"watermark key must hold at least {MIN_KEY_BYTES} bytes; "
                   f"it holds {len(key)}")
        else:
            _check(key.isdigit(), "a lefthash watermark key is the authors' integer salt, in decimal digits")

    def describe(self) -> dict[str, Any]:
        """The public settings (no key): what manifests and reports record."""
        return {"gamma": self.gamma, "delta": self.delta, "context_width": self.context_width,
                "seeding": self.seeding}

    def seed(self, context: Sequence[int]) -> int:
        """The generator seed of the green list that follows `context` (its last `context_width` ids)."""
        context = [int(t) for t in context[-self.context_width:]]
        if self.seeding == "lefthash":
            return (int(self.key) * sum(context)) % (2**64 - 1)
        digest = hmac.new(self.key, struct.pack(f"<{len(context)}q", *context), hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "little") & (2**63 - 1)

    def greenlist(self, context: Sequence[int], vocab_size: int) -> torch.Tensor:
        """The green ids (int64, CPU) after `context`: the first int(gamma * V) of the seeded permutation."""
        return _greenlist(self.seed(context), vocab_size, int(vocab_size * self.gamma))

    def is_green(self, context: Sequence[int], token: int, vocab_size: int) -> bool:
        return bool((self.greenlist(context, vocab_size) == int(token)).any())

    def apply(self, logits: torch.Tensor, contexts: Sequence[Sequence[int]]) -> torch.Tensor:
        """`logits` (B, V) with `delta` added to each row's green ids; row i's context is `contexts[i]`."""
        mask = torch.zeros(logits.shape, dtype=torch.bool)
        for i, context in enumerate(contexts):
            mask[i, self.greenlist(context, logits.size(-1))] = True
        return logits + self.delta * mask.to(logits.device, logits.dtype)


@lru_cache(maxsize=1 << 16)
def _greenlist(seed: int, vocab_size: int, size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(vocab_size, generator=generator)[:size]


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise WatermarkError(message)


@dataclass(frozen=True)
class WatermarkScore:
    """One sequence's test: `scored` tokens (or unique (context, token) n-grams) of `tokens`, `green` of
    them green; z and the one-sided p-value P(Z >= z) under the null (no watermark)."""

    tokens: int
    scored: int
    green: int
    z: float
    p_value: float

    @property
    def green_fraction(self) -> float:
        return self.green / self.scored if self.scored else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "scored": self.scored, "green": self.green,
                "green_fraction": self.green_fraction, "z": self.z, "p_value": self.p_value}


def z_score(green: int, scored: int, gamma: float) -> float:
    """(green - gamma T) / sqrt(T gamma (1 - gamma)); 0 when nothing was scored."""
    if scored == 0:
        return 0.0
    return (green - gamma * scored) / math.sqrt(scored * gamma * (1 - gamma))


def p_value(z: float) -> float:
    """P(Z >= z) for a standard normal Z (one-sided)."""
    return 0.5 * math.erfc(z / math.sqrt(2))


def score_ids(ids: Sequence[int], watermark: Watermark, vocab_size: int, *,
              ignore_repeated: bool = True) -> WatermarkScore:
    """The z-test on token ids. Token t >= h is scored against the green list its h predecessors seed (the
    first h tokens only seed). With `ignore_repeated` (the authors' recommendation, their
    ignore_repeated_ngrams) each distinct (context, token) n-gram counts once: text that repeats itself
    would otherwise count the same green (or red) draw many times, and its z would not be normal."""
    ids = [int(t) for t in ids]
    h = watermark.context_width
    grams = [tuple(ids[i - h : i + 1]) for i in range(h, len(ids))]
    if ignore_repeated:
        grams = list(dict.fromkeys(grams))
    green = sum(watermark.is_green(g[:-1], g[-1], vocab_size) for g in grams)
    z = z_score(green, len(grams), watermark.gamma)
    return WatermarkScore(tokens=len(ids), scored=len(grams), green=green, z=z, p_value=p_value(z))


def read_key(key_file: str | os.PathLike | None = None, env: str = ENV_KEY) -> bytes:
    """The watermark key: the contents of `key_file` (surrounding whitespace stripped), else $GPT2_WATERMARK_KEY.
    Errors are one line that names the file or variable, never the key."""
    if key_file is not None:
        path = Path(key_file)
        try:
            key = path.read_bytes().strip()
        except FileNotFoundError:
            raise WatermarkError(f"watermark key file {path}: not found") from None
        except IsADirectoryError:
            raise WatermarkError(f"watermark key file {path}: is a directory, not a file") from None
        except OSError as e:
            raise WatermarkError(f"watermark key file {path}: unreadable ({e.strerror})") from None
        if not key:
            raise WatermarkError(f"watermark key file {path}: empty")
        return key
    key = os.environ.get(env, "").strip().encode()
    if not key:
        raise WatermarkError(f"no watermark key: pass --watermark-key-file FILE or set ${env}")
    return key
