"""`WatermarkDetector`: the green-list watermark's z-test (sampling/watermark.py) behind the detector
interface, so it runs beside the content detectors (reports, `gpt2 detect robustness`).

It needs no training and no model weights: only the generator's tokenizer and vocabulary size (the green
lists permute the model's V ids) and the key. Texts are re-tokenized, so a token sequence that does not
survive decode + encode (rare with byte-level BPE) scores a little lower than the ids sampled.

`score` is sigmoid(z - z_threshold), so the default threshold 0.5 means z > z_threshold (4, as in the
paper); `statistics` gives z itself. The key is read from `key` (bytes), else `key_file`, else
$GPT2_WATERMARK_KEY; a saved detector records `key_file` (or nothing), never the key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpt2.checkpoint import load_config, load_tokenizer, resolve
from gpt2.detection.detector import Detector, Valid
from gpt2.sampling.watermark import Watermark, WatermarkScore, read_key, score_ids


class WatermarkDetector(Detector):
    name = "watermark"
    needs_training = False

    def __init__(self, model: str, *, key: bytes | str | None = None, key_file: str | os.PathLike | None = None,
                 gamma: float = 0.25, context_width: int = 1, seeding: str = "hmac-sha256",
                 ignore_repeated: bool = True, z_threshold: float = 4.0, max_tokens: int | None = None) -> None:
        super().__init__()
        self.model = str(model)
        self.key_file = None if key_file is None else str(key_file)
        secret = key if key is not None else read_key(self.key_file)
        self.watermark = Watermark(secret, gamma=gamma, delta=0.0, context_width=context_width, seeding=seeding)
        self.ignore_repeated, self.z_threshold, self.max_tokens = ignore_repeated, float(z_threshold), max_tokens
        self.progress = False
        self._tokenizer = None
        self._vocab_size: int | None = None

    def public(self) -> dict[str, Any]:
        """The settings a report may show (no key)."""
        w = self.watermark
        return {"gamma": w.gamma, "context_width": w.context_width, "seeding": w.seeding,
                "ignore_repeated": self.ignore_repeated, "z_threshold": self.z_threshold}

    def config(self) -> dict[str, Any]:
        return {"model": self.model, "key_file": self.key_file, "max_tokens": self.max_tokens, **self.public()}

    @classmethod
    def _from_files(cls, directory: Path, config: dict[str, Any]) -> Detector:
        config = {k: v for k, v in config.items() if k != "device"}  # loaders pass a device; none is used
        return cls(**config)

    def _vocab(self) -> tuple[Any, int]:
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.model)
            self._vocab_size = load_config(resolve(self.model)).vocab_size
        return self._tokenizer, self._vocab_size

    def test_ids(self, ids: Sequence[int]) -> WatermarkScore:
        _, vocab_size = self._vocab()
        ids = list(ids)[: self.max_tokens] if self.max_tokens else list(ids)
        return score_ids(ids, self.watermark, vocab_size, ignore_repeated=self.ignore_repeated)

    def test(self, text: str) -> WatermarkScore:
        tokenizer, _ = self._vocab()
        return self.test_ids(tokenizer.encode(text))

    def tests(self, texts: Sequence[str]) -> list[WatermarkScore]:
        return [self.test(t) for t in texts]

    def statistics(self, texts: Sequence[str]) -> np.ndarray:
        """z of each text."""
        return np.array([s.z for s in self.tests(texts)], dtype=np.float64)

    def fit(self, real: Sequence[str], fake: Sequence[str], valid: Valid | None = None) -> WatermarkDetector:
        """Nothing to learn: the test's threshold is z_threshold."""
        return self

    def score(self, texts: Sequence[str]) -> np.ndarray:
        z = self.statistics(texts) - self.z_threshold
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))
