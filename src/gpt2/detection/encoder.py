"""A fine-tuned encoder (RoBERTa by default): the detector OpenAI released with GPT-2 1.5B, and its weights.

Training follows OpenAI's detector/train.py (Solaiman et al., 2019): `AutoModelForSequenceClassification`
with two labels in OpenAI's order (0 = machine, "fake"; 1 = human, "real"), Adam at 2e-5 without weight
decay, batches of 24, each text a random window of at most 128 tokens (of random length, at least 10, as
with its --random-sequence-length) between the tokenizer's special tokens. Scoring reads each text whole,
up to the encoder's context, as OpenAI's server does. After every epoch the valid accuracy (then loss) picks
the best epoch; training stops after `patience` epochs without improvement.

`load_openai` turns OpenAI's released `detector-base.pt` / `detector-large.pt` (transformers 2.x's
RobertaForSequenceClassification) into such a detector: current transformers has no pooler in this model and
keeps `position_ids` as a buffer, so the old state dict fails to load as it is (openai/gpt-2-output-dataset
issues #28, #47); the pooler, which the classification head never reads, is dropped and the buffer rebuilt.

Any encoder that transformers' Auto classes load works as `backbone` (a hub id or a directory). transformers
is needed for this detector only: `pip install 'gpt2[detect]'`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from gpt2.detection.detector import Detector, DetectorError, Valid, check_training_data, train_epochs
from gpt2.hardware import resolve_device

MACHINE, HUMAN = 0, 1  # OpenAI's label order: softmax(logits)[0] is P(fake), [1] is P(real)
ENCODER_DIR = "encoder"
OPENAI_URL = "https://openaipublic.azureedge.net/gpt-2/detector-models/v1/detector-{size}.pt"
OPENAI_BACKBONES = {"base": "roberta-base", "large": "roberta-large"}
MIN_TRAIN_TOKENS = 10  # OpenAI's min_sequence_length with --random-sequence-length


def transformers_module():
    """transformers, or a DetectorError that names the extra to install."""
    try:
        import transformers
    except ImportError:
        raise DetectorError("this detector runs on transformers, which is not installed; install it with "
                            "`pip install 'gpt2[detect]'` (or `pip install transformers`)") from None
    return transformers


class EncoderClassifierDetector(Detector):
    name = "encoder-classifier"

    def __init__(self, backbone: str = "roberta-base", *, max_tokens: int = 128, lr: float = 2e-5,
                 weight_decay: float = 0.0, batch_size: int = 24, max_epochs: int = 5, patience: int = 2,
                 seed: int = 0, device: str = "auto") -> None:
        super().__init__()
        self.backbone, self.max_tokens, self.lr, self.weight_decay = str(backbone), max_tokens, lr, weight_decay
        self.batch_size, self.max_epochs, self.patience, self.seed = batch_size, max_epochs, patience, seed
        self.device = resolve_device(device)
        self.model = self.tokenizer = None
        self.progress = False

    def config(self) -> dict[str, Any]:
        return {"backbone": self.backbone, "max_tokens": self.max_tokens, "lr": self.lr,
                "weight_decay": self.weight_decay, "batch_size": self.batch_size, "max_epochs": self.max_epochs,
                "patience": self.patience, "seed": self.seed}

    def _load(self, path: str | os.PathLike) -> None:
        t = transformers_module()
        try:
            self.tokenizer = t.AutoTokenizer.from_pretrained(str(path))
            self.model = t.AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=2)
        except (OSError, ValueError) as e:
            raise DetectorError(f"{path}: cannot load an encoder and its tokenizer with transformers' Auto "
                                f"classes ({type(e).__name__}: {str(e)[:200]})") from None
        self.model.to(self.device).eval()

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

    @torch.inference_mode()
    def _predict_logits(self, encoded: list[list[int]]) -> np.ndarray:
        self.model.eval()
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        out = np.empty((len(encoded), 2))
        for a in range(0, len(order), self.batch_size):
            batch = order[a : a + self.batch_size]
            out[batch] = self._logits([self._window(encoded[i], None) for i in batch]).cpu().numpy()
        return out

    # ---- training ----

    def fit(self, real: Sequence[str], fake: Sequence[str], valid: Valid | None = None
            ) -> EncoderClassifierDetector:
        check_training_data(real, fake)
        if valid is not None:
            check_training_data(*valid, what="valid")
        torch.manual_seed(self.seed)
        self._load(self.backbone)
        rng = np.random.default_rng(self.seed)
        encoded = self._encode(list(real) + list(fake))
        labels = np.r_[np.full(len(real), HUMAN), np.full(len(fake), MACHINE)]
        checked = None if valid is None else (self._encode(list(valid[0]) + list(valid[1])),
                                             np.r_[np.full(len(valid[0]), HUMAN), np.full(len(valid[1]), MACHINE)])
        optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr, weight_decay=self.weight_decay)

        def validate() -> tuple[float, float]:
            z = self._predict_logits(checked[0])
            loss = float(F.cross_entropy(torch.from_numpy(z), torch.from_numpy(checked[1])))
            return loss, float(np.mean(z.argmax(1) == checked[1]))

        self.info = train_epochs(lambda epoch: self._epoch(encoded, labels, optimizer, rng, epoch),
                                 None if checked is None else validate,
                                 lambda: copy.deepcopy(self.model.state_dict()), self.model.load_state_dict,
                                 self.max_epochs, self.patience)
        self.info["train_texts"] = len(encoded)
        self.model.eval()
        return self

    def _epoch(self, encoded: list[list[int]], labels: np.ndarray, optimizer, rng: np.random.Generator,
               epoch: int) -> float:
        """One pass over the shuffled training texts; returns the mean loss."""
        from tqdm.auto import tqdm

        self.model.train()
        order, total = rng.permutation(len(encoded)), 0.0
        for a in tqdm(range(0, len(order), self.batch_size), desc=f"epoch {epoch}", disable=not self.progress):
            batch = order[a : a + self.batch_size]
            logits = self._logits([self._window(encoded[i], rng) for i in batch])
            loss = F.cross_entropy(logits, torch.as_tensor(labels[batch], device=logits.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        return total / len(order)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        """P(machine) of each text: softmax over the two labels, OpenAI's "fake" probability."""
        if self.model is None:
            raise DetectorError("the encoder classifier is not trained; call fit() or load()")
        z = self._predict_logits(self._encode(texts))
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        return p[:, MACHINE] / p.sum(1)

    # ---- files ----

    def _save_files(self, directory: Path) -> None:
        if self.model is None:
            raise DetectorError("the encoder classifier is not trained; nothing to save")
        self.model.save_pretrained(directory / ENCODER_DIR)
        self.tokenizer.save_pretrained(directory / ENCODER_DIR)

    @classmethod
    def _from_files(cls, directory: Path, config: dict[str, Any]) -> EncoderClassifierDetector:
        det = cls(**config)
        det._load(directory / ENCODER_DIR)
        return det


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
    from gpt2.data.download import cache_path, download
    from gpt2.files import file_sha256

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
