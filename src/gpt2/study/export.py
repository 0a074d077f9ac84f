"""Answers as files for analysis elsewhere: one row per answer, with the item's source (the export is for
the researchers, not the raters) and the simulated flag, as JSONL or CSV by the file's suffix."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from gpt2.files import atomic_write_text
from gpt2.study.spec import Study, StudyError

COLUMNS = ("rater", "arm", "simulated", "item", "source", "machine", "check", "credibility", "origin",
           "confidence", "comment", "seconds", "answered")


def rows(study: Study, answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for a in answers:
        item = study.items[a["item"]]
        out.append({**{k: a.get(k) for k in COLUMNS}, "source": item.source, "machine": item.machine,
                    "check": item.check})
    return out


def write_answers(study: Study, answers: list[dict[str, Any]], path: str | Path) -> int:
    """Write every answer to `path` (.jsonl or .csv); returns the number written."""
    path = Path(path)
    table = rows(study, answers)
    if path.suffix == ".jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in table)
    elif path.suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
        text = buffer.getvalue()
    else:
        raise StudyError(f"{path}: expected a .jsonl or .csv file name for the export")
    atomic_write_text(path, text)
    return len(table)
