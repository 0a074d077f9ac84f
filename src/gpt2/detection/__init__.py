"""Synthetic-text detection: detectors behind one interface, metrics, and the reports built on them.

    from gpt2.detection import make_detector, load_detector
    det = make_detector("tfidf").fit(real_texts, fake_texts, valid=(valid_real, valid_fake))
    det.score(["some text"])            # P(machine), numpy array
    det.save("detectors/tfidf"); det = load_detector("detectors/tfidf")

Detectors (`DETECTORS`): `tfidf` (OpenAI's baseline), `gltr` (rank-bucket features + logistic regression),
the zero-shot `loglik`, `logrank`, `entropy`, `fast-detectgpt`, `binoculars`, `classifier` (a fine-tuned
GPT-2) and `encoder-classifier` (a fine-tuned RoBERTa or other encoder, as OpenAI's released detector:
`make_detector("encoder-classifier", backbone="roberta-base")`). All but tfidf and the encoder need a
scoring checkpoint (`model=`); binoculars also `observer=`.
"""

from __future__ import annotations

import os
from typing import Any

from gpt2.detection.classifier import ClassifierDetector
from gpt2.detection.detector import Detector, DetectorError, read_meta
from gpt2.detection.encoder import EncoderClassifierDetector, load_openai
from gpt2.detection.gltr import GLTRDetector
from gpt2.detection.statistics import TokenStats, token_stats
from gpt2.detection.tfidf import TfidfDetector
from gpt2.detection.watermark import WatermarkDetector
from gpt2.detection.zeroshot import (
    Binoculars,
    Entropy,
    FastDetectGPT,
    LogLikelihood,
    LogRank,
    ZeroShotDetector,
)
from gpt2.scoring import token_ranks

DETECTORS: dict[str, type[Detector]] = {
    cls.name: cls
    for cls in (TfidfDetector, GLTRDetector, LogLikelihood, LogRank, Entropy, FastDetectGPT, Binoculars,
                ClassifierDetector, EncoderClassifierDetector)
}
ZERO_SHOT = tuple(name for name, cls in DETECTORS.items() if not cls.needs_training)
# provenance, not content: the watermark's z-test needs the generator's key (detection/watermark.py)
PROVENANCE_DETECTORS: dict[str, type[Detector]] = {WatermarkDetector.name: WatermarkDetector}


def make_detector(name: str, **options: Any) -> Detector:
    """A new detector by name; options go to its constructor (model=, observer=, max_tokens=, ...)."""
    if name not in DETECTORS:
        raise DetectorError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if name == ClassifierDetector.name and options.get("backbone") is not None:
        raise DetectorError(f"the {name!r} detector fine-tunes a GPT-2 checkpoint (model=); an encoder "
                            f"backbone is the {EncoderClassifierDetector.name!r} detector: make_detector("
                            f"{EncoderClassifierDetector.name!r}, backbone={options['backbone']!r})")
    try:
        return DETECTORS[name](**options)
    except TypeError as e:
        raise DetectorError(f"detector {name!r}: {e}") from None


def load_detector(directory: str | os.PathLike, **overrides: Any) -> Detector:
    """A detector saved with `Detector.save` (its kind is read from detector.json)."""
    name = read_meta(directory)["detector"]
    kinds = {**DETECTORS, **PROVENANCE_DETECTORS}  # content detectors and the watermark's
    if name not in kinds:
        raise DetectorError(f"{directory}: unknown detector {name!r}; expected one of {', '.join(kinds)}")
    return kinds[name].load(directory, **overrides)


__all__ = [
    "DETECTORS", "PROVENANCE_DETECTORS", "ZERO_SHOT", "Binoculars", "ClassifierDetector", "Detector",
    "DetectorError", "EncoderClassifierDetector", "Entropy", "FastDetectGPT", "GLTRDetector", "LogLikelihood",
    "LogRank", "TfidfDetector", "TokenStats", "WatermarkDetector", "ZeroShotDetector", "load_detector",
    "load_openai", "make_detector", "token_ranks", "token_stats",
]
