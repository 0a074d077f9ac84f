"""A fine-tuned encoder (RoBERTa by default): the detector OpenAI released with GPT-2 1.5B, and its weights.

Training follows OpenAI's detector/train.py (Solaiman et al., 2019): `AutoModelForSequenceClassification`
with two labels in OpenAI's order (0 = machine, "fake"; 1 = human, "real"), Adam at 2e-5 without weight
decay, batches of 24, each text a random window of at most 128 tokens (of random length, at least 10, as
with its --random-sequence-length) between the tokenizer's special tokens. Scoring reads each text whole,
up to the encoder's context, as OpenAI's server does. The loop (best epoch on valid, early stopping) is
finetuned.py's.

`load_openai` turns OpenAI's released `detector-base.pt` / `detector-large.pt` (transformers 2.x's
RobertaForSequenceClassification) into such a detector: current transformers has no pooler in this model and
keeps `position_ids` as a buffer, so the old state dict fails to load as it is (openai/gpt-2-output-dataset
issues #28, #47); the pooler, which the classification head never reads, is dropped and the buffer rebuilt.

Any encoder that transformers' Auto classes load works as `backbone` (a hub id or a directory). transformers
is needed for this detector only: `pip install 'gpt2[detect]'`.
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

from gpt2.data.download import cache_path, download
from gpt2.detection.detector import DetectorError
from gpt2.detection.finetuned import FineTunedDetector
from gpt2.files import file_sha256

MACHINE, HUMAN = 0, 1  # OpenAI's label order: softmax(logits)[0] is P(fake), [1] is P(real)
ENCODER_DIR = "encoder"
OPENAI_URL = "https://openaipublic.azureedge.net/gpt-2/detector-models/v1/detector-{size}.pt"
OPENAI_BACKBONES = {"base": "roberta-base", "large": "roberta-large"}
MIN_TRAIN_TOKENS = 10  # OpenAI's min_sequence_length with --random-sequence-length


def transformers_module():
    """transformers, or a DetectorError that names the extra to install."""
    try:
        import transformers  # lazy: an optional dependency (gpt2[detect]), and seconds to import
    except ImportError:
        raise DetectorError("this detector runs on transformers, which is not installed; install it with "
                            "`pip install 'gpt2[detect]'` (or `pip install transformers`)") from None
    return transformers


class EncoderClassifierDetector(FineTunedDetector):
    name = "encoder-classifier"
    human_label, machine_label = HUMAN, MACHINE
    logit_shape = (2,)  # OpenAI's two labels
    weights_dir = ENCODER_DIR

    def __init__(self, backbone: str = "roberta-base", *, max_tokens: int = 128, lr: float = 2e-5,
                 weight_decay: float = 0.0, batch_size: int = 24, max_epochs: int = 5, patience: int = 2,
                 seed: int = 0, device: str = "auto") -> None:
        super().__init__(max_tokens=max_tokens, lr=lr, weight_decay=weight_decay, batch_size=batch_size,
                         max_epochs=max_epochs, patience=patience, seed=seed, device=device)
        self.backbone = str(backbone)
        self.model: nn.Module | None = None  # transformers' AutoModelForSequenceClassification

    def config(self) -> dict[str, Any]:
        return {"backbone": self.backbone, **super().config()}

    @property
    def network(self) -> nn.Module | None:
        return self.model

    def _pretrained(self) -> str:
        return self.backbone

    def _load(self, path: str | os.PathLike) -> None:
        t = transformers_module()
        try:
            self.tokenizer = t.AutoTokenizer.from_pretrained(str(path))
            self.model = t.AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=2)
        except (OSError, ValueError) as e:
            raise DetectorError(f"{path}: cannot load an encoder and its tokenizer with transformers' Auto "
                                f"classes ({type(e).__name__}: {str(e)[:200]})") from None
        self.model.to(self.device).eval()

    def _optimizer(self) -> torch.optim.Optimizer:
        """Adam, as OpenAI's detector/train.py (weight decay 0 unless asked, on every parameter)."""
        return torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

    @property
    def context(self) -> int:
        """Text tokens the encoder reads at once, its special tokens aside (510 for RoBERTa)."""
        limit = self.tokenizer.model_max_length
        if not 0 < limit < 1_000_000:  # "no limit" sentinel: take the position table's size
            offset = self.model.config.pad_token_id + 1 if self.model.config.model_type == "roberta" else 0
            limit = self.model.config.max_position_embeddings - offset
        return limit - len(self._specials)

    @property
    def _specials(self) -> list[int]:
        """The special tokens around a text (<s> ... </s>, [CLS] ... [SEP]): what an empty text encodes to."""
        return self.tokenizer.encode("", add_special_tokens=True)

    # ---- batches ----

    def _encode(self, texts: Sequence[str]) -> list[list[int]]:
        # whole texts (cut later, to a window or the context): verbose=False drops the warning that they are long
        return self.tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]

    def _window(self, ids: list[int], rng: np.random.Generator | None) -> list[int]:
        """Training (rng): a random window of random length up to max_tokens; scoring: the start, whole."""
        if rng is None:
            ids = ids[: self.context]
        else:
            longest = min(len(ids), self.max_tokens, self.context)
            n = int(rng.integers(min(MIN_TRAIN_TOKENS, longest), longest + 1)) if longest else 0
            start = int(rng.integers(0, len(ids) - n + 1))
            ids = ids[start : start + n]
        specials = self._specials  # one opens the text, the rest close it
        return specials[:1] + list(ids) + specials[1:]

    def _logits(self, rows: list[list[int]]) -> torch.Tensor:
        width = max(map(len, rows))
        idx = torch.full((len(rows), width), self.tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for r, ids in enumerate(rows):
            idx[r, : len(ids)], mask[r, : len(ids)] = torch.tensor(ids), 1
        return self.model(input_ids=idx.to(self.device), attention_mask=mask.to(self.device)).logits.float()

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    def _says_machine(self, z: np.ndarray) -> np.ndarray:
        return z.argmax(1) == MACHINE

    def _probability(self, z: np.ndarray) -> np.ndarray:
        """Softmax over the two labels, OpenAI's "fake" probability."""
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        return p[:, MACHINE] / p.sum(1)

    # ---- files ----

    def _save_files(self, directory: Path) -> None:
        self._trained("nothing to save")
        self.model.save_pretrained(directory / ENCODER_DIR)
        self.tokenizer.save_pretrained(directory / ENCODER_DIR)


# ---- OpenAI's released detectors ----

def map_openai_state_dict(state: dict[str, torch.Tensor], model) -> dict[str, torch.Tensor]:
    """OpenAI's RobertaForSequenceClassification state dict (transformers 2.x) as `model` (current
    transformers) expects it: the unused pooler dropped, buffers the old one lacks taken from `model`.
    Anything else that differs is an error naming the keys."""
    expected = model.state_dict()
    mapped = {k: v for k, v in state.items() if not k.startswith("roberta.pooler.")}
    buffers = {name for name, _ in model.named_buffers()}
    for key in expected.keys() - mapped.keys():
        if key in buffers:
            mapped[key] = expected[key]  # e.g. roberta.embeddings.position_ids: 0..n-1, rebuilt
    missing, unexpected = sorted(expected.keys() - mapped.keys()), sorted(mapped.keys() - expected.keys())
    wrong = [k for k in expected.keys() & mapped.keys() if mapped[k].shape != expected[k].shape]
    if missing or unexpected or wrong:
        raise DetectorError(f"not a checkpoint of this architecture: missing {missing[:5]}, unexpected "
                            f"{unexpected[:5]}, other shapes {sorted(wrong)[:5]}")
    return mapped


def load_openai(size: str, out: str | os.PathLike, *, checkpoint: str | os.PathLike | None = None,
                config: str | None = None, tokenizer: str | None = None, progress: bool = True
                ) -> EncoderClassifierDetector:
    """OpenAI's released detector `size` ("base" or "large") as a saved detector in `out`.

    checkpoint: a local detector-{size}.pt (default: downloaded once into the cache, gpt2.data.download).
    config / tokenizer: the architecture and tokenizer to load it into (default: roberta-base or
    roberta-large from the Hugging Face hub)."""
    if size not in OPENAI_BACKBONES:
        raise DetectorError(f"OpenAI released detectors 'base' and 'large'; got {size!r}")
    url = OPENAI_URL.format(size=size)
    path = Path(checkpoint) if checkpoint else download(url, cache_path("detector-models", Path(url).name),
                                                        progress=progress)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        state = data["model_state_dict"]
    except Exception as e:  # a pickle that is not a checkpoint fails in many ways; all end the same
        raise DetectorError(f"{path}: not an OpenAI detector checkpoint (a dict with 'model_state_dict'): "
                            f"{type(e).__name__}: {str(e)[:200]}") from None
    t = transformers_module()
    base = OPENAI_BACKBONES[size]
    model = t.AutoModelForSequenceClassification.from_config(
        t.AutoConfig.from_pretrained(config or base, num_labels=2))
    model.load_state_dict(map_openai_state_dict(state, model))
    det = EncoderClassifierDetector(backbone=base)
    det.model, det.tokenizer = model.to(det.device).eval(), t.AutoTokenizer.from_pretrained(tokenizer or config or base)
    det.info = {"source": url if not checkpoint else str(path), "sha256": file_sha256(path),
                "trained_by": "OpenAI (RoBERTa fine-tuned on GPT-2 1.5B outputs, temperature 1 and nucleus)"}
    det.save(out)
    return det
