"""Zero-shot detectors: a statistic of the text under a scoring model, no training.

| name | statistic (higher = machine) | reference |
| --- | --- | --- |
| `loglik` | mean log p(x_t) | Solaiman et al. 2019, Gehrmann et al. 2019 |
| `logrank` | minus the mean log-rank of x_t | Mitchell et al. 2023 (DetectGPT's baseline) |
| `entropy` | mean predictive entropy (DetectGPT's orientation) | Mitchell et al. 2023 |
| `fast-detectgpt` | analytic sampling discrepancy (sampling model: `reference` or the scorer) | Bao 2023 |
| `binoculars` | minus log-PPL(performer) / X-PPL(observer, performer) | Hans et al. 2024 |

Each reads the text as its authors' code does (`convention`, see gpt2.detection.statistics and
docs/detection.md): `hf` (no <|endoftext|>, the first token context only) for all five by default, as
DetectGPT's, Fast-DetectGPT's and Binoculars' Hugging Face code; `document` (conditioned on <|endoftext|>,
every token scored) as DetectGPT's OpenAI path and GLTR. Binoculars' x-ppl averages where its code does
(`xppl="all"`), or over the log-perplexity's positions (`xppl="scored"`). Detectors saved before these
options existed load with the convention they were calibrated in (`document`, `scored`).

`score` maps the statistic s to P(machine) = sigmoid((s - center) / scale). `fit` (optional) calibrates
on the valid texts when given, else on the texts passed: center = the accuracy-maximising threshold,
scale = the statistic's standard deviation; so `threshold` stays 0.5. Uncalibrated, center and scale are
fixed defaults (for Binoculars, the paper's accuracy threshold 0.9015 for Falcon-7B/-instruct), which
suit no particular model: calibrate, or read AUROC and TPR at fixed FPR, which do not depend on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gpt2.detection import statistics
from gpt2.detection.detector import Detector, DetectorError, Valid, check_training_data
from gpt2.detection.metrics import best_threshold


class ZeroShotDetector(Detector):
    """A statistic of `statistics.TokenStats`, oriented so that higher means machine."""

    needs_training = False
    statistic: ClassVar[Callable[[statistics.TokenStats], float]]
    sign: ClassVar[float] = 1.0  # statistic * sign = higher-is-machine
    default_center: ClassVar[float] = 0.0
    default_scale: ClassVar[float] = 1.0
    default_convention: ClassVar[str] = "hf"

    def __init__(self, model: str, *, max_tokens: int | None = 256, device: str = "auto",
                 dtype: str = "auto", batch_tokens: int = 2048, center: float | None = None,
                 scale: float | None = None, convention: str | None = None, **models: str | None) -> None:
        super().__init__()
        self.convention = convention or self.default_convention
        if self.convention not in statistics.CONVENTIONS:
            raise DetectorError(f"{self.name}: convention must be one of {', '.join(statistics.CONVENTIONS)}; "
                                f"got {self.convention!r}")
        self.model = str(model)
        self.models = {k: (str(v) if v is not None else None) for k, v in models.items()}
        self.max_tokens, self.device, self.dtype, self.batch_tokens = max_tokens, device, dtype, batch_tokens
        self.center = self.default_center if center is None else float(center)
        self.scale = self.default_scale if scale is None else float(scale)
        self.progress = False

    def config(self) -> dict[str, Any]:
        return {"model": self.model, **self.models, "max_tokens": self.max_tokens,
                "dtype": statistics.used_dtype(self.dtype, self.device), "batch_tokens": self.batch_tokens,
                "center": self.center, "scale": self.scale, "convention": self.convention}

    @classmethod
    def _from_files(cls, directory: Path, config: dict[str, Any]) -> Detector:
        return cls(**{"convention": "document", **config})  # saved before conventions: calibrated so

    def scorer(self) -> statistics.Scorer:
        return statistics.get_scorer(self.model, max_tokens=self.max_tokens, device=self.device, dtype=self.dtype,
                             batch_tokens=self.batch_tokens, convention=self.convention, **self.models)

    def statistic_of(self, stats: statistics.TokenStats) -> float:
        return type(self).statistic(stats)

    def statistics(self, texts: Sequence[str]) -> np.ndarray:
        """The raw statistic of each text (e.g. the Binoculars score itself), unoriented."""
        return np.array([self.statistic_of(s) for s in self.scorer().stats(texts, self.progress)])

    def oriented(self, texts: Sequence[str]) -> np.ndarray:
        return self.sign * self.statistics(texts)

    def fit(self, real: Sequence[str], fake: Sequence[str], valid: Valid | None = None) -> ZeroShotDetector:
        real, fake = valid if valid is not None else (real, fake)
        check_training_data(real, fake, "calibration")
        s = self.oriented(list(real) + list(fake))
        y = np.r_[np.zeros(len(real)), np.ones(len(fake))]
        self.center = best_threshold(y, s)
        self.scale = float(s.std()) or 1.0
        self.threshold = 0.5
        self.info = {"calibrated_on": "valid" if valid is not None else "train", "texts": len(s),
                     "center": self.center, "scale": self.scale}
        return self

    def score(self, texts: Sequence[str]) -> np.ndarray:
        z = (self.oriented(texts) - self.center) / self.scale
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))


class LogLikelihood(ZeroShotDetector):
    name = "loglik"
    statistic = staticmethod(statistics.mean_logprob)
    default_center, default_scale = -4.0, 1.0


class LogRank(ZeroShotDetector):
    name = "logrank"
    statistic = staticmethod(statistics.mean_logrank)
    default_center, default_scale = -2.0, 1.0


class Entropy(ZeroShotDetector):
    name = "entropy"
    statistic = staticmethod(statistics.mean_entropy)
    default_center, default_scale = 4.0, 1.0


class FastDetectGPT(ZeroShotDetector):
    """`reference`: Fast-DetectGPT's sampling model (default: the scoring model itself)."""

    name = "fast-detectgpt"
    statistic = staticmethod(statistics.sampling_discrepancy)
    default_center, default_scale = 1.0, 1.0

    def __init__(self, model: str, *, reference: str | None = None, **kwargs: Any) -> None:
        super().__init__(model, reference=reference, **kwargs)


class Binoculars(ZeroShotDetector):
    """`model` is the performer, `observer` the observer; the two must share a tokenizer."""

    name = "binoculars"
    statistic = staticmethod(statistics.binoculars)
    sign = -1.0  # lower Binoculars score = machine
    default_center, default_scale = -0.9015310749276843, 0.05

    def __init__(self, model: str, *, observer: str | None = None, xppl: str = "all", **kwargs: Any) -> None:
        if observer is None:
            raise DetectorError("binoculars needs two checkpoints: the performer (model) and the observer")
        if xppl not in statistics.XPPL_POSITIONS:
            raise DetectorError(f"binoculars: xppl must be one of {', '.join(statistics.XPPL_POSITIONS)}; "
                                f"got {xppl!r}")
        super().__init__(model, observer=observer, **kwargs)
        self.xppl = xppl

    def config(self) -> dict[str, Any]:
        return {**super().config(), "xppl": self.xppl}

    @classmethod
    def _from_files(cls, directory: Path, config: dict[str, Any]) -> Detector:
        return super()._from_files(directory, {"xppl": "scored", **config})

    def statistic_of(self, stats: statistics.TokenStats) -> float:
        return statistics.binoculars(stats, self.xppl)
