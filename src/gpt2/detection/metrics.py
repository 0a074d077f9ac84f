"""Detection metrics: accuracy at a threshold, the ROC curve, AUROC, TPR at a fixed FPR, accuracy by length,
and the ROC plot. Labels: 1 = machine text (the positive class), 0 = human; scores: higher = more machine.

Conventions (tested against scikit-learn's `roc_curve` and `roc_auc_score`):
- The ROC curve has a point for every distinct score (scikit-learn's `drop_intermediate=False`), plus
  (0, 0); texts with tied scores move the curve in one diagonal step.
- AUROC is the area under that curve (trapezoids), i.e. P(score_machine > score_human) + P(tie) / 2.
- TPR at FPR f reads the curve at f by linear interpolation between its neighbouring points (the TPR a
  detector reaches by randomising between two thresholds), taking the highest TPR where the curve is
  vertical at f. With N human texts, FPRs below 1/N are interpolated between (0, TPR at the highest human
  score) and the next point: on small test sets TPR at 0.1% FPR rests on one or two texts.
- Accuracy at threshold t predicts "machine" when score > t.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

TOKEN_EDGES = (0, 64, 128, 256, 512, 1024)  # length buckets in tokens: [0, 64), ..., [1024, inf)
CHAR_EDGES = (0, 250, 500, 1000, 2000, 4000)
FPR_TARGETS = (0.01, 0.001)


def _arrays(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{len(y)} labels but {len(s)} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (human) or 1 (machine)")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return y, s


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): one point per distinct score, highest first, after (0, 0) at +inf."""
    y, s = _arrays(labels, scores)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if pos == 0 or neg == 0:
        raise ValueError("the ROC curve needs both human (0) and machine (1) texts")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # the last index of each run of equal scores
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    fpr = np.r_[0.0, fp / neg]
    tpr = np.r_[0.0, tp / pos]
    return fpr, tpr, np.r_[np.inf, s[last]]


def auroc(labels, scores) -> float:
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.trapezoid(tpr, fpr))


def tpr_at_fpr(labels, scores, fpr_target: float) -> float:
    """TPR of the ROC curve at `fpr_target`, interpolated linearly (see the module docstring)."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return _read_curve(fpr, tpr, fpr_target)


def _read_curve(fpr: np.ndarray, tpr: np.ndarray, f: float) -> float:
    j = int(np.searchsorted(fpr, f, side="right"))  # first point past f
    if j == len(fpr):
        return float(tpr[-1])
    i = j - 1  # the last point at or before f: the highest TPR there, the curve being monotone
    if fpr[i] == f:
        return float(tpr[i])
    return float(tpr[i] + (tpr[j] - tpr[i]) * (f - fpr[i]) / (fpr[j] - fpr[i]))


def accuracy(labels, scores, threshold: float = 0.5) -> float:
    y, s = _arrays(labels, scores)
    return float(np.mean((s > threshold) == (y == 1)))


def best_threshold(labels, scores) -> float:
    """The threshold with the highest accuracy: a midpoint between neighbouring distinct scores (the
    middle of the best run when several tie), so that no score sits on it."""
    y, s = _arrays(labels, scores)
    values = np.unique(s)
    cuts = np.r_[values[0] - 1.0, (values[:-1] + values[1:]) / 2, values[-1] + 1.0]
    acc = np.array([np.mean((s > c) == (y == 1)) for c in cuts])
    best = np.flatnonzero(acc == acc.max())
    return float(cuts[best[len(best) // 2]])


def length_buckets(lengths: Sequence[float], edges: Sequence[float]) -> list[str]:
    names = [f"{a}-{b}" for a, b in zip(edges[:-1], edges[1:], strict=True)] + [f"{edges[-1]}+"]
    idx = np.searchsorted(np.asarray(edges[1:]), np.asarray(lengths, dtype=np.float64), side="right")
    return [names[i] for i in idx]


def accuracy_by_length(labels, scores, lengths, edges: Sequence[float], threshold: float = 0.5
                       ) -> list[dict[str, Any]]:
    """Accuracy per length bucket [edges[i], edges[i+1]) (the last open-ended); empty buckets left out."""
    y, s = _arrays(labels, scores)
    buckets = np.asarray(length_buckets(lengths, edges))
    rows = []
    names = [f"{a}-{b}" for a, b in zip(edges[:-1], edges[1:], strict=True)] + [f"{edges[-1]}+"]
    for name in names:
        m = buckets == name
        if m.any():
            rows.append({"bucket": name, "n": int(m.sum()), "human": int((y[m] == 0).sum()),
                         "machine": int((y[m] == 1).sum()),
                         "accuracy": float(np.mean((s[m] > threshold) == (y[m] == 1)))})
    return rows


def summary(labels, scores, threshold: float = 0.5, lengths=None, length_unit: str = "tokens"
            ) -> dict[str, Any]:
    """Every headline metric of one evaluation, JSON-ready."""
    y, s = _arrays(labels, scores)
    fpr, tpr, _ = roc_curve(y, s)
    out: dict[str, Any] = {
        "n": len(y), "human": int((y == 0).sum()), "machine": int((y == 1).sum()),
        "threshold": threshold,
        "accuracy": accuracy(y, s, threshold),
        "auroc": float(np.trapezoid(tpr, fpr)),
        **{f"tpr_at_{_pct(f)}_fpr": _read_curve(fpr, tpr, f) for f in FPR_TARGETS},
    }
    if lengths is not None:
        edges = TOKEN_EDGES if length_unit == "tokens" else CHAR_EDGES
        out["length_unit"] = length_unit
        out["accuracy_by_length"] = accuracy_by_length(y, s, lengths, edges, threshold)
    out["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return out


def _pct(f: float) -> str:
    return f"{f * 100:g}pct"


def plot_roc(curves: dict[str, tuple[Sequence[float], Sequence[float]]], path: str | Path,
             title: str = "ROC") -> Path:
    """Write ROC curves {label: (fpr, tpr)} as a PNG (linear and log-FPR panels)."""
    import matplotlib  # lazy: about half a second to import, and only reports draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for name, (fpr, tpr) in curves.items():
        area = float(np.trapezoid(tpr, fpr))
        for ax in axes:
            ax.plot(fpr, tpr, label=f"{name} (AUROC {area:.3f})", drawstyle="default")
    for ax, scale in zip(axes, ("linear", "log"), strict=True):
        ax.plot([1e-4, 1], [1e-4, 1], ":", color="grey", lw=1)
        ax.set_xscale(scale)
        ax.set_xlim(1e-3 if scale == "log" else 0, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false positive rate (human texts flagged)")
        ax.set_ylabel("true positive rate (machine texts caught)")
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    axes[1].set_title("log FPR")
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def fmt_pct(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.2f}%"
