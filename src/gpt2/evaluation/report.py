"""`results.json` (written and read back as a typed document) and a Markdown table that puts our numbers
beside the GPT-2 paper's.

Paper numbers: Table 3 of Radford et al. (2019), "Language Models are Unsupervised Multitask Learners"
(checked against a copy of the paper's text). WSC273 (70.70%, 1542M only) is not in Table 3 but in
Sec. 3.4; smaller sizes appear only in a figure. The paper's LAMBADA accuracy uses a stop-word filter
that is not reproduced here (see `gpt2.evaluation.lambada`), and its One Billion Word column has no task
here (the benchmark's test set is not redistributable in its original form).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpt2.errors import DataError
from gpt2.evaluation.prompted import PROMPTED_TASKS
from gpt2.evaluation.result import TaskResult
from gpt2.files import atomic_write_text, read_json_object

PAPER_SIZES = {"117M": 117e6, "345M": 345e6, "762M": 762e6, "1542M": 1542e6}

# (task, our metric key, scale applied to ours, label, paper values by size, lower is better, note)
PAPER_ROWS: list[tuple[str, str, float, str, dict[str, float], bool, str]] = [
    ("lambada", "perplexity_full_word", 1.0, "LAMBADA (PPL)",
     {"117M": 35.13, "345M": 15.60, "762M": 10.87, "1542M": 8.63}, True, ""),
    ("lambada", "accuracy_full_word", 100.0, "LAMBADA (ACC)",
     {"117M": 45.99, "345M": 55.48, "762M": 60.12, "1542M": 63.24}, False,
     "paper: with a stop-word filter; ours: every token of the word greedy, no filter"),
    ("cbt-cn", "accuracy", 100.0, "CBT-CN (ACC)",
     {"117M": 87.65, "345M": 92.35, "762M": 93.45, "1542M": 93.30}, False, ""),
    ("cbt-ne", "accuracy", 100.0, "CBT-NE (ACC)",
     {"117M": 83.4, "345M": 87.1, "762M": 88.0, "1542M": 89.05}, False, ""),
    ("wikitext2", "word_perplexity", 1.0, "WikiText2 (PPL)",
     {"117M": 29.41, "345M": 22.76, "762M": 19.93, "1542M": 18.34}, True, ""),
    ("ptb", "word_perplexity", 1.0, "PTB (PPL)",
     {"117M": 65.85, "345M": 47.33, "762M": 40.31, "1542M": 35.76}, True, ""),
    ("enwik8", "bits_per_byte", 1.0, "enwik8 (BPB)",
     {"117M": 1.16, "345M": 1.01, "762M": 0.97, "1542M": 0.93}, True, ""),
    ("text8", "bits_per_character", 1.0, "text8 (BPC)",
     {"117M": 1.17, "345M": 1.06, "762M": 1.02, "1542M": 0.98}, True, ""),
    ("wikitext103", "word_perplexity", 1.0, "WikiText103 (PPL)",
     {"117M": 37.50, "345M": 26.37, "762M": 22.05, "1542M": 17.48}, True, ""),
    ("wsc", "accuracy_partial", 100.0, "WSC273 (ACC)", {"1542M": 70.70}, False,
     "paper: Sec. 3.4, 1542M only"),
    # Secs. 3.6-3.8: generation, reported for the largest model only (not part of `--task paper`: hours of
    # decoding; run them by name)
    ("summarize", "rouge_avg", 1.0, "CNN/DM TL;DR: (R-AVG)", {"1542M": 21.40}, False,
     "paper: Table 4 (R-1 29.34, R-2 8.27, R-L 26.58)"),
    ("translate", "bleu", 1.0, "WMT14 Fr-En (BLEU)", {"1542M": 11.5}, False,
     "paper: Sec. 3.7; En-Fr 5 BLEU (--data-path the wmt14-en-fr file)"),
    ("qa", "exact_match", 1.0, "Natural Questions (EM)", {"1542M": 4.1}, False, "paper: Sec. 3.8"),
]
# What a metric outside the paper's rows means, when its name alone does not say whose definition it is.
METRIC_NOTES: dict[tuple[str, str], str] = {
    ("lambada", "accuracy_lm_eval"): "lm-evaluation-harness `lambada_openai` acc exactly (no <|endoftext|> "
                                     "before the passage); its published gpt2 (124M): 32.56%",
    ("lambada", "perplexity_lm_eval"): "lm-evaluation-harness `lambada_openai` perplexity exactly; its "
                                       "published gpt2 (124M): 40.06",
    ("lambada", "accuracy_last_token"): "the passage's final BPE token greedy (Megatron-LM's non-strict mode)",
    ("lambada", "perplexity_last_token"): "of the passage's final BPE token",
    ("hellaswag", "acc_lm_eval"): "lm-evaluation-harness `hellaswag` acc (its prompt and clean-up)",
    ("hellaswag", "acc_norm_lm_eval"): "lm-evaluation-harness `hellaswag` acc_norm (per character)",
    ("hellaswag", "acc_llm_c"): "llm.c / nanoGPT's hellaswag.py acc",
    ("hellaswag", "acc_norm_llm_c"): "llm.c / nanoGPT's hellaswag.py acc_norm (per token); GPT-2 124M: ~0.2955",
}
TABLE3 = tuple(dict.fromkeys(row[0] for row in PAPER_ROWS if row[0] not in PROMPTED_TASKS))


# The released models' real parameter counts (the paper's labels undercount: "117M" has 124,439,808).
RELEASED_PARAMETERS = {"117M": 124_439_808, "345M": 354_823_168, "762M": 774_030_080, "1542M": 1_557_611_200}


def nearest_paper_size(n_parameters: int) -> str:
    """The paper's model size closest to `n_parameters` on a log scale: the column a report compares with."""
    return min(PAPER_SIZES, key=lambda k: abs(math.log(max(n_parameters, 1) / PAPER_SIZES[k])))


def paper_size(n_parameters: int) -> str | None:
    """The paper's size this model is (within 5% of a released model's parameter count), else None."""
    size = min(RELEASED_PARAMETERS, key=lambda k: abs(math.log(max(n_parameters, 1) / RELEASED_PARAMETERS[k])))
    return size if abs(n_parameters / RELEASED_PARAMETERS[size] - 1) <= 0.05 else None


@dataclass
class Results:
    """A results.json: the model, the paper size it is compared with, and each task's `TaskResult.to_dict()`."""

    model: str | None
    model_parameters: int | None
    paper_size: str | None  # one of PAPER_SIZES, or None: not one of the paper's models
    tasks: dict[str, dict[str, Any]]  # task -> its entry as written; read_results checks metrics and n_examples
    updated: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # what the writer added (e.g. the dtype), as written

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "model_parameters": self.model_parameters, "paper_size": self.paper_size,
                "updated": self.updated, **self.extra, "tasks": self.tasks}

    @classmethod
    def from_dict(cls, doc: dict[str, Any], source: str = "results.json") -> Results:
        """The document checked field by field; a file written by hand may leave out all but `tasks`."""
        tasks = doc.get("tasks")
        if not isinstance(tasks, dict) or not tasks:
            raise DataError(f"{source}: field 'tasks' must be a non-empty object of task -> result, "
                            f"got {tasks!r}"[:300])
        for task, result in tasks.items():
            _check_task(result, f"{source}: field 'tasks.{task}")
        size = doc.get("paper_size")
        if size is not None and size not in PAPER_SIZES:
            raise DataError(f"{source}: field 'paper_size' must be one of {', '.join(PAPER_SIZES)}, got {size!r}")
        params = doc.get("model_parameters")
        if params is not None and (isinstance(params, bool) or not isinstance(params, int) or params <= 0):
            raise DataError(f"{source}: field 'model_parameters' must be a positive integer, got {params!r}")
        for key in ("model", "updated"):
            if not isinstance(doc.get(key), str | None):
                raise DataError(f"{source}: field {key!r} must be a string, got {doc[key]!r}"[:300])
        named = ("model", "model_parameters", "paper_size", "updated", "tasks")
        return cls(doc.get("model"), params, size, tasks, doc.get("updated"),
                   {k: v for k, v in doc.items() if k not in named})


def _check_task(result: Any, where: str) -> None:
    """A task's entry has finite metrics and, if any, a non-negative example count (`where` ends "field 'x")."""
    if not isinstance(result, dict) or not isinstance(result.get("metrics"), dict):
        raise DataError(f"{where}.metrics' must be an object of metric -> number")
    for name, value in result["metrics"].items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise DataError(f"{where}.metrics.{name}' must be a finite number, got {value!r}")
    n = result.get("n_examples")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
        raise DataError(f"{where}.n_examples' must be a non-negative integer, got {n!r}")


def read_results(path: str | os.PathLike) -> Results:
    """A results.json of `gpt2 eval`; errors name the file and the field."""
    doc = read_json_object(path, "a results.json written by `gpt2 eval --out DIR`")
    return Results.from_dict(doc, source=str(path))


def write_results(
    results: list[TaskResult],
    directory: str | os.PathLike,
    model: str,
    n_parameters: int,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write (or update) `results.json` and `results.md` in `directory`; returns both paths.

    Results of the same model already in `results.json` are kept (a task run again replaces its entry),
    so tasks can be run one command at a time into one directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "results.json", directory / "results.md"
    tasks: dict[str, Any] = {}
    if json_path.is_file():
        try:
            previous = json.loads(json_path.read_text(encoding="utf-8"))
            if previous.get("model") == model:
                tasks = previous.get("tasks", {})
        except (json.JSONDecodeError, OSError, AttributeError):
            tasks = {}
    for r in results:
        tasks[r.task] = r.to_dict()
    document = Results(model, n_parameters, paper_size(n_parameters), tasks,
                       updated=datetime.now(UTC).isoformat(timespec="seconds"), extra=dict(extra or {})).to_dict()
    atomic_write_text(json_path, json.dumps(document, indent=2) + "\n")
    atomic_write_text(md_path, markdown_table(document))
    return json_path, md_path


def markdown_table(document: dict[str, Any]) -> str:
    """A Markdown report of a `results.json` document: the paper's rows first, then other metrics."""
    size = document.get("paper_size") or nearest_paper_size(document["model_parameters"])
    tasks: dict[str, Any] = document["tasks"]
    compared = (f"compared with the paper's {size} model" if document.get("paper_size") else
                f"not one of the paper's sizes; the paper's {size} model shown for scale")
    lines = [
        f"# Zero-shot results: {document['model']}",
        "",
        f"{document['model_parameters']:,} parameters; {compared} (Radford et al., 2019, Table 3).",
    ]
    rows, shown = [], set()
    for task, key, scale, label, paper, _lower, note in PAPER_ROWS:
        if task not in tasks or key not in tasks[task]["metrics"]:
            continue
        r = tasks[task]
        ours = r["metrics"][key] * scale
        theirs = f"{paper[size]:.2f}" if size in paper else "-"
        runtime = f"{r['runtime_s']:.1f}"
        rows.append(f"| {label} | {ours:.2f} | {theirs} | {r['n_examples']:,} | {runtime} | {note} |")
        shown.add((task, key))
    if rows:
        lines += ["", f"| benchmark | ours | paper {size} | examples | runtime (s) | note |",
                  "| --- | ---: | ---: | ---: | ---: | --- |", *rows]
    others = [(t, k, v) for t, r in tasks.items() for k, v in r["metrics"].items() if (t, k) not in shown]
    if others:
        lines += ["", "| task | metric | value | definition |", "| --- | --- | ---: | --- |"]
        lines += [f"| {t} | {k} | {v:.4f} | {METRIC_NOTES.get((t, k), '')} |" for t, k, v in others]
    lines.append("")
    return "\n".join(lines)
