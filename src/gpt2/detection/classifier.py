"""A fine-tuned GPT-2 classifier: the analogue of OpenAI's RoBERTa detector, with a GPT-2 backbone.

A checkpoint's transformer reads `<|endoftext|>` + the text's first `max_tokens - 1` tokens (training:
a random window of a longer text, as OpenAI's detector/dataset.py does); its final hidden states
(`GPT.hidden_states`, after `ln_f`) are pooled, by the mean over the text's tokens or the last token's
state, and a linear head gives the logit of "machine". Everything is fine-tuned with AdamW on binary
cross-entropy, in finetuned.py's loop (best epoch on valid, early stopping). Saved HF-style:
`backbone/` (checkpoint.save_pretrained, with its tokenizer) + `head.safetensors` (`score.weight`,
`score.bias`) + detector.json.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from gpt2.checkpoint import load_tokenizer, save_pretrained
from gpt2.detection.detector import DetectorError
from gpt2.detection.finetuned import FineTunedDetector
from gpt2.files import atomic_write
from gpt2.hardware import resolve_dtype
from gpt2.model import GPT

BACKBONE_DIR = "backbone"
HEAD_FILE = "head.safetensors"
POOLINGS = ("mean", "last")


def pool(hidden: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """(B, C) from right-padded (B, T, C): the mean over each row's first `lengths` positions, or the last."""
    if how == "last":
        return hidden[torch.arange(hidden.size(0), device=hidden.device), lengths - 1]
    mask = (torch.arange(hidden.size(1), device=hidden.device)[None] < lengths[:, None]).to(hidden.dtype)
    return (hidden * mask[..., None]).sum(1) / lengths[:, None].to(hidden.dtype)


class ClassifierDetector(FineTunedDetector):
    name = "classifier"
    human_label, machine_label = 0, 1
    logit_shape = ()  # one logit: of "machine"
    weights_dir = BACKBONE_DIR

    def __init__(self, model: str, *, pooling: str = "mean", max_tokens: int = 128, lr: float = 2e-5,
                 weight_decay: float = 0.01, batch_size: int = 16, max_epochs: int = 5, patience: int = 2,
                 seed: int = 0, device: str = "auto", dtype: str = "fp32") -> None:
        super().__init__(max_tokens=max_tokens, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
                         max_epochs=max_epochs, patience=patience, seed=seed, device=device)
        if pooling not in POOLINGS:
            raise DetectorError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model_path, self.pooling, self.dtype = str(model), pooling, dtype
        self.backbone: GPT | None = None
        self.head: nn.Linear | None = None

    def config(self) -> dict[str, Any]:
        return {"model": self.model_path, "pooling": self.pooling, **super().config(), "dtype": self.dtype}

    @property
    def network(self) -> nn.Module | None:
        return None if self.head is None else nn.ModuleList([self.backbone, self.head])

    def _pretrained(self) -> str:
        return self.model_path

    def _load(self, path: str | os.PathLike) -> None:
        # The weights are trained, so `auto` means float32: AdamW's small updates vanish in bf16 weights.
        dtype = torch.float32 if self.dtype == "auto" else resolve_dtype(self.dtype, self.device)
        self.backbone = GPT.from_pretrained(path, device=self.device, dtype=dtype)
        self.tokenizer = load_tokenizer(path)
        self.max_tokens = min(self.max_tokens, self.backbone.config.n_positions)
        self.head = nn.Linear(self.backbone.config.n_embd, 1).to(self.device, dtype)

    # ---- batches ----

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [ids or [self.tokenizer.eot_token_id] for ids in self.tokenizer.encode_batch(list(texts))]

    def _window(self, ids: list[int], rng: np.random.Generator | None) -> list[int]:
        """`<|endoftext|>` + up to max_tokens - 1 tokens: training, from a random start; scoring, the first."""
        n = self.max_tokens - 1
        start = 0 if rng is None or len(ids) <= n else int(rng.integers(0, len(ids) - n + 1))
        return [self.tokenizer.eot_token_id, *ids[start : start + n]]

    def _logits(self, rows: list[list[int]]) -> torch.Tensor:
        width = max(map(len, rows))
        idx = torch.zeros(len(rows), width, dtype=torch.long)
        for r, ids in enumerate(rows):
            idx[r, : len(ids)] = torch.tensor(ids)
        lengths = torch.tensor([len(x) for x in rows], device=self.device)
        hidden = self.backbone.hidden_states(idx.to(self.device))
        return self.head(pool(hidden, lengths, self.pooling)).squeeze(-1).float()

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))

    def _says_machine(self, z: np.ndarray) -> np.ndarray:
        return z > 0

    def _probability(self, z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z))

    # ---- files ----

    def _save_files(self, directory: Path) -> None:
        self._trained("nothing to save")
        save_pretrained(self.backbone, directory / BACKBONE_DIR, tokenizer=self.tokenizer,
                        metadata={"detector": "classifier", "base": self.model_path})
        state = {f"score.{k}": v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()}
        atomic_write(directory / HEAD_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))

    @classmethod
    def _from_files(cls, directory: Path, config: dict[str, Any]) -> ClassifierDetector:
        det = super()._from_files(directory, config)
        try:
            state = load_file(directory / HEAD_FILE)
        except (OSError, ValueError) as e:
            raise DetectorError(f"{directory / HEAD_FILE}: missing or unreadable ({e})") from None
        det.head.load_state_dict({k.removeprefix("score."): v.to(det.device) for k, v in state.items()})
        return det
