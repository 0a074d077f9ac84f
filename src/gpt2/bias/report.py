"""The bias report: bias.json (`BiasReport.to_dict`), bias.md and bias.png as `gpt2 bias` writes them, and
`read_bias`, the summary of a bias.json that the model card shows."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gpt2.bias.probes import ProbeSettings
from gpt2.bias.stats import LogprobGap, WordStat, mean_gaps
from gpt2.errors import DataError
from gpt2.files import atomic_write, atomic_write_text, read_json_object

FORMAT, VERSION = "gpt2-bias", 1


@dataclass
class BiasReport:
    """What `run_probes` finds; `to_dict` is the bias.json document."""

    model_parameters: int | None
    settings: ProbeSettings
    dimensions: dict[str, list[str]]  # dimension -> groups
    templates: dict[str, str | None]  # template -> the attribute list scored after it
    attributes: dict[str, list[str]]
    overrepresented: dict[str, dict[str, list[WordStat]]]  # dimension -> group -> top words, highest z first
    logprob_gaps: dict[str, list[LogprobGap]]  # dimension -> rows, widest spread first
    completions: dict[str, dict[str, dict[str, list[str]]]]  # dimension -> group -> template -> samples

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "version": VERSION, "model_parameters": self.model_parameters,
            "settings": self.settings.to_dict(),
            "dimensions": self.dimensions, "templates": self.templates, "attributes": self.attributes,
            "overrepresented": {dim: {g: [asdict(s) for s in stats] for g, stats in by_group.items()}
                                for dim, by_group in self.overrepresented.items()},
            "logprob_gaps": {dim: [r.to_dict() for r in rows] for dim, rows in self.logprob_gaps.items()},
            "completions": self.completions,
        }


# ---- bias.md ----

def markdown(report: BiasReport, model: str, top_gaps: int = 12, examples: int = 3) -> str:
    """bias.md: over-represented words and the widest log-probability gaps, per dimension."""
    lines = _md_header(report, model)
    for dim in report.dimensions:
        lines += _md_dimension(report, dim, top_gaps, examples)
    lines.append("")
    return "\n".join(lines)


def _md_header(report: BiasReport, model: str) -> list[str]:
    s = report.settings
    return [
        f"# Bias probes: {model}",
        "",
        f"{s.samples} top-k {s.top_k} samples (up to {s.max_new_tokens} tokens, to the end of the line, "
        f"seed {s.seed}) per template and group; templates: "
        + ", ".join(f'"{t}"' for t in report.templates) + ".",
        "",
        f"**Over-represented words**: {s.statistic} (prior strength {s.prior_strength:g}); a z above "
        "1.96 would be 'significant' at 5% for one word taken alone, but many words are compared and "
        "samples are few, so read these as pointers.",
        "",
        f"**Log-probability gaps**: {s.logprob}. A gap of +0.69 nats means twice as likely as the mean.",
    ]


def _md_dimension(report: BiasReport, dim: str, top_gaps: int, examples: int) -> list[str]:
    """A dimension's words table, its widest gaps and a few example completions of the first template."""
    groups = report.dimensions[dim]
    lines = ["", f"## {dim}", "", "| group | most over-represented words (z) |", "| --- | --- |"]
    for g in groups:
        listed = ", ".join(f"{w.word} ({w.z:.1f})" for w in report.overrepresented[dim][g]) or "-"
        lines.append(f"| {g} | {listed} |")
    rows = report.logprob_gaps[dim][:top_gaps]
    if rows:
        lines += ["", f"Widest gaps (log p minus the {dim} mean, nats):", "",
                  "| template | attribute | " + " | ".join(groups) + " | spread |",
                  "| --- | --- | " + " | ".join("---:" for _ in groups) + " | ---: |"]
        lines += [f"| {r.template} | {r.attribute} | " + " | ".join(f"{r.gap[g]:+.2f}" for g in groups)
                  + f" | {r.spread:.2f} |" for r in rows]
    first = next(iter(report.templates))
    lines += ["", f"Example completions of \"{first}\":", ""]
    for g in groups:
        prompt = first.format(group=g)  # in italics, then the sample
        lines += [f"- *{prompt}*{_md_escape(t)}" for t in report.completions[dim][g][first][:examples]]
    return lines


def _md_escape(text: str) -> str:
    """Model text shown as plain text: Markdown's special characters escaped, on one line."""
    return re.sub(r"([\\`*_|<>\[\]#])", r"\\\1", text.replace("\n", " "))


# ---- bias.png ----

def plot(report: BiasReport, path: str | os.PathLike, top: int = 10) -> None:
    """bias.png: per dimension, the attributes with the widest gaps (averaged over the templates that score
    them), one bar per group, written atomically."""
    # imported here: matplotlib is slow to load and only the plot needs it
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(report.dimensions)
    # The object API with the Agg canvas: no display and no pyplot global state.
    fig = Figure(figsize=(9, 3.2 + 0.35 * top * n), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    for ax, (dim, groups) in zip(axes, report.dimensions.items(), strict=True):
        _plot_dimension(ax, dim, groups, mean_gaps(report.logprob_gaps[dim], groups), top)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _plot_dimension(ax, dim: str, groups: Sequence[str], mean: Mapping[str, Mapping[str, float]], top: int) -> None:
    """The `top` attributes of widest mean spread, one horizontal bar per group."""
    ranked = sorted(mean, key=lambda a: (-(max(mean[a].values()) - min(mean[a].values())), a))[:top]
    height = 0.8 / len(groups)
    for k, g in enumerate(groups):
        ys = [i + (k - (len(groups) - 1) / 2) * height for i in range(len(ranked))]
        ax.barh(ys, [mean[a][g] for a in ranked], height=height, label=g)
    ax.set_yticks(range(len(ranked)), ranked)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_title(f"{dim}: log p(attribute) minus the {dim} mean (nats)", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(axis="x", alpha=0.3)


# ---- the three files ----

def write_report(report: BiasReport, directory: str | os.PathLike, model: str) -> tuple[Path, Path, Path]:
    """Write bias.json, bias.md and bias.png into `directory`; returns their paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    js, md, png = directory / "bias.json", directory / "bias.md", directory / "bias.png"
    atomic_write_text(js, json.dumps({"model": model, **report.to_dict()}, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(md, markdown(report, model))
    plot(report, png)
    return js, md, png


# ---- reading a bias.json back: the model card's summary ----

@dataclass
class BiasDimension:
    groups: list[str]
    widest_gap: LogprobGap | None  # the attribute whose log-probability differs most between the groups
    top_words: dict[str, list[str]]  # group -> its most over-represented words

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> BiasDimension:
        widest = LogprobGap.from_dict(doc["widest_gap"]) if doc["widest_gap"] is not None else None
        return cls(doc["groups"], widest, doc["top_words"])


@dataclass
class BiasProbes:
    """A bias.json of `gpt2 bias`, summarised per dimension."""

    file: str
    settings: ProbeSettings
    dimensions: dict[str, BiasDimension]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "settings": self.settings.to_dict(),
                "dimensions": {dim: asdict(v) for dim, v in self.dimensions.items()}}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> BiasProbes:
        return cls(doc["file"], ProbeSettings.from_dict(doc["settings"]),
                   {dim: BiasDimension.from_dict(v) for dim, v in doc["dimensions"].items()})


def read_bias(path: str | os.PathLike) -> BiasProbes:
    """A bias.json, checked for the fields the summary reads (a partial file will do), summarised per
    dimension: the attribute whose log-probability differs most between groups, and each group's most
    over-represented words. Errors name the file and the field."""
    path = Path(path)
    doc = _read_object(path)
    for key in ("dimensions", "overrepresented", "logprob_gaps", "settings"):
        if not isinstance(doc.get(key), dict):
            raise DataError(f"{path}: field {key!r} must be an object; is this a bias.json of `gpt2 bias`?")
    dimensions = {}
    for dim, groups in doc["dimensions"].items():
        try:
            rows = [LogprobGap.from_dict(r) for r in doc["logprob_gaps"].get(dim) or []]
            words = {g: [w["word"] for w in ws[:5]] for g, ws in doc["overrepresented"].get(dim, {}).items()}
        except (KeyError, TypeError, AttributeError):
            raise DataError(f"{path}: fields 'logprob_gaps.{dim}' and 'overrepresented.{dim}' must hold the rows "
                            "of a bias.json of `gpt2 bias`") from None
        dimensions[dim] = BiasDimension(groups, max(rows, key=lambda r: r.spread, default=None), words)
    return BiasProbes(str(path), ProbeSettings.from_dict(doc["settings"]), dimensions)


def _read_object(path: Path) -> dict[str, Any]:
    return read_json_object(path, "a bias.json written by `gpt2 bias --out DIR`")
