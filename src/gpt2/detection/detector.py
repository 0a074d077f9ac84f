"""The detector interface: fit on human ("real") and machine ("fake") texts, score texts, save and load.

Every detector writes `detector.json` ({"detector": name, "threshold": t, ...its settings}) plus its own
files into one directory; `load_detector(dir)` reads the name and hands the directory to that class.
Files are JSON, numpy `.npz` (loaded with allow_pickle=False) and safetensors: loading a detector never
unpickles anything.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gpt2.errors import DataError, GPT2Error
from gpt2.files import atomic_write_text

META_FILE = "detector.json"
Valid = tuple[Sequence[str], Sequence[str]]  # (real texts, fake texts)


class DetectorError(GPT2Error, ValueError):
    """A detector is misconfigured, untrained, or its saved directory is incomplete."""


class Detector(ABC):
    """Scores texts with the probability that a machine wrote them.

    `threshold` turns scores into decisions (machine when score > threshold); 0.5 unless the detector
    chose another on validation data. `needs_training` is False for zero-shot detectors, whose `fit` only
    calibrates (and may be skipped).
    """

    name: ClassVar[str]
    needs_training: ClassVar[bool] = True

    def __init__(self) -> None:
        self.threshold = 0.5
        self.info: dict[str, Any] = {}  # what fit() found (chosen C, epochs, valid accuracy, ...)

    @abstractmethod
    def fit(self, real: Sequence[str], fake: Sequence[str], valid: Valid | None = None) -> Detector:
        """Train (or calibrate) on human texts `real` and machine texts `fake`; `valid` picks settings."""

    @abstractmethod
    def score(self, texts: Sequence[str]) -> np.ndarray:
        """P(machine) for each text, shape (n,)."""

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        return (self.score(texts) > self.threshold).astype(np.int64)

    # ---- persistence ----

    def config(self) -> dict[str, Any]:
        """The settings to save in detector.json (besides name, threshold and info)."""
        return {}

    def save(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_files(directory)
        meta = {"detector": self.name, "threshold": self.threshold, "config": self.config(),
                "info": self.info}
        atomic_write_text(directory / META_FILE, json.dumps(meta, indent=2, default=_jsonable) + "\n")
        return directory

    def _save_files(self, directory: Path) -> None:  # noqa: B027 (optional hook; zero-shot ones have none)
        """Write the detector's own files (weights, vocabulary)."""

    @classmethod
    def load(cls, directory: str | os.PathLike, **overrides: Any) -> Detector:
        """Read a saved detector; `overrides` replace saved settings (e.g. device="cuda")."""
        directory = Path(directory)
        meta = read_meta(directory)
        if meta["detector"] != cls.name:
            raise DetectorError(f"{directory / META_FILE}: holds a {meta['detector']!r} detector, "
                                f"not {cls.name!r}")
        det = cls._from_files(directory, {**meta.get("config", {}), **overrides})
        det.threshold = float(meta.get("threshold", 0.5))
        det.info = meta.get("info", {})
        return det

    @classmethod
    def _from_files(cls, directory: Path, config: dict[str, Any]) -> Detector:
        return cls(**config)


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x).__name__}")


def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DetectorError(f"{path}: not found; expected a directory written by `gpt2 detect train` "
                            "(or Detector.save)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DetectorError(f"{path}: unreadable ({e})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("detector"), str):
        raise DetectorError(f"{path}: expected a JSON object with a \"detector\" name")
    return meta


def load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise DetectorError(f"{path}: missing; the detector directory is incomplete") from None
    except (OSError, ValueError) as e:
        raise DetectorError(f"{path}: unreadable ({e})") from None


def check_training_data(real: Sequence[str], fake: Sequence[str], what: str = "training") -> None:
    if len(real) == 0 or len(fake) == 0:
        raise DataError(f"{what} data needs both human and machine texts; got {len(real)} human and "
                        f"{len(fake)} machine")

