"""A fine-tuned GPT-2 classifier: the analogue of OpenAI's RoBERTa detector, with a GPT-2 backbone.

A checkpoint's transformer reads `<|endoftext|>` + the text's first `max_tokens - 1` tokens (training:
a random window of a longer text, as OpenAI's detector/dataset.py does); its final hidden states
(`GPT.hidden_states`, after `ln_f`) are pooled, by the mean over the text's tokens or the last token's
state, and a linear head gives the logit of "machine". Everything is fine-tuned with AdamW on binary
cross-entropy; after every epoch the valid loss and accuracy are measured and the best epoch (accuracy,
then loss) is kept; training stops after `patience` epochs without improvement. Saved HF-style:
`backbone/` (checkpoint.save_pretrained, with its tokenizer) + `head.safetensors` (`score.weight`,
`score.bias`) + detector.json.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gpt2.detection.detector import Detector, DetectorError, Valid, check_training_data, train_epochs
from gpt2.hardware import resolve_device, resolve_dtype

BACKBONE_DIR = "backbone"
HEAD_FILE = "head.safetensors"
POOLINGS = ("mean", "last")


def pool(hidden: torch.Tensor, lengths: torch.Tensor, how: str) -> torch.Tensor:
    """(B, C) from right-padded (B, T, C): the mean over each row's first `lengths` positions, or the last."""
    if how == "last":
        return hidden[torch.arange(hidden.size(0), device=hidden.device), lengths - 1]
    mask = (torch.arange(hidden.size(1), device=hidden.device)[None] < lengths[:, None]).to(hidden.dtype)
    return (hidden * mask[..., None]).sum(1) / lengths[:, None].to(hidden.dtype)


class ClassifierDetector(Detector):
    name = "classifier"

    def __init__(self, model: str, *, pooling: str = "mean", max_tokens: int = 128, lr: float = 2e-5,
                 weight_decay: float = 0.01, batch_size: int = 16, max_epochs: int = 5, patience: int = 2,
                 seed: int = 0, device: str = "auto", dtype: str = "fp32") -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise DetectorError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.model_path, self.pooling, self.max_tokens = str(model), pooling, max_tokens
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.max_epochs, self.patience, self.seed = max_epochs, patience, seed
        self.device, self.dtype = resolve_device(device), dtype
        self.backbone = self.tokenizer = self.head = None
        self.progress = False

    def config(self) -> dict[str, Any]:
        return {"model": self.model_path, "pooling": self.pooling, "max_tokens": self.max_tokens,
                "lr": self.lr, "weight_decay": self.weight_decay, "batch_size": self.batch_size,
                "max_epochs": self.max_epochs,
                "patience": self.patience, "seed": self.seed, "dtype": self.dtype}

    def _load(self, path: str | Path) -> None:
        from gpt2.checkpoint import load_tokenizer
        from gpt2.model import GPT

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

    @torch.inference_mode()
    def _predict_logits(self, encoded: list[list[int]]) -> np.ndarray:
        self.backbone.eval()
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        out = np.empty(len(encoded))
        for a in range(0, len(order), self.batch_size):
            batch = order[a : a + self.batch_size]
            out[batch] = self._logits([self._window(encoded[i], None) for i in batch]).cpu().numpy()
        return out

    # ---- training ----

    def fit(self, real: Sequence[str], fake: Sequence[str], valid: Valid | None = None) -> ClassifierDetector:
        from tqdm.auto import tqdm

        check_training_data(real, fake)
        if valid is not None:
            check_training_data(*valid, what="valid")
        torch.manual_seed(self.seed)
        self._load(self.model_path)
        rng = np.random.default_rng(self.seed)
        encoded = self._encode(list(real) + list(fake))
        labels = np.r_[np.zeros(len(real)), np.ones(len(fake))]
        if valid is not None:
            v_encoded = self._encode(list(valid[0]) + list(valid[1]))
            v_labels = np.r_[np.zeros(len(valid[0])), np.ones(len(valid[1]))]
        params = list(self.backbone.parameters()) + list(self.head.parameters())
        decay = [p for p in params if p.dim() >= 2]
        no_decay = [p for p in params if p.dim() < 2]  # biases and LayerNorm gains, as GPT-2's training
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=self.lr)

        def train_epoch(epoch: int) -> float:
            self.backbone.train()
            order, total = rng.permutation(len(encoded)), 0.0
            for a in tqdm(range(0, len(order), self.batch_size), desc=f"epoch {epoch}", disable=not self.progress):
                batch = order[a : a + self.batch_size]
                logits = self._logits([self._window(encoded[i], rng) for i in batch])
                loss = F.binary_cross_entropy_with_logits(
                    logits, torch.tensor(labels[batch], dtype=torch.float32, device=logits.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(batch)
            return total / len(order)

        def validate() -> tuple[float, float]:
            z = self._predict_logits(v_encoded)
            return _bce(z, v_labels), float(np.mean((z > 0) == (v_labels == 1)))

        def restore(state) -> None:
            self.backbone.load_state_dict(state[0])
            self.head.load_state_dict(state[1])

        self.info = train_epochs(train_epoch, None if valid is None else validate,
                                 lambda: (copy.deepcopy(self.backbone.state_dict()),
                                          copy.deepcopy(self.head.state_dict())),
                                 restore, self.max_epochs, self.patience)
        self.info["train_texts"] = len(encoded)
        self.backbone.eval()
        return self

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if self.head is None:
            raise DetectorError("classifier is not trained; call fit() or load()")
        z = self._predict_logits(self._encode(texts))
        return 1.0 / (1.0 + np.exp(-z))

    # ---- files ----

    def _save_files(self, directory: Path) -> None:
        from safetensors.torch import save_file

        from gpt2.checkpoint import save_pretrained
        from gpt2.files import atomic_write

        if self.head is None:
            raise DetectorError("classifier is not trained; nothing to save")
        save_pretrained(self.backbone, directory / BACKBONE_DIR, tokenizer=self.tokenizer,
                        metadata={"detector": "classifier", "base": self.model_path})
        state = {f"score.{k}": v.detach().contiguous().cpu() for k, v in self.head.state_dict().items()}
        atomic_write(directory / HEAD_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))

    @classmethod
    def _from_files(cls, directory: Path, config: dict[str, Any]) -> ClassifierDetector:
        from safetensors.torch import load_file

        det = cls(**config)
        det._load(directory / BACKBONE_DIR)
        try:
            state = load_file(directory / HEAD_FILE)
        except (OSError, ValueError) as e:
            raise DetectorError(f"{directory / HEAD_FILE}: missing or unreadable ({e})") from None
        det.head.load_state_dict({k.removeprefix("score."): v.to(det.device) for k, v in state.items()})
        det.backbone.eval()
        return det


def _bce(z: np.ndarray, y: np.ndarray) -> float:
    """Mean binary cross-entropy of logits z, computed stably."""
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))) if len(z) else math.nan
