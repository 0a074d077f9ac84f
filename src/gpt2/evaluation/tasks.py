"""The task registry: names, standard files, and `run_task`, the one entry point the CLI uses.

Data files are never downloaded. A task reads `data_path` when given, else the task's standard file under
`$GPT2_DATA_DIR`, a directory laid out like this (the layout of the project's reference data):

    wikitext2/wiki.test.tokens   wikitext103/wiki.test.tokens   ptb/ptb.test.txt
    enwik8/enwik8                text8/text8                    lambada/lambada_test.jsonl
    wsc/WSCollection.xml         cbt/cbtest_CN_test_2500ex.txt  cbt/cbtest_NE_test_2500ex.txt
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gpt2.errors import DataError
from gpt2.evaluation.base import TaskResult
from gpt2.evaluation.cbt import evaluate_cbt
from gpt2.evaluation.lambada import evaluate_lambada
from gpt2.evaluation.perplexity import LM_TASKS, evaluate_lm
from gpt2.evaluation.prompted import evaluate_coqa, evaluate_qa, evaluate_summarize, evaluate_translate
from gpt2.evaluation.winograd import evaluate_wsc

DATA_DIR_ENV = "GPT2_DATA_DIR"


@dataclass(frozen=True)
class Task:
    name: str
    default_path: str | None
    description: str


TASKS: dict[str, Task] = {
    **{name: Task(name, t.default_path, t.description) for name, t in LM_TASKS.items()},
    "lambada": Task("lambada", "lambada/lambada_test.jsonl", "LAMBADA last-word accuracy and perplexity"),
    "cbt-cn": Task("cbt-cn", "cbt/cbtest_CN_test_2500ex.txt", "Children's Book Test, common nouns"),
    "cbt-ne": Task("cbt-ne", "cbt/cbtest_NE_test_2500ex.txt", "Children's Book Test, named entities"),
    "wsc": Task("wsc", "wsc/WSCollection.xml", "Winograd Schema Challenge, WSC273"),
    "summarize": Task("summarize", None, 'jsonl {"article", "summary"}: TL;DR: prompt, ROUGE'),
    "translate": Task("translate", None, 'jsonl {"source", "target"}: few-shot "a = b" prompt, BLEU'),
    "qa": Task("qa", None, 'jsonl {"question", "answer"}: few-shot Q:/A: prompt, exact match'),
    "coqa": Task("coqa", None, 'jsonl {"story", "questions", "answers"}: conversational QA, F1'),
}


def resolve_data_path(task: str, data_path: str | os.PathLike | None = None) -> Path:
    """`data_path` if given, else the task's standard file under $GPT2_DATA_DIR; a clear error otherwise."""
    spec = TASKS[task]
    if data_path is not None:
        return Path(data_path)
    root = os.environ.get(DATA_DIR_ENV)
    if spec.default_path is None:
        raise DataError(f"task {task!r} ({spec.description}) needs --data-path")
    if not root:
        raise DataError(
            f"task {task!r} needs its data file: pass --data-path (the standard file, e.g. "
            f"{Path(spec.default_path).name}) or set {DATA_DIR_ENV} to a directory holding "
            f"{spec.default_path}"
        )
    path = Path(root) / spec.default_path
    if not path.exists():
        raise DataError(f"{path}: not found ({DATA_DIR_ENV}={root}); expected {spec.default_path} under it, "
                        "or pass --data-path")
    return path


def run_task(
    task: str,
    model,
    tokenizer,
    data_path: str | os.PathLike | None = None,
    *,
    limit: int | None = None,
    batch_size: int = 8,
    stride: int | None = None,
    detokenize: bool = True,
    progress: bool = False,
    shots: int = 5,
    seed: int = 0,
) -> TaskResult:
    """Evaluate `model` on one task; see each task module for what exactly is scored. `shots` (examples in
    the prompt of translate and qa) and `seed` (summarize's sampling) matter to prompted tasks only."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit}")
    path = resolve_data_path(task, data_path)
    common = dict(limit=limit, batch_size=batch_size, progress=progress)
    if task in LM_TASKS:
        return evaluate_lm(model, tokenizer, task, path, stride=stride, detokenize=detokenize, **common)
    if task == "lambada":
        return evaluate_lambada(model, tokenizer, path, **common)
    if task in ("cbt-cn", "cbt-ne"):
        return evaluate_cbt(model, tokenizer, path, task=task, detokenize=detokenize, **common)
    if task == "wsc":
        return evaluate_wsc(model, tokenizer, path, **common)
    if task == "summarize":
        return evaluate_summarize(model, tokenizer, path, seed=seed, **common)
    if task == "translate":
        return evaluate_translate(model, tokenizer, path, shots=shots, **common)
    if task == "qa":
        return evaluate_qa(model, tokenizer, path, shots=shots, **common)
    return evaluate_coqa(model, tokenizer, path, **common)
