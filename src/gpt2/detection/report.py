"""Evaluation reports: one detector on one test set, the transfer matrix, and the real-data benchmark.
Each writes results.json + results.md (+ a ROC plot) into an output directory."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gpt2.detection import make_detector, metrics
from gpt2.detection.data import Texts, labelled, read_texts, real_data_splits
from gpt2.detection.detector import Detector
from gpt2.errors import DataError
from gpt2.files import atomic_write_text

# OpenAI's published TF-IDF baseline accuracy on 117M top-k 40 (gpt-2-output-dataset README), trained on
# 250k + 250k texts and tested on 5k + 5k.
OPENAI_TFIDF_117M_K40 = 0.9679
REAL_DATA_DETECTORS = ("tfidf", "gltr", "loglik", "logrank", "entropy", "fast-detectgpt", "binoculars",
                       "classifier")


def evaluate(detector: Detector, real: Texts, fake: Texts) -> dict[str, Any]:
    """Metrics of `detector` on human texts `real` and machine texts `fake` at its own threshold.
    Accuracy by length uses the files' `length` (tokens) when every row has one, else characters."""
    texts, labels, lengths = labelled(real, fake)
    start = time.perf_counter()
    scores = detector.score(texts)
    seconds = time.perf_counter() - start
    if all(n is not None for n in lengths):
        unit = "tokens"
    else:
        unit, lengths = "characters", [len(t) for t in texts]
    out = metrics.summary(labels, scores, detector.threshold, lengths, unit)
    out.update(detector=detector.name, real=real.source, fake=fake.source, score_seconds=round(seconds, 2))
    return out


def write_report(result: dict[str, Any] | list[dict[str, Any]], out_dir: str | os.PathLike,
                 title: str = "Detection") -> dict[str, Path]:
    """results.json, results.md and roc.png for one or several evaluations."""
    results = result if isinstance(result, list) else [result]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md", "roc": out_dir / "roc.png"}
    atomic_write_text(paths["json"], json.dumps(result, indent=2) + "\n")
    atomic_write_text(paths["markdown"], markdown_report(results, title))
    metrics.plot_roc({r.get("label", r["detector"]): (r["roc"]["fpr"], r["roc"]["tpr"]) for r in results},
                     paths["roc"], title=title)
    return paths


def markdown_report(results: Sequence[dict[str, Any]], title: str = "Detection") -> str:
    pct = metrics.fmt_pct
    lines = [f"# {title}", "",
             "| detector | accuracy | AUROC | TPR @ 1% FPR | TPR @ 0.1% FPR | threshold | n |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        lines.append(f"| {r.get('label', r['detector'])} | {pct(r['accuracy'])} | {r['auroc']:.4f} | "
                     f"{pct(r['tpr_at_1pct_fpr'])} | {pct(r['tpr_at_0.1pct_fpr'])} | {r['threshold']:.3g} | "
                     f"{r['human']} + {r['machine']} |")
    buckets = [r for r in results if r.get("accuracy_by_length")]
    if buckets:
        unit = buckets[0]["length_unit"]
        names = list(dict.fromkeys(b["bucket"] for r in buckets for b in r["accuracy_by_length"]))
        lines += ["", f"Accuracy by length ({unit}; texts per bucket in parentheses):", "",
                  "| detector | " + " | ".join(names) + " |", "| --- |" + " --- |" * len(names)]
        for r in buckets:
            by = {b["bucket"]: b for b in r["accuracy_by_length"]}
            cells = [f"{pct(by[n]['accuracy'])} ({by[n]['n']})" if n in by else "-" for n in names]
            lines.append(f"| {r.get('label', r['detector'])} | " + " | ".join(cells) + " |")
    lines += ["", "TPR at a fixed FPR: the ROC curve read by linear interpolation "
              "(gpt2.detection.metrics).", ""]
    return "\n".join(lines)


# ---- transfer matrix ----

def transfer_matrix(
    data_dir: str | os.PathLike,
    sources: Sequence[str],
    make: Any,
    *,
    real_name: str = "webtext",
    limit_train: int | None = None,
    limit_test: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train a detector (`make()` returns a fresh one) on each source's train split (valid to choose
    settings) and test it on every source's test split, each against the human `real_name` texts; files
    are `<name>.<split>.jsonl` as gpt-2-output-dataset names them. Rows: trained on; columns: tested on."""
    data_dir = Path(data_dir)

    def load(name: str, split: str, limit: int | None) -> Texts:
        return read_texts(data_dir / f"{name}.{split}.jsonl", limit)

    real_test = load(real_name, "test", limit_test)
    tests = {y: load(y, "test", limit_test) for y in sources}
    cells: dict[str, dict[str, dict[str, float]]] = {}
    for x in sources:
        det = make()
        det.progress = progress
        real_tr, fake_tr = load(real_name, "train", limit_train), load(x, "train", limit_train)
        try:
            valid = (load(real_name, "valid", None).texts, load(x, "valid", None).texts)
        except DataError:
            valid = None  # no valid files: the detector's defaults
        det.fit(real_tr.texts, fake_tr.texts, valid)
        real_scores = det.score(real_test.texts)
        cells[x] = {}
        for y in sources:
            fake_scores = det.score(tests[y].texts)
            scores = np.r_[real_scores, fake_scores]
            labels = np.r_[np.zeros(len(real_scores)), np.ones(len(fake_scores))]
            cells[x][y] = {"accuracy": metrics.accuracy(labels, scores, det.threshold),
                           "auroc": metrics.auroc(labels, scores),
                           "tpr_at_1pct_fpr": metrics.tpr_at_fpr(labels, scores, 0.01)}
    return {"detector": make().name, "sources": list(sources), "real": real_name, "cells": cells}


def markdown_matrix(result: dict[str, Any]) -> str:
    sources = result["sources"]
    lines = [f"# Transfer: {result['detector']} trained on rows, tested on columns "
             f"(human side: {result['real']})", ""]
    for key, label in (("accuracy", "Accuracy"), ("auroc", "AUROC")):
        lines += [f"## {label}", "", "| trained on \\ tested on | " + " | ".join(sources) + " |",
                  "| --- |" + " --- |" * len(sources)]
        for x in sources:
            cells = [f"{result['cells'][x][y][key] * (100 if key == 'accuracy' else 1):.2f}"
                     + ("%" if key == "accuracy" else "") for y in sources]
            lines.append(f"| {x} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def write_matrix(result: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "matrix.json", "markdown": out_dir / "matrix.md"}
    atomic_write_text(paths["json"], json.dumps(result, indent=2) + "\n")
    atomic_write_text(paths["markdown"], markdown_matrix(result))
    return paths


# ---- the real-data benchmark ----

def _benchmark_options(name: str, model: str | None, observer: str | None, max_tokens: int,
                       classifier_options: dict[str, Any] | None, backbone: str | None = None
                       ) -> dict[str, Any] | str:
    """A detector's options in the real-data benchmark, or why it cannot run."""
    if name == "tfidf":
        return {}
    if name == "encoder-classifier":
        return {"backbone": backbone, **(classifier_options or {})} if backbone else "needs --backbone"
    if model is None:
        return "needs a scoring checkpoint (--model)"
    if name == "classifier":
        return {"model": model, **(classifier_options or {})}
    if name == "binoculars" and observer is None:
        return "needs an observer checkpoint (--observer) sharing the model's tokenizer"
    return {"model": model, "max_tokens": max_tokens, **({"observer": observer} if name == "binoculars" else {})}


def real_data_benchmark(
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    detectors: Sequence[str] = REAL_DATA_DETECTORS,
    model: str | None = None,
    observer: str | None = None,
    max_tokens: int = 256,
    protocol: str = "subsets",
    classifier_options: dict[str, Any] | None = None,
    backbone: str | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Train and evaluate every detector on the gpt2-output subsets (`data.real_data_splits`), beside
    OpenAI's published TF-IDF figure. Detectors that need a checkpoint are skipped without `model`;
    binoculars also needs `observer`, encoder-classifier a `backbone` (an encoder transformers loads)."""
    splits = real_data_splits(data_dir, protocol, limit)
    train, valid, test = splits["train"], splits["valid"], splits["test"]
    results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for name in detectors:
        options = _benchmark_options(name, model, observer, max_tokens, classifier_options, backbone)
        if isinstance(options, str):
            skipped[name] = options
            continue
        det = make_detector(name, **options)
        det.progress = progress
        start = time.perf_counter()
        det.fit(train.real.texts, train.fake.texts, (valid.real.texts, valid.fake.texts))
        fit_seconds = time.perf_counter() - start
        r = evaluate(det, test.real, test.fake)
        r.update(fit_seconds=round(fit_seconds, 2), info=det.info,
                 model=options.get("model") or options.get("backbone"))
        results.append(r)
    write_report(results, out_dir, title=f"Detection on gpt2-output (117M top-k 40 vs WebText; "
                                         f"{protocol} split)")
    md = Path(out_dir) / "results.md"
    note = [
        f"OpenAI's published TF-IDF baseline on 117M top-k 40: {OPENAI_TFIDF_117M_K40:.2%} accuracy, "
        "trained on 250k + 250k texts, tested on 5k + 5k (gpt-2-output-dataset README).",
        f"Here: train {len(train.real)} + {len(train.fake)}, valid {len(valid.real)} + {len(valid.fake)}, "
        f"test {len(test.real)} + {len(test.fake)} (human + machine); the split is "
        f"gpt2.detection.data.real_data_splits(protocol={protocol!r}).",
    ]
    if model is not None:
        note.append(f"Scoring checkpoint: {model}" + (f"; observer: {observer}" if observer else "")
                    + f"; texts cut to {max_tokens} tokens for scoring.")
    note += [f"Skipped {k}: {v}." for k, v in skipped.items()]
    atomic_write_text(md, md.read_text(encoding="utf-8") + "\n".join(f"- {n}" for n in note) + "\n")
    return results
