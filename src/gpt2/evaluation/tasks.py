"""The task registry: names, standard files, and `run_task`, the one entry point the CLI uses.

A task reads `data_path` when given, else the task's standard file in the data directory ($GPT2_DATA_DIR, else
~/.cache/gpt2), which `gpt2.data.sources` fills on first use; the layout (that of the project's reference data):

    wikitext2/wiki.test.tokens   wikitext103/wiki.test.tokens   ptb/ptb.test.txt
    enwik8/enwik8                text8/text8                    lambada/lambada_test.jsonl
    wsc/WSCollection.xml         cbt/cbtest_CN_test_2500ex.txt  cbt/cbtest_NE_test_2500ex.txt
    hellaswag/hellaswag_val.jsonl
    cnndm/test.jsonl (summarize) wmt14/fr-en.test.jsonl (translate; en-fr: --data-path)
    nq/nq_open.validation.jsonl (qa)   coqa/coqa-dev-v1.0.json (coqa)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2.data import sources
from gpt2.data.download import CACHE_ENV, cache_path
from gpt2.errors import DataError
from gpt2.evaluation import hellaswag, lambada
from gpt2.evaluation.cbt import evaluate_cbt
from gpt2.evaluation.hellaswag import evaluate_hellaswag
from gpt2.evaluation.lambada import evaluate_lambada
from gpt2.evaluation.perplexity import LM_TASKS, evaluate_lm
from gpt2.evaluation.prompted import evaluate_coqa, evaluate_qa, evaluate_summarize, evaluate_translate
from gpt2.evaluation.result import TaskResult, check_protocol
from gpt2.evaluation.winograd import evaluate_wsc


@dataclass(frozen=True)
class RunOptions:
    """What `run_task` passes on; each task reads the options that apply to it."""

    limit: int | None = None
    batch_size: int = 8
    stride: int | None = None
    detokenize: bool = True
    progress: bool = False
    shots: int = 5
    seed: int = 0
    protocol: str | None = None  # for tasks that report several definitions (Task.protocols); None = default

    @property
    def common(self) -> dict[str, Any]:
        return dict(limit=self.limit, batch_size=self.batch_size, progress=self.progress)


@dataclass(frozen=True)
class Task:
    name: str
    default_path: str | None
    description: str
    run: Callable[[Any, Any, Path, RunOptions], TaskResult]  # (model, tokenizer, data file, options)
    protocols: tuple[str, ...] = ()  # the definitions it can compute, the default first (none: just one)


def _lm_task(name: str) -> Task:
    spec = LM_TASKS[name]
    return Task(name, spec.default_path, spec.description, lambda m, t, path, o: evaluate_lm(
        m, t, name, path, stride=o.stride, detokenize=o.detokenize, **o.common))


def _cbt_task(name: str, path: str, description: str) -> Task:
    return Task(name, path, description, lambda m, t, p, o: evaluate_cbt(
        m, t, p, task=name, detokenize=o.detokenize, **o.common))


TASKS: dict[str, Task] = {
    **{name: _lm_task(name) for name in LM_TASKS},
    "lambada": Task("lambada", "lambada/lambada_test.jsonl", "LAMBADA last-word accuracy and perplexity",
                    lambda m, t, p, o: evaluate_lambada(m, t, p, protocol=o.protocol or "paper", **o.common),
                    lambada.PROTOCOLS),
    "cbt-cn": _cbt_task("cbt-cn", "cbt/cbtest_CN_test_2500ex.txt", "Children's Book Test, common nouns"),
    "cbt-ne": _cbt_task("cbt-ne", "cbt/cbtest_NE_test_2500ex.txt", "Children's Book Test, named entities"),
    "wsc": Task("wsc", "wsc/WSCollection.xml", "Winograd Schema Challenge, WSC273",
                lambda m, t, p, o: evaluate_wsc(m, t, p, **o.common)),
    "hellaswag": Task("hellaswag", "hellaswag/hellaswag_val.jsonl",
                      "HellaSwag validation: acc, acc_norm as lm-eval and llm.c define them",
                      lambda m, t, p, o: evaluate_hellaswag(m, t, p, protocol=o.protocol or "lm-eval",
                                                            **o.common),
                      hellaswag.PROTOCOLS),
    "summarize": Task("summarize", "cnndm/test.jsonl", 'jsonl {"article", "summary"}: TL;DR: prompt, ROUGE',
                      lambda m, t, p, o: evaluate_summarize(m, t, p, seed=o.seed, **o.common)),
    "translate": Task("translate", "wmt14/fr-en.test.jsonl",
                      'jsonl {"source", "target"}: few-shot "a = b" prompt, BLEU',
                      lambda m, t, p, o: evaluate_translate(m, t, p, shots=o.shots, **o.common)),
    "qa": Task("qa", "nq/nq_open.validation.jsonl",
               'jsonl {"question", "answer"}: few-shot Q:/A: prompt, exact match',
               lambda m, t, p, o: evaluate_qa(m, t, p, shots=o.shots, **o.common)),
    "coqa": Task("coqa", "coqa/coqa-dev-v1.0.json",
                 'CoQA\'s dev file, or jsonl {"story", "questions", "answers"}: conversational QA, F1',
                 lambda m, t, p, o: evaluate_coqa(m, t, p, **o.common)),
}


def resolve_data_path(task: str, data_path: str | os.PathLike | None = None, *, fetch: bool = True) -> Path:
    """`data_path` if given, else the task's standard file in the data directory ($GPT2_DATA_DIR, else
    ~/.cache/gpt2), downloaded there first when it is missing and `fetch` (gpt2.data.sources)."""

    spec = TASKS[task]
    if data_path is not None:
        return Path(data_path)
    if spec.default_path is None:
        raise DataError(f"task {task!r} ({spec.description}) needs --data-path")
    path = cache_path(spec.default_path)
    if path.exists():
        return path
    source = sources.source_for(spec.default_path)
    if source is None or not fetch:
        raise DataError(f"{path}: not found; put the task's standard file there ({CACHE_ENV} sets the "
                        "directory) or pass --data-path")
    return sources.fetch(source.name)


def check_protocols(tasks: list[str], protocol: str | None) -> None:
    """`protocol` (None = each task's default) is one every task offering several definitions has, and at
    least one of `tasks` offers any; else one line naming what is offered. Called before any work."""
    if protocol is None:
        return
    offering = [t for t in tasks if t in TASKS and TASKS[t].protocols]
    if not offering:
        having = [name for name, spec in TASKS.items() if spec.protocols]
        raise DataError(f"--protocol applies to tasks that report several definitions ({', '.join(having)}); "
                        f"{', '.join(tasks)} report one")
    for task in offering:
        check_protocol(protocol, TASKS[task].protocols, task)


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
    protocol: str | None = None,
) -> TaskResult:
    """Evaluate `model` on one task; see each task module for what exactly is scored. `shots` (examples in
    the prompt of translate and qa) and `seed` (summarize's sampling) matter to prompted tasks only;
    `protocol` to the tasks that report several definitions (lambada, hellaswag; see `check_protocols`)."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive integer, got {limit}")
    if TASKS[task].protocols:  # a task with one definition ignores it (`--task paper --protocol both`)
        check_protocols([task], protocol)
    path = resolve_data_path(task, data_path)
    options = RunOptions(limit=limit, batch_size=batch_size, stride=stride, detokenize=detokenize,
                         progress=progress, shots=shots, seed=seed, protocol=protocol)
    return TASKS[task].run(model, tokenizer, path, options)
