"""The report's PNGs: mean credibility by source with 95% CIs (Cornell's published means drawn beside),
and the human ROC (each arm, and a detector on the same items when there is one). Titles say SIMULATED
when simulated raters are in the data."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a window (and no display on servers)

import matplotlib.pyplot as plt  # noqa: E402 (after choosing the backend)

from gpt2.detection.metrics import plot_roc  # noqa: E402


def _title(report: dict[str, Any], text: str) -> str:
    return text + (" (SIMULATED raters)" if report["simulated"] else "")


def credibility(report: dict[str, Any], path: Path) -> Path:
    rows = [r for r in report["credibility"] if not math.isnan(r["mean"])]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * (len(rows) + 3)), 4.2))
    x = range(len(rows))
    means = [r["mean"] for r in rows]
    errors = [[r["mean"] - r["ci95"][0] for r in rows], [r["ci95"][1] - r["mean"] for r in rows]]
    colours = ["#b5523b" if r["machine"] else "#2f5d8a" for r in rows]
    ax.bar(x, means, yerr=errors, capsize=5, color=colours, alpha=0.85)
    labels = [r["source"] for r in rows]
    reference = report["reference"]["cornell_credibility"]
    start = len(rows)
    ax.bar(range(start, start + len(reference)), list(reference.values()), color="#bbbbbb", hatch="//")
    ax.set_xticks(range(start + len(reference)), labels + [f"Cornell\n{k}" for k in reference], fontsize=8)
    ax.set_ylim(1, 10)
    ax.set_ylabel("mean credibility (1-10), 95% CI")
    ax.set_title(_title(report, "Credibility by source"), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def roc(report: dict[str, Any], path: Path) -> Path:
    curves = {}
    detection, arms, detector = report["detection"], report["arms"], report["detector"]
    if detection["roc"]:
        curves["humans"] = (detection["roc"]["fpr"], detection["roc"]["tpr"])
    for name in ("plain", "gltr"):
        if arms and arms[name]["roc"]:
            curves[f"humans, {name} arm"] = (arms[name]["roc"]["fpr"], arms[name]["roc"]["tpr"])
    if detector and detector["roc"]:
        curves[f"detector {detector['name']}"] = (detector["roc"]["fpr"], detector["roc"]["tpr"])
    return plot_roc(curves, path, title=_title(report, "Human ROC (confidence as the score)"))
