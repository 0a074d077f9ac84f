"""The report as Markdown: one table per question, the published figures beside as the reference."""

from __future__ import annotations

import math
from typing import Any

SIMULATED_BANNER = ("**SIMULATED RATERS**: these numbers come from gpt2.study.simulate's noise model, not from "
                    "people. Do not cite them.")


def num(x: Any, digits: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def pct(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def markdown(report: dict[str, Any], files: dict[str, str]) -> str:
    title = report["title"] + (" (SIMULATED)" if report["simulated"] else "")
    parts = [f"# {title}\n"]
    if report["simulated"]:
        parts.append(SIMULATED_BANNER + "\n")
    raters = report["raters"]
    parts.append(f"Study `{report['study']}`: {raters['answered']} raters answered, {len(raters['excluded'])} "
                 f"excluded by attention checks, {report['answers']} answers analysed.\n")
    parts += [_credibility(report, files), _detection(report, files), _arms(report), _agreement(report),
              _detector(report), _excluded(report), _reference(report)]
    return "\n".join(p for p in parts if p)


def _credibility(report: dict, files: dict) -> str:
    lines = ["## Credibility\n", f"Question: \"{report['questions']['credibility']}\"\n",
             "| source | answers | mean | 95% CI (bootstrap) | rated above the midpoint |", "|---|---|---|---|---|"]
    for row in report["credibility"]:
        low, high = row["ci95"]
        lines.append(f"| {row['source']} | {row['answers']} | {num(row['mean'])} | {num(low)} - {num(high)} | "
                     f"{pct(row['credible_share'])} |")
    ref = report["reference"]["cornell_credibility"]
    lines.append("\nReference (Cornell, in the 1.5B release): " + ", ".join(f"{k} {v}" for k, v in ref.items())
                 + " out of 10; New York Times 83% vs GPT-2 72% rated credible.")
    if "credibility_png" in files:
        lines.append(f"\n![credibility by source]({files['credibility_png']})")
    return "\n".join(lines) + "\n"


def _detection(report: dict, files: dict) -> str:
    d = report["detection"]
    if d is None:
        return ""
    lines = ["## Person or machine?\n", f"Question: \"{report['questions']['origin']}\"\n",
             f"Accuracy {pct(d['accuracy'])} over {d['answers']} answers; AUROC {num(d['auroc'], 3)} "
             "(confidence as the score: +confidence for machine, -confidence for person).\n",
             "| source | answers | correct |", "|---|---|---|"]
    lines += [f"| {r['source']} | {r['answers']} | {pct(r['accuracy'])} |" for r in d["by_source"]]
    if "roc_png" in files:
        lines.append(f"\n![human ROC]({files['roc_png']})")
    return "\n".join(lines) + "\n"


def _arms(report: dict) -> str:
    a = report["arms"]
    if a is None:
        return ""
    lines = ["## GLTR colours vs plain text\n", "| arm | raters | answers | accuracy | AUROC |",
             "|---|---|---|---|---|"]
    for name in ("plain", "gltr"):
        r = a[name]
        lines.append(f"| {name} | {r['raters']} | {r['answers']} | {pct(r['accuracy'])} | {num(r['auroc'], 3)} |")
    ref = report["reference"]["gltr_human_accuracy"]
    lines.append(f"\nDifference (GLTR - plain): {pct(a['difference'])}; {a['z_test']['test']}: z = "
                 f"{num(a['z_test']['z'])}, p = {num(a['z_test']['p'], 4)}; {a['permutation']['test']}: p = "
                 f"{num(a['permutation']['p'], 4)}.\n\nReference (GLTR's study): {pct(ref['plain'])} without "
                 f"colours, {pct(ref['gltr'])} with them.")
    return "\n".join(lines) + "\n"


def _agreement(report: dict) -> str:
    g = report["agreement"]
    return ("## Agreement between raters\n\nKrippendorff's alpha over "
            f"{g['items']} items rated by two or more raters: credibility {num(g['credibility_interval'], 3)} "
            f"(interval), {num(g['credibility_ordinal'], 3)} (ordinal); person/machine "
            f"{num(g['origin_nominal'], 3)} (nominal).\n")


def _detector(report: dict) -> str:
    d = report["detector"]
    if d is None:
        return ""
    lines = [f"## Detector `{d['name']}` on the same items\n",
             f"{d['items']} items: accuracy {pct(d['accuracy'])} at threshold {num(d['threshold'], 3)}, AUROC "
             f"{num(d['auroc'], 3)} (humans: {pct((report['detection'] or {}).get('accuracy'))}, AUROC "
             f"{num((report['detection'] or {}).get('auroc'), 3)}).\n",
             "| source | detector correct | humans correct | better |", "|---|---|---|---|"]
    lines += [f"| {r['source']} | {pct(r['detector_accuracy'])} | {pct(r['human_accuracy'])} | {r['better']} |"
              for r in d["by_source"]]
    return "\n".join(lines) + "\n"


def _excluded(report: dict) -> str:
    excluded = report["raters"]["excluded"]
    if not excluded:
        return "## Attention checks\n\nNo rater failed an attention check.\n"
    lines = ["## Attention checks\n", "Excluded raters (all their answers left out):\n"]
    lines += [f"- rater {e['rater']}: {'; '.join(e['reasons'])}" for e in excluded]
    return "\n".join(lines) + "\n"


def _reference(report: dict) -> str:
    return f"## Reference\n\nPublished figures from {report['reference']['sources']}.\n"
