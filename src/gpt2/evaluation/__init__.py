"""Zero-shot evaluation as in the GPT-2 paper: language modelling with de-tokenizers (WikiText, PTB, enwik8,
text8), LAMBADA, the Children's Book Test and WSC273, all on one scoring core, plus a report against the
paper's Table 3.

    from gpt2.evaluation import run_task, write_results
    result = run_task("wikitext2", model, tokenizer, "wiki.test.tokens")
    result.metrics["word_perplexity"]
"""

from gpt2.evaluation.report import markdown_table, write_results
from gpt2.evaluation.result import TaskResult
from gpt2.evaluation.tasks import TASKS, resolve_data_path, run_task
from gpt2.scoring import NLL, ContinuationScore, rolling_nll, rolling_windows, score_continuations

__all__ = [
    "NLL",
    "TASKS",
    "ContinuationScore",
    "TaskResult",
    "markdown_table",
    "resolve_data_path",
    "rolling_nll",
    "rolling_windows",
    "run_task",
    "score_continuations",
    "write_results",
]
