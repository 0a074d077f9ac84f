"""OpenAI's detection baseline (gpt-2-output-dataset's baseline.py): TF-IDF over word unigrams and bigrams,
logistic regression, C picked on the valid split.

The protocol as there: TfidfVectorizer(ngram_range=(1, 2), min_df=5, max_features=2**21) fitted on the
training texts; liblinear logistic regression for each C in 2^-6 .. 2^6, trained on train only; the C with
the best valid accuracy wins (the first on ties, like LogisticRegressionCV with a PredefinedSplit and
refit=False). Without valid data, C = 1. P(machine) is the regression's probability, threshold 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpt2.detection.detector import Detector, DetectorError, Valid, check_training_data, load_npz

CS = tuple(2.0**k for k in range(-6, 7))
FILE = "tfidf.npz"


def fit_logistic(x, y: np.ndarray, valid: tuple[Any, np.ndarray] | None, cs: Sequence[float],
                 **options: Any) -> tuple[float, Any, dict[float, float]]:
    """Logistic regression with C picked as the baseline picks it: one fit on (x, y) per C in `cs`, the best
    accuracy on `valid` = (x, y) winning (the first on ties); C = 1 without valid data. `options` go to
    sklearn's LogisticRegression. Returns (C, the fitted model, valid accuracy by C)."""
    from sklearn.linear_model import LogisticRegression  # lazy: scikit-learn is slow to import

    best, scores = None, {}
    for c in [1.0] if valid is None else cs:
        model = LogisticRegression(C=c, **options).fit(x, y)
        if valid is not None:
            scores[c] = float(model.score(*valid))
        if best is None or scores[c] > scores[best[0]]:  # without valid data there is one C
            best = (c, model)
    c, model = best
    return c, model, scores


class TfidfDetector(Detector):
    name = "tfidf"

    def __init__(self, min_df: int = 5, max_features: int = 2**21, cs: Sequence[float] = CS) -> None:
        super().__init__()
        self.min_df, self.max_features, self.cs = min_df, max_features, list(cs)
        self.vectorizer = None
        self.coef: np.ndarray | None = None
        self.intercept = 0.0

    def config(self) -> dict[str, Any]:
        return {"min_df": self.min_df, "max_features": self.max_features, "cs": self.cs}

    def _vectorizer(self, vocabulary=None):
        from sklearn.feature_extraction.text import TfidfVectorizer  # lazy: slow to import

        return TfidfVectorizer(ngram_range=(1, 2), min_df=self.min_df, max_features=self.max_features,
                               vocabulary=vocabulary)

    def fit(self, real: Sequence[str], fake: Sequence[str], valid: Valid | None = None) -> TfidfDetector:
        check_training_data(real, fake)
        texts, labels = list(real) + list(fake), np.r_[np.zeros(len(real)), np.ones(len(fake))]
        self.vectorizer = self._vectorizer()
        try:
            x = self.vectorizer.fit_transform(texts)
        except ValueError as e:  # "After pruning, no terms remain": too few texts for min_df
            raise DetectorError(f"tfidf: {e}; with {len(texts)} training texts lower min_df "
                                f"(now {self.min_df})") from None
        valid_xy = None
        if valid is not None:
            check_training_data(*valid, what="valid")
            valid_xy = (self.vectorizer.transform(list(valid[0]) + list(valid[1])),
                        np.r_[np.zeros(len(valid[0])), np.ones(len(valid[1]))])
        c, model, scores = fit_logistic(x, labels, valid_xy, self.cs, solver="liblinear")
        self.coef, self.intercept = model.coef_[0].astype(np.float64), float(model.intercept_[0])
        self.info = {"C": c, "features": int(x.shape[1]), "train_texts": len(texts),
                     "valid_accuracy_by_C": {f"{k:g}": v for k, v in scores.items()}}
        return self

    def score(self, texts: Sequence[str]) -> np.ndarray:
        if self.vectorizer is None or self.coef is None:
            raise DetectorError("tfidf detector is not trained; call fit() or load()")
        z = self.vectorizer.transform(list(texts)) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64).ravel()))

    def _save_files(self, directory: Path) -> None:
        if self.vectorizer is None:
            raise DetectorError("tfidf detector is not trained; nothing to save")
        terms = self.vectorizer.get_feature_names_out().astype(str)
        np.savez_compressed(directory / FILE, terms=terms, idf=self.vectorizer.idf_, coef=self.coef,
                            intercept=np.array([self.intercept]))

    @classmethod
    def _from_files(cls, directory: Path, config: dict[str, Any]) -> TfidfDetector:
        det = cls(**config)
        z = load_npz(directory / FILE)
        det.vectorizer = det._vectorizer({t: i for i, t in enumerate(z["terms"].tolist())})
        det.vectorizer.idf_ = z["idf"]
        det.coef, det.intercept = z["coef"], float(z["intercept"][0])
        return det
