"""Fine-tuned detectors: a pretrained network with a classification head, trained on the texts themselves.

The two (classifier.py: a GPT-2 backbone; encoder.py: RoBERTa as OpenAI trained it) share the loop: every
epoch each text is a fresh random window, read in shuffled batches; after every epoch the valid loss and
accuracy are measured and the best epoch (accuracy, then loss) is kept; training stops after `patience`
epochs without improvement. Scoring reads batches of texts sorted by length, so
that little padding is computed. What differs (the network, its tokens and windows, the loss, what a logit
means, the optimizer and the files) each subclass says.
"""

from __future__ import annotations

import copy
import os
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn as nn
from tqdm.auto import tqdm

from gpt2.detection.detector import Detector, DetectorError, Valid, check_training_data
from gpt2.hardware import resolve_device
from gpt2.training.optim import param_groups


class FineTunedDetector(Detector):
    """A detector whose network is fine-tuned by `fit`; subclasses give the network and its reading."""

    human_label: ClassVar[int]
    machine_label: ClassVar[int]
    logit_shape: ClassVar[tuple[int, ...]]  # of one text's logits
    weights_dir: ClassVar[str]  # the saved network's subdirectory

    def __init__(self, *, max_tokens: int, lr: float, weight_decay: float, batch_size: int, max_epochs: int,
                 patience: int, seed: int, device: str) -> None:
        super().__init__()
        self.max_tokens, self.lr, self.weight_decay = max_tokens, lr, weight_decay
        self.batch_size, self.max_epochs, self.patience, self.seed = batch_size, max_epochs, patience, seed
        self.device = resolve_device(device)
        self.tokenizer: Any = None
        self.progress = False

    def config(self) -> dict[str, Any]:
        return {"max_tokens": self.max_tokens, "lr": self.lr, "weight_decay": self.weight_decay,
                "batch_size": self.batch_size, "max_epochs": self.max_epochs, "patience": self.patience,
                "seed": self.seed}

    # ---- what each detector says ----

    @property
    @abstractmethod
    def network(self) -> nn.Module | None:
        """Every trained weight as one module; None before `fit` or `load`."""

    @abstractmethod
    def _pretrained(self) -> str:
        """Where `fit` loads the network from."""

    @abstractmethod
    def _load(self, path: str | os.PathLike) -> None:
        """Load the network and its tokenizer from `path` onto the device."""

    @abstractmethod
    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's tokens, whole (windows are cut later)."""

    @abstractmethod
    def _window(self, ids: list[int], rng: np.random.Generator | None) -> list[int]:
        """The tokens the network reads: training (rng), a random window; scoring, the start."""

    @abstractmethod
    def _logits(self, rows: list[list[int]]) -> torch.Tensor:
        """Float32 logits of a batch of windows, shape (batch, *logit_shape)."""

    @abstractmethod
    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean loss of logits against integer labels."""

    @abstractmethod
    def _says_machine(self, z: np.ndarray) -> np.ndarray:
        """Which texts the logits call machine-written (for accuracy)."""

    @abstractmethod
    def _probability(self, z: np.ndarray) -> np.ndarray:
        """P(machine) from logits."""

    def _optimizer(self) -> torch.optim.Optimizer:
        """AdamW with weight decay on matrices only, as GPT-2's training (training.optim.param_groups)."""
        return torch.optim.AdamW(param_groups(self.network, self.weight_decay), lr=self.lr)

    # ---- training ----

    def fit(self, real: Sequence[str], fake: Sequence[str], valid: Valid | None = None) -> FineTunedDetector:
        check_training_data(real, fake)
        if valid is not None:
            check_training_data(*valid, what="valid")
        torch.manual_seed(self.seed)
        self._load(self._pretrained())
        rng = np.random.default_rng(self.seed)
        encoded, labels = self._encode(list(real) + list(fake)), self._labels(len(real), len(fake))
        checked = None if valid is None else (self._encode(list(valid[0]) + list(valid[1])),
                                             self._labels(len(valid[0]), len(valid[1])))
        optimizer = self._optimizer()
        history: list[dict[str, Any]] = []
        best, best_state, stale = None, None, 0
        for epoch in range(1, self.max_epochs + 1):
            record: dict[str, Any] = {"epoch": epoch,
                                      "train_loss": self._epoch(encoded, labels, optimizer, rng, epoch)}
            if checked is not None:
                record["valid_loss"], record["valid_accuracy"] = self._validate(*checked)
                key = (record["valid_accuracy"], -record["valid_loss"])
                if best is None or key > best:
                    best, stale, record["best"] = key, 0, True
                    best_state = copy.deepcopy(self.network.state_dict())
                else:
                    stale += 1
            history.append(record)
            if checked is not None and stale >= self.patience:
                break
        if best_state is not None:  # without valid data every epoch runs and the last one stays
            self.network.load_state_dict(best_state)
        best_epoch = max((h["epoch"] for h in history if h.get("best")), default=len(history))
        self.info = {"epochs": history, "best_epoch": best_epoch, "train_texts": len(encoded)}
        self.network.eval()
        return self

    def _labels(self, n_real: int, n_fake: int) -> np.ndarray:
        return np.r_[np.full(n_real, self.human_label), np.full(n_fake, self.machine_label)]

    def _epoch(self, encoded: list[list[int]], labels: np.ndarray, optimizer: torch.optim.Optimizer,
               rng: np.random.Generator, epoch: int) -> float:
        """One pass over the shuffled training texts; returns the mean loss."""
        self.network.train()
        order, total = rng.permutation(len(encoded)), 0.0
        for a in tqdm(range(0, len(order), self.batch_size), desc=f"epoch {epoch}", disable=not self.progress):
            batch = order[a : a + self.batch_size]
            logits = self._logits([self._window(encoded[i], rng) for i in batch])
            loss = self._loss(logits, torch.as_tensor(labels[batch], device=logits.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        return total / len(order)

    def _validate(self, encoded: list[list[int]], labels: np.ndarray) -> tuple[float, float]:
        """(valid loss, valid accuracy)."""
        z = self._predict_logits(encoded)
        loss = float(self._loss(torch.from_numpy(z), torch.from_numpy(labels)))
        return loss, float(np.mean(self._says_machine(z) == (labels == self.machine_label)))

    # ---- scoring ----

    @torch.inference_mode()
    def _predict_logits(self, encoded: list[list[int]]) -> np.ndarray:
        self.network.eval()
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        out = np.empty((len(encoded), *self.logit_shape))
        for a in range(0, len(order), self.batch_size):
            batch = order[a : a + self.batch_size]
            out[batch] = self._logits([self._window(encoded[i], None) for i in batch]).cpu().numpy()
        return out

    def score(self, texts: Sequence[str]) -> np.ndarray:
        self._trained("call fit() or load()")
        return self._probability(self._predict_logits(self._encode(texts)))

    def _trained(self, hint: str) -> None:
        if self.network is None:
            raise DetectorError(f"the {self.name} detector is not trained; {hint}")

    # ---- files ----

    @classmethod
    def _from_files(cls, directory: Path, config: dict[str, Any]) -> FineTunedDetector:
        det = cls(**config)
        det._load(directory / cls.weights_dir)
        det.network.eval()
        return det
