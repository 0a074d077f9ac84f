"""What the page says about what it serves: a short model name (never a filesystem path), what the
detector was trained on and how accurate it measured, and example texts written by people.

The detector's description comes from files it was saved with (detector.json's "info") and, if there is
one, an evaluation report (`gpt2 detect eval`'s results.json); nothing is claimed that they do not say.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# Directory names that say nothing about a model: its parent's name says more.
_GENERIC = {"checkpoint", "checkpoints", "final", "best", "latest", "model", "ckpt", "out", "hf", "weights"}
# Topics of Python's documentation (pydoc_data, shipped with every Python) whose opening paragraphs are
# prose written by people: the human-written examples of the Check view.
EXAMPLE_TOPICS = (("execmodel", "Python's documentation: the execution model"),
                  ("exceptions", "Python's documentation: exceptions"))
EXAMPLE_CHARS = 700


def short_model_name(spec: str) -> str:
    """"gpt2" stays "gpt2"; a checkpoint directory is shown by its last meaningful name ("out/run1/final"
    -> "run1/final"), so no path of the server's machine reaches the page or /v1/models."""
    parts = [p for p in re.split(r"[\\/]+", str(spec)) if p and p not in (".", "..")]
    if not parts:
        return "model"
    if parts[-1].lower() in _GENERIC and len(parts) > 1:
        return "/".join(parts[-2:])
    return parts[-1]


def describe_detector(directory: str | Path | None, trained_on: str | None = None,
                      report: str | Path | None = None) -> dict[str, Any]:
    """{trained_on, accuracy, accuracy_on, accuracy_texts, by_length} for the page's detector label.
    `trained_on` (the operator's words) wins over what detector.json says; accuracy comes from `report`
    or DIR/results.json when there is one, else from the validation accuracy saved at training."""
    meta = _json(Path(directory) / "detector.json") if directory else None
    info = (meta or {}).get("info") or {}
    about: dict[str, Any] = {"trained_on": trained_on or _trained_on(info), "accuracy": None,
                             "accuracy_on": None, "accuracy_texts": None, "by_length": None}
    found = _json(Path(report)) if report else None
    if found is None and directory:
        found = _json(Path(directory) / "results.json")
    if isinstance(found, list):  # a report of several evaluations: the first is this detector's
        found = found[0] if found else None
    if isinstance(found, dict) and isinstance(found.get("accuracy"), int | float):
        sources = [Path(str(found[k])).name for k in ("real", "fake") if found.get(k)]
        about.update(accuracy=float(found["accuracy"]), accuracy_texts=found.get("n"),
                     accuracy_on=" and ".join(sources) or "its test texts")
        if found.get("length_unit") == "tokens":
            about["by_length"] = found.get("accuracy_by_length")
        return about
    valid = _valid_accuracy(info)
    if valid is not None:
        about.update(accuracy=valid, accuracy_on="its validation texts")
    return about


def _trained_on(info: dict) -> str | None:
    if info.get("trained_by"):
        return str(info["trained_by"])
    if info.get("train_texts"):
        return f"{info['train_texts']:,} texts, human- and model-written"
    if info.get("texts"):  # a zero-shot detector: only its threshold was fitted
        return f"no training; its threshold was set on {info['texts']:,} texts"
    return None


def _valid_accuracy(info: dict) -> float | None:
    by_c = info.get("valid_accuracy_by_C") or {}
    if "C" in info and by_c:
        value = by_c.get(f"{info['C']:g}")
        return float(value) if isinstance(value, int | float) else None
    for epoch in info.get("epochs") or ():
        if epoch.get("epoch") == info.get("best_epoch") and "valid_accuracy" in epoch:
            return float(epoch["valid_accuracy"])
    return None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def human_examples() -> list[dict[str, str]]:
    """Short excerpts of Python's own documentation (pydoc_data.topics): prose people wrote, that every
    machine with Python has. Empty where a Python was built without it."""
    try:
        from pydoc_data.topics import topics  # lazy: 0.8 MB of text, read only when the page asks
    except ImportError:
        return []
    out = []
    for key, title in EXAMPLE_TOPICS:
        paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", topics.get(key, ""))
                      if p.strip() and not p.startswith(" ") and len(p) > 150]
        text = ""
        for p in paragraphs:
            if len(text) + len(p) > EXAMPLE_CHARS and text:
                break
            text = f"{text} {p}".strip()
        if text:
            out.append({"title": title, "text": text[:EXAMPLE_CHARS * 2], "source": f"pydoc_data.topics[{key!r}]"})
    return out
