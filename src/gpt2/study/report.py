"""The study's report: credibility by source with bootstrap CIs, human detection accuracy and AUROC, the
GLTR arm against the plain arm, inter-rater agreement, the raters the attention checks excluded and why,
and optionally an automatic detector on the same items; the published figures beside as the reference.
Written as report.json, report.md and PNGs (plots.py). A report with any simulated rater says so in its
title, its JSON (`simulated`) and every plot."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from gpt2.detection.metrics import auroc, roc_curve
from gpt2.files import atomic_write_text
from gpt2.study import plots
from gpt2.study.markdown import markdown
from gpt2.study.spec import REFERENCE, Study
from gpt2.study.stats import (
    bootstrap_mean_ci,
    human_score,
    krippendorff_alpha,
    permutation_p,
    two_proportion_z,
)


def build_report(study: Study, answers: list[dict[str, Any]], detector=None, n_boot: int = 2000,
                 seed: int = 0) -> dict[str, Any]:
    """The report's numbers from the store's answers (Store.answers()); `detector` (name, threshold,
    score(texts)) is scored on the same study items."""
    rows = [{**a, **_item_fields(study, a["item"])} for a in answers]
    excluded = attention(study, rows)
    kept = [r for r in rows if r["check"] is None and r["rater"] not in excluded]
    raters = {r["rater"] for r in rows}
    report: dict[str, Any] = {
        "title": study.title, "study": str(study.path), "simulated": any(r["simulated"] for r in rows),
        "simulated_raters": len({r["rater"] for r in rows if r["simulated"]}),
        "questions": {"credibility": study.questions["credibility"]["text"],
                      "origin": (study.questions.get("origin") or {}).get("text")},
        "raters": {"answered": len(raters), "excluded": [{"rater": k, "reasons": v} for k, v in
                                                        sorted(excluded.items())],
                   "kept": len(raters - set(excluded))},
        "answers": len(kept),
        "credibility": credibility(study, kept, n_boot, seed),
        "detection": detection(study, kept) if study.questions.get("origin") else None,
        "arms": arms(kept, seed) if study.gltr_arm and study.questions.get("origin") else None,
        "agreement": agreement(kept, origin=bool(study.questions.get("origin"))),
        "detector": detector_section(study, detector, kept) if detector is not None else None,
        "reference": REFERENCE,
    }
    return report


def _item_fields(study: Study, item_id: str) -> dict[str, Any]:
    item = study.items[item_id]
    return {"source": item.source, "machine": item.machine, "check": item.check}


def attention(study: Study, rows: list[dict[str, Any]]) -> dict[int, list[str]]:
    """{rater: reasons} for every rater who failed an attention check they answered: a repeated text
    rated more than `repeat_tolerance` apart or judged differently (person/machine), or a garbled text
    rated above `garbled_max`. A check not yet answered excludes no one."""
    if study.checks is None:
        return {}
    by_rater: dict[int, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        by_rater[r["rater"]][r["item"]] = r
    tol, top = study.checks["repeat_tolerance"], study.checks["garbled_max"]
    out: dict[int, list[str]] = {}
    for rater, answered in by_rater.items():
        reasons = []
        for item_id, r in answered.items():
            item = study.items[item_id]
            again = answered.get(item.pair) if item.check == "original" else None
            if again is not None and abs(r["credibility"] - again["credibility"]) > tol:
                reasons.append(f"repeated text rated {r['credibility']} then {again['credibility']} "
                               f"(more than {tol} apart)")
            if again is not None and r["origin"] != again["origin"]:
                reasons.append(f"repeated text judged {r['origin']} then {again['origin']}")
            if item.check == "garbled" and r["credibility"] > top:
                reasons.append(f"garbled text rated {r['credibility']} (expected at most {top})")
        if reasons:
            out[rater] = reasons
    return out


def credibility(study: Study, kept: list[dict], n_boot: int, seed: int) -> list[dict[str, Any]]:
    """Per source: answers, mean credibility with its bootstrap 95% CI, and the share rated above the
    scale's midpoint ("credible", as Cornell's 83% / 72% split reads)."""
    q = study.questions["credibility"]
    middle = (q["min"] + q["max"]) / 2
    out = []
    for source in study.sources:
        values = [r["credibility"] for r in kept if r["source"] == source["label"]]
        mean, low, high = bootstrap_mean_ci(values, n_boot=n_boot, seed=seed)
        out.append({"source": source["label"], "machine": source["machine"], "answers": len(values),
                    "mean": mean, "ci95": [low, high],
                    "credible_share": float(np.mean([v > middle for v in values])) if values else math.nan})
    return out


def _roc(rows: list[dict]) -> dict[str, Any]:
    """Accuracy, AUROC and the ROC curve of answers as a detector (stats.human_score)."""
    labels = [int(r["machine"]) for r in rows]
    scores = [human_score(r["origin"], r["confidence"]) for r in rows]
    correct = sum((r["origin"] == "machine") == r["machine"] for r in rows)
    out = {"answers": len(rows), "correct": correct, "accuracy": correct / len(rows) if rows else math.nan,
           "auroc": math.nan, "roc": None}
    if 0 < sum(labels) < len(labels):
        fpr, tpr, _ = roc_curve(labels, scores)
        out.update(auroc=auroc(labels, scores), roc={"fpr": fpr.tolist(), "tpr": tpr.tolist()})
    return out


def detection(study: Study, kept: list[dict]) -> dict[str, Any]:
    """Human detection: overall accuracy and AUROC (from confidence), and accuracy per source (for a
    machine source, the share called machine; for a real one, the share called person)."""
    out = _roc(kept)
    out["by_source"] = [{"source": s["label"], "machine": s["machine"], **{k: v for k, v in _roc(
        [r for r in kept if r["source"] == s["label"]]).items() if k in ("answers", "correct", "accuracy")}}
        for s in study.sources]
    return out


def arms(kept: list[dict], seed: int) -> dict[str, Any]:
    """The GLTR experiment: accuracy and AUROC in each arm, a two-proportion z-test on the answers and a
    permutation test on the raters' own accuracies (raters, not answers, are what was randomised)."""
    out: dict[str, Any] = {}
    per_rater: dict[str, list[float]] = {}
    for name in ("gltr", "plain"):
        rows = [r for r in kept if r["arm"] == name]
        out[name] = {**_roc(rows), "raters": len({r["rater"] for r in rows})}
        by_rater = defaultdict(list)
        for r in rows:
            by_rater[r["rater"]].append((r["origin"] == "machine") == r["machine"])
        per_rater[name] = [float(np.mean(v)) for v in by_rater.values()]
    g, p = out["gltr"], out["plain"]
    z, pz = two_proportion_z(g["correct"], g["answers"], p["correct"], p["answers"])
    out["difference"] = g["accuracy"] - p["accuracy"] if g["answers"] and p["answers"] else math.nan
    out["z_test"] = {"z": z, "p": pz, "test": "two-proportion z-test (pooled), answers as independent"}
    out["permutation"] = {"p": permutation_p(per_rater["gltr"], per_rater["plain"], seed=seed),
                          "test": "permutation test of the mean per-rater accuracy, 5000 relabellings of raters"}
    return out


def agreement(kept: list[dict], origin: bool) -> dict[str, Any]:
    """Krippendorff's alpha over the items: credibility as interval and ordinal data, person/machine as
    nominal. Only items rated by two or more kept raters count (pairable values)."""
    cred, said = defaultdict(list), defaultdict(list)
    for r in kept:
        cred[r["item"]].append(r["credibility"])
        if origin:
            said[r["item"]].append(r["origin"])
    units = [u for u in cred.values() if len(u) >= 2]
    return {"items": len(units),
            "credibility_interval": krippendorff_alpha(units, "interval") if units else math.nan,
            "credibility_ordinal": krippendorff_alpha(units, "ordinal") if units else math.nan,
            "origin_nominal": krippendorff_alpha([u for u in said.values() if len(u) >= 2], "nominal")
            if origin and units else math.nan}


def detector_section(study: Study, detector, kept: list[dict]) -> dict[str, Any]:
    """The detector on every study item (once each), beside the humans' answers on the same items: AUROC,
    accuracy at its threshold, and per source which of the two is more accurate."""
    items = [i for i in study.items.values() if i.check is None]
    scores = np.asarray(detector.score([i.text for i in items]), dtype=np.float64)
    labels = [int(i.machine) for i in items]
    threshold = float(getattr(detector, "threshold", 0.5))
    correct = [(s > threshold) == i.machine for s, i in zip(scores, items, strict=True)]
    out: dict[str, Any] = {"name": getattr(detector, "name", "detector"), "threshold": threshold,
                           "items": len(items), "accuracy": float(np.mean(correct)), "auroc": math.nan,
                           "roc": None, "by_source": []}
    if 0 < sum(labels) < len(labels):
        fpr, tpr, _ = roc_curve(labels, scores)
        out.update(auroc=auroc(labels, scores), roc={"fpr": fpr.tolist(), "tpr": tpr.tolist()})
    for s in study.sources:
        mine = [c for c, i in zip(correct, items, strict=True) if i.source == s["label"]]
        humans = [(r["origin"] == "machine") == r["machine"] for r in kept if r["source"] == s["label"]
                  and r["origin"] is not None]
        det, hum = float(np.mean(mine)) if mine else math.nan, float(np.mean(humans)) if humans else math.nan
        better = "-" if math.isnan(det) or math.isnan(hum) else "detector" if det > hum else \
            "humans" if hum > det else "tie"
        out["by_source"].append({"source": s["label"], "detector_accuracy": det, "human_accuracy": hum,
                                 "better": better})
    return out


def write_report(report: dict[str, Any], out: str | Path) -> dict[str, Path]:
    """report.json, report.md, credibility.png and roc.png in `out`; returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "report.json", "markdown": out / "report.md"}
    atomic_write_text(paths["json"], json.dumps(_finite(report), indent=2) + "\n")
    paths["credibility_png"] = plots.credibility(report, out / "credibility.png")
    if report["detection"] is not None:
        paths["roc_png"] = plots.roc(report, out / "roc.png")
    atomic_write_text(paths["markdown"], markdown(report, {k: p.name for k, p in paths.items()}))
    return paths


def _finite(x: Any) -> Any:
    """NaN (an undefined statistic) as JSON null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_finite(v) for v in x]
    return x
