"""The Children's Book Test (Hill et al., 2016): common nouns (`cbt-cn`) and named entities (`cbt-ne`).

File format (`cbtest_CN_test_2500ex.txt`, `cbtest_NE_test_2500ex.txt`): examples separated by blank lines,
each 21 numbered lines: "1 ..." to "20 ..." are the context, line 21 is

    21 <query with XXXXX for the blank>\\t<answer>\\t\\t<candidate 1>|<candidate 2>|...|<candidate 10>

Scoring, as the GPT-2 paper describes it (Sec. 3.2): "compute the probability of each choice and the rest
of the sentence conditioned on this choice", i.e. for each candidate c,
log p(c + the query after the blank | <|endoftext|> context lines + the query before the blank);
the most probable candidate is the prediction. Text is de-tokenized first (`` '' quotes, spaces before
punctuation; `detokenize_cbt_line`), in the spirit of the paper's de-tokenizers (OpenAI did not publish
theirs); pass `detokenize=False` to score the tokenized text as it is.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from gpt2.errors import DataError
from gpt2.evaluation.detokenize import detokenize_cbt_line
from gpt2.evaluation.result import TaskResult, read_text
from gpt2.files import file_sha256
from gpt2.scoring import best_candidates, score_continuations, total_nll

BLANK = "XXXXX"
N_CONTEXT = 20
DESCRIPTION = ("CBT format: examples of 21 numbered lines separated by blank lines, line 21 being "
               "'21 query-with-XXXXX<TAB>answer<TAB><TAB>cand1|cand2|...'")


@dataclass
class CBTExample:
    context: list[str]  # the 20 context sentences, as in the file (tokenized)
    query: str  # the 21st sentence, with XXXXX for the blank
    answer: str
    candidates: list[str]

    @property
    def label(self) -> int:
        return self.candidates.index(self.answer)

    def split(self, detokenize: bool = True) -> tuple[str, str, str]:
        """(context text, query before the blank, query after the blank); the context ends with a newline,
        the query's `before` part keeps no trailing space (it moves to the candidate)."""
        fix = detokenize_cbt_line if detokenize else (lambda s: s)
        context = "".join(fix(line) + "\n" for line in self.context)
        query = fix(self.query)
        before, _, after = query.partition(BLANK)
        return context, before, after


def read_cbt(path: str | os.PathLike, limit: int | None = None) -> list[CBTExample]:
    path = Path(path)
    lines = read_text(path, DESCRIPTION).split("\n")
    examples: list[CBTExample] = []
    current: list[str] = []
    start = 1  # line where the current example starts
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        if not line.strip():
            if current:
                raise DataError(f"{path}: line {number}: example starting at line {start} ends after "
                                f"{len(current)} lines; expected 21 ({DESCRIPTION})")
            continue
        if not current:
            start = number
        index, _, text = line.partition(" ")
        expected = len(current) + 1
        if index != str(expected):
            raise DataError(f"{path}: line {number}: starts with {index[:20]!r}; expected line number "
                            f"{expected} of the example starting at line {start} ({DESCRIPTION})")
        if expected <= N_CONTEXT:
            if "\t" in text:
                raise DataError(f"{path}: line {number}: a context line holds a tab; only line 21 has "
                                f"columns ({DESCRIPTION})")
            current.append(text)
            continue
        examples.append(_parse_query(path, number, current, text))
        current = []
        if limit is not None and len(examples) >= limit:
            return examples
    if current:
        raise DataError(f"{path}: line {len(lines)}: file ends inside the example starting at line {start}; "
                        f"expected 21 lines ({DESCRIPTION})")
    if not examples:
        raise DataError(f"{path}: no examples; expected {DESCRIPTION}")
    return examples


def _parse_query(path: Path, number: int, context: list[str], text: str) -> CBTExample:
    columns = text.split("\t")
    if len(columns) != 4 or columns[2].strip():
        raise DataError(f"{path}: line {number}: line 21 has {len(columns)} tab-separated columns; "
                        "expected 4 (query, answer, an empty column, candidates)")
    query, answer, _, options = (c.strip() for c in columns)
    candidates = [c.strip() for c in options.split("|") if c.strip()]
    if query.count(BLANK) != 1:
        raise DataError(f"{path}: line {number}: the query must hold exactly one {BLANK}, "
                        f"found {query.count(BLANK)}")
    if len(candidates) < 2:
        raise DataError(f"{path}: line {number}: expected candidates separated by '|', got {options!r}")
    if answer not in candidates:
        raise DataError(f"{path}: line {number}: answer {answer!r} is not among the candidates {candidates}")
    return CBTExample(context=context, query=query, answer=answer, candidates=candidates)


def evaluate_cbt(
    model,
    tokenizer,
    path: str | os.PathLike,
    *,
    task: str = "cbt",
    limit: int | None = None,
    batch_size: int = 8,
    detokenize: bool = True,
    progress: bool = False,
) -> TaskResult:
    """Accuracy over the candidates of each example (see the module doc for what is scored)."""
    start = time.perf_counter()
    examples = read_cbt(path, limit)
    eot = tokenizer.eot_token_id
    requests = []
    for ex in examples:
        context, before, after = ex.split(detokenize)
        # The space before the blank belongs to the candidate (GPT-2's BPE has " word" tokens); at the start
        # of the line or after an opening quote there is none.
        lead = " " if before.endswith(" ") else ""
        prefix = [eot, *tokenizer.encode(context + before.rstrip(" "))]
        for candidate in ex.candidates:
            requests.append((prefix, tokenizer.encode(lead + candidate + after.rstrip())))
    scores = score_continuations(model, requests, batch_size=batch_size, progress=progress, desc=task)
    picks = best_candidates(scores, [len(ex.candidates) for ex in examples])
    correct = sum(p == ex.label for p, ex in zip(picks, examples, strict=True))
    nll = total_nll(scores)
    return TaskResult(
        task=task,
        metrics={"accuracy": correct / len(examples)},
        n_examples=len(examples),
        nll=nll.nll,
        tokens=nll.tokens,
        runtime_s=time.perf_counter() - start,
        data_file=str(path),
        data_sha256=file_sha256(path),
        details={"primary_metric": "accuracy", "detokenized": detokenize, "limit": limit},
    )
