"""GLTR features (Gehrmann et al. 2019) + logistic regression.

Each text becomes six numbers from a scoring model: the fractions of its tokens whose rank under the model
is in the top 10, 11-100, 101-1000 and beyond, the mean log-probability and the mean predictive entropy.
The features are standardised and fed to a logistic regression whose C is chosen on the valid split (as
the TF-IDF baseline's), or C = 1 without one. `gpt2.scoring.token_ranks` gives the per-token view.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpt2.detection import statistics
from gpt2.detection.detector import Detector, DetectorError, Valid, check_training_data, load_npz
from gpt2.detection.tfidf import CS, fit_logistic

BUCKETS = (10, 100, 1000)
FEATURES = ("top10", "top100", "top1000", "rest", "mean_logprob", "mean_entropy")
FILE = "gltr.npz"


def gltr_features(stats: statistics.TokenStats) -> np.ndarray:
    r = stats.rank
    edges = (0, *BUCKETS, np.inf)
    fracs = [np.mean((r > a) & (r <= b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return np.array([*fracs, stats.logprob.mean(), stats.entropy.mean()], dtype=np.float64)


class GLTRDetector(Detector):
    name = "gltr"

    def __init__(self, model: str, *, max_tokens: int | None = 256, device: str = "auto",
                 dtype: str = "auto", batch_tokens: int = 2048, cs: Sequence[float] = CS) -> None:
        super().__init__()
        self.model, self.max_tokens, self.device, self.dtype = str(model), max_tokens, device, dtype
        self.batch_tokens, self.cs = batch_tokens, list(cs)
        self.mean = self.std = self.coef = None
        self.intercept = 0.0
        self.progress = False

    def config(self) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": self.max_tokens,
                "dtype": statistics.used_dtype(self.dtype, self.device), "batch_tokens": self.batch_tokens,
                "cs": self.cs}

    def scorer(self) -> statistics.Scorer:
        return statistics.get_scorer(self.model, max_tokens=self.max_tokens, device=self.device, dtype=self.dtype,
                             batch_tokens=self.batch_tokens)

    def features(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([gltr_features(s) for s in self.scorer().stats(texts, self.progress)])

    def fit(self, real: Sequence[str], fake: Sequence[str], valid: Valid | None = None) -> GLTRDetector:
        check_training_data(real, fake)
        x = self.features(list(real) + list(fake))
        y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
        self.mean, self.std = x.mean(0), x.std(0)
        self.std[self.std == 0] = 1.0
        x = (x - self.mean) / self.std
        valid_xy = None
        if valid is not None:
            check_training_data(*valid, what="valid")
            valid_xy = ((self.features(list(valid[0]) + list(valid[1])) - self.mean) / self.std,
                        np.r_[np.zeros(len(valid[0])), np.ones(len(valid[1]))])
        c, model, scores = fit_logistic(x, y, valid_xy, self.cs, max_iter=1000)
        self.coef, self.intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
        self.info = {"C": c, "train_texts": len(y), "features": list(FEATURES),
                     "coef": dict(zip(FEATURES, self.coef.tolist(), strict=True)),
                     "valid_accuracy_by_C": {f"{k:g}": v for k, v in scores.items()}}
        return self

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if self.coef is None:
            raise DetectorError("gltr detector is not trained; call fit() or load()")
        z = ((self.features(texts) - self.mean) / self.std) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def _save_files(self, directory: Path) -> None:
        if self.coef is None:
            raise DetectorError("gltr detector is not trained; nothing to save")
        np.savez(directory / FILE, mean=self.mean, std=self.std, coef=self.coef,
                 intercept=np.array([self.intercept]))

    @classmethod
    def _from_files(cls, directory: Path, config: dict[str, Any]) -> GLTRDetector:
        det = cls(**config)
        z = load_npz(directory / FILE)
        det.mean, det.std, det.coef, det.intercept = z["mean"], z["std"], z["coef"], float(z["intercept"][0])
        return det
