"""Prompted (generative) tasks of the GPT-2 paper, on the user's own jsonl files (Secs. 3.5-3.8).

    summarize  {"article", "summary" (or "highlights")}: article + "\\nTL;DR:", 100 tokens of top-k
               sampling with k = 2, the first 3 generated sentences as the summary; ROUGE-1/2/L F1
               (rouge-score, with stemming) and their mean, x100.
    translate  {"source", "target"}: the first `shots` rows become the context "source = target" one per
               line, then "source =" and greedy decoding to the end of the line; the first sentence is the
               translation; corpus BLEU (sacrebleu, its default 13a tokenization).
    qa         {"question", "answer" (a string or a list of accepted strings)}: the first `shots` rows as
               "Q: ...\\nA: ..." examples, then "Q: question\\nA:" and greedy decoding to the end of the line;
               exact match after SQuAD's normalisation (lower case, no punctuation, articles or extra space).
    coqa       {"story", "questions": [...], "answers": [...] or {"input_text": [...]}} (the field names of
               CoQA and of its Hugging Face copy), or CoQA's own coqa-dev-v1.0.json ({"data": [stories]}):
               for each turn, the story, the earlier turns with their reference answers as "Q: ...\\nA: ..."
               and "Q: question\\nA:", greedy decoding to the end of the line; SQuAD token F1 against the
               reference answer, averaged over turns; where the file has the other annotators' answers
               (CoQA's `additional_answers`), CoQA's official F1: the mean, over leaving each human answer
               out, of the best F1 against the rest.

Prompts longer than the context keep their last tokens (summarize: the article is cut at its end instead,
so the prompt still ends with "TL;DR:"). Every prediction is kept in the result's `details["predictions"]`
for inspection. ROUGE and BLEU need the optional packages `rouge-score` and `sacrebleu`.
"""

from __future__ import annotations

import collections
import json
import os
import re
import string
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gpt2.errors import DataError, GPT2Error
from gpt2.evaluation.result import TaskResult, read_text
from gpt2.files import check_record, file_sha256, parse_record
from gpt2.sampling import generate

PROMPTED_TASKS = ("summarize", "translate", "qa", "coqa")


# ---- metrics (small pure functions) ----

def normalize_answer(s: str) -> str:
    """SQuAD's answer normalisation: lower case, drop punctuation and articles, collapse whitespace."""
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    return float(any(normalize_answer(prediction) == normalize_answer(a) for a in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD token-level F1, the best over the accepted answers."""
    best = 0.0
    pred = normalize_answer(prediction).split()
    for answer in answers:
        gold = normalize_answer(answer).split()
        if not pred or not gold:
            best = max(best, float(pred == gold))
            continue
        common = sum((collections.Counter(pred) & collections.Counter(gold)).values())
        if common:
            precision, recall = common / len(pred), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def first_sentences(text: str, n: int) -> str:
    """The first `n` sentences of `text` (split after . ! or ? followed by whitespace)."""
    sentences = re.split(r"(?<=[.!?])\s+", text.strip())
    return " ".join(sentences[:n]).strip()


def _metric_package(module: str, task: str):
    """The module a task's metric needs, or an error saying how to install it (asked for before decoding,
    which takes hours on the full files, not after)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = {"rouge_score.rouge_scorer": "rouge-score"}.get(module, module)
        raise GPT2Error(f"the {task} task needs the {package} package: pip install {package} (or the project's "
                        "[eval] extra: pip install 'gpt2[eval]')") from None


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    rouge_scorer = _metric_package("rouge_score.rouge_scorer", "summarize")
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = collections.Counter()
    for prediction, reference in zip(predictions, references, strict=True):
        for name, score in scorer.score(reference, prediction).items():
            totals[name] += score.fmeasure
    metrics = {name: 100 * totals[name] / len(predictions) for name in ("rouge1", "rouge2", "rougeL")}
    metrics["rouge_avg"] = sum(metrics.values()) / 3
    return metrics


def bleu_score(predictions: Sequence[str], references: Sequence[str]) -> float:
    sacrebleu = _metric_package("sacrebleu", "translate")
    return float(sacrebleu.corpus_bleu(list(predictions), [list(references)]).score)


# ---- reading ----

def read_jsonl(path: str | os.PathLike, fields: dict[str, tuple[type, ...]], task: str,
               aliases: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Rows of a jsonl file, each an object holding `fields` (name -> accepted types); `aliases` maps an
    alternative field name to its canonical one. Errors name the file, the line and the field."""
    path = Path(path)
    expected = ", ".join(f'"{f}"' for f in fields)
    what = f"{task} data as jsonl, one object per line with {expected}"
    rows = []
    for number, line in enumerate(read_text(path, what).split("\n"), 1):
        if not line.strip():
            continue
        rows.append(parse_record(line, f"{path}: line {number}", fields, aliases))
    if not rows:
        raise DataError(f"{path}: no rows; expected {what}")
    return rows


def _answers(value: Any, path: Path, index: int) -> list[str]:
    answers = [value] if isinstance(value, str) else value
    if not answers or not all(isinstance(a, str) for a in answers):
        raise DataError(f"{path}: row {index + 1}: 'answer' must be a string or a non-empty list of strings")
    return answers


# ---- generation ----

def _generate(model, tokenizer, prompts: list[list[int]], *, max_new_tokens: int, batch_size: int,
              progress: bool, desc: str, **options: Any) -> list[str]:
    """Continue each prompt (token ids), cut to fit the context, `batch_size` prompts at a time."""
    from tqdm.auto import tqdm


    keep = int(model.config.n_positions) - max_new_tokens
    if keep < 1:
        raise ValueError(f"max_new_tokens {max_new_tokens} leaves no room for a prompt in the context "
                         f"of {model.config.n_positions} tokens")
    texts: list[str] = []
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress, unit="ex")
    for i in range(0, len(prompts), batch_size):
        batch = [p[-keep:] for p in prompts[i : i + batch_size]]
        samples = generate(model, batch, max_new_tokens=max_new_tokens, tokenizer=tokenizer, **options)
        texts += [s.text or "" for s in samples]
        bar.update(len(batch))
    bar.close()
    return texts


def _result(task: str, metrics: dict[str, float], n: int, path: Path, start: float, **details: Any
            ) -> TaskResult:
    return TaskResult(task=task, metrics=metrics, n_examples=n, nll=None, tokens=None,
                      runtime_s=time.perf_counter() - start, data_file=str(path),
                      data_sha256=file_sha256(path), details=details)


def evaluate_summarize(model, tokenizer, path, *, limit=None, batch_size=8, progress=False, seed=0,
                       max_new_tokens=100, top_k=2) -> TaskResult:
    start, path = time.perf_counter(), Path(path)
    _metric_package("rouge_score.rouge_scorer", "summarize")
    rows = read_jsonl(path, {"article": (str,), "summary": (str,)}, "summarize", {"highlights": "summary"})
    rows = rows[:limit] if limit else rows
    suffix = tokenizer.encode("\nTL;DR:")
    room = int(model.config.n_positions) - max_new_tokens - len(suffix)
    if room < 1:
        raise ValueError(f"max_new_tokens {max_new_tokens} leaves no room for an article in the context "
                         f"of {model.config.n_positions} tokens")
    prompts = [tokenizer.encode(r["article"].rstrip())[:room] + suffix for r in rows]
    texts = _generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                      progress=progress, desc="summarize", top_k=top_k, temperature=1.0, seed=seed)
    summaries = [first_sentences(t, 3) for t in texts]
    metrics = rouge_scores(summaries, [r["summary"] for r in rows])
    return _result("summarize", metrics, len(rows), path, start, primary_metric="rouge_avg", top_k=top_k,
                   seed=seed, max_new_tokens=max_new_tokens, limit=limit, predictions=summaries)


def evaluate_translate(model, tokenizer, path, *, limit=None, batch_size=8, progress=False, shots=5,
                       max_new_tokens=64) -> TaskResult:
    start, path = time.perf_counter(), Path(path)
    _metric_package("sacrebleu", "translate")
    rows = read_jsonl(path, {"source": (str,), "target": (str,)}, "translate")
    if len(rows) <= shots:
        raise DataError(f"{path}: {len(rows)} rows; the first {shots} are the examples in the prompt, "
                        "so at least one more is needed (or lower --shots)")
    demos, tests = rows[:shots], rows[shots:]
    tests = tests[:limit] if limit else tests
    context = "".join(f"{r['source'].strip()} = {r['target'].strip()}\n" for r in demos)
    prompts = [tokenizer.encode(f"{context}{r['source'].strip()} =") for r in tests]
    texts = _generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                      progress=progress, desc="translate", temperature=0.0, stop="\n")
    hypotheses = [first_sentences(t, 1) for t in texts]
    metrics = {"bleu": bleu_score(hypotheses, [r["target"].strip() for r in tests])}
    return _result("translate", metrics, len(tests), path, start, primary_metric="bleu", shots=shots,
                   limit=limit, predictions=hypotheses)


def evaluate_qa(model, tokenizer, path, *, limit=None, batch_size=8, progress=False, shots=5,
                max_new_tokens=32) -> TaskResult:
    start, path = time.perf_counter(), Path(path)
    rows = read_jsonl(path, {"question": (str,), "answer": (str, list)}, "qa")
    if len(rows) <= shots:
        raise DataError(f"{path}: {len(rows)} rows; the first {shots} are the examples in the prompt, "
                        "so at least one more is needed (or lower --shots)")
    answers = [_answers(r["answer"], path, i) for i, r in enumerate(rows)]
    context = "".join(f"Q: {r['question'].strip()}\nA: {a[0].strip()}\n\n"
                      for r, a in zip(rows[:shots], answers[:shots], strict=True))
    tests = list(zip(rows, answers, strict=True))[shots:]
    tests = tests[:limit] if limit else tests
    prompts = [tokenizer.encode(f"{context}Q: {r['question'].strip()}\nA:") for r, _ in tests]
    texts = _generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                      progress=progress, desc="qa", temperature=0.0, stop="\n")
    predictions = [t.strip() for t in texts]
    em = sum(exact_match(p, a) for p, (_, a) in zip(predictions, tests, strict=True)) / len(tests)
    return _result("qa", {"exact_match": 100 * em}, len(tests), path, start, primary_metric="exact_match",
                   shots=shots, limit=limit, predictions=predictions)


COQA_FIELDS = {"story": (str,), "questions": (list,), "answers": (list, dict)}


def _coqa_rows(path: Path) -> list[dict[str, Any]]:
    """Stories of a jsonl file, or of CoQA's own file (a .json document {"version", "data": [story, ...]})."""
    if path.suffix != ".json":
        return read_jsonl(path, COQA_FIELDS, "coqa")
    try:
        document = json.loads(read_text(path, 'CoQA\'s JSON document {"data": [...]}'))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}); expected CoQA's own file or "
                        "jsonl") from None
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, list) or not data:
        raise DataError(f'{path}: expected CoQA\'s document {{"version", "data": [stories]}} with stories')
    return [check_record(row, f"{path}: data[{i}]", COQA_FIELDS) for i, row in enumerate(data)]


def coqa_f1(prediction: str, references: Sequence[str]) -> float:
    """CoQA's official F1 for one turn: with several human answers, the mean over leaving each one out of
    the best F1 against the others (so a prediction is scored as a human's answer would be); with one, F1."""
    if len(references) == 1:
        return token_f1(prediction, references)
    return sum(token_f1(prediction, [r for j, r in enumerate(references) if j != i])
               for i in range(len(references))) / len(references)


def _additional_answers(row: dict[str, Any], turns: int, path: Path, index: int) -> list[list[str]]:
    """The other annotators' answers of CoQA's own file (`additional_answers`: {"0": [...], ...}), per turn."""
    extra = row.get("additional_answers") or {}
    others = [[a["input_text"] if isinstance(a, dict) else a for a in answers] for answers in
              (extra.values() if isinstance(extra, dict) else [])]
    if any(len(o) != turns or not all(isinstance(a, str) for a in o) for o in others):
        raise DataError(f"{path}: story {index + 1}: additional_answers must give one answer string per turn "
                        f"({turns})")
    return others


def evaluate_coqa(model, tokenizer, path, *, limit=None, batch_size=8, progress=False,
                  max_new_tokens=32) -> TaskResult:
    start, path = time.perf_counter(), Path(path)
    rows = _coqa_rows(path)
    rows = rows[:limit] if limit else rows
    prompts, references = [], []
    for i, row in enumerate(rows):
        questions = [q["input_text"] if isinstance(q, dict) else q for q in row["questions"]]
        answers = row["answers"]["input_text"] if isinstance(row["answers"], dict) else row["answers"]
        answers = [a["input_text"] if isinstance(a, dict) else a for a in answers]
        if len(questions) != len(answers) or not questions or not all(isinstance(x, str)
                                                                     for x in questions + answers):
            raise DataError(f"{path}: row {i + 1}: expected as many question strings as answer strings, got "
                            f"{len(questions)} questions and {len(answers)} answers")
        others = _additional_answers(row, len(answers), path, i)
        history = ""
        for turn, (question, answer) in enumerate(zip(questions, answers, strict=True)):
            prompts.append(tokenizer.encode(f"{row['story'].strip()}\n\n{history}Q: {question}\nA:"))
            references.append([answer, *(other[turn] for other in others)])
            history += f"Q: {question}\nA: {answer}\n\n"
    texts = _generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                      progress=progress, desc="coqa", temperature=0.0, stop="\n")
    predictions = [t.strip() for t in texts]
    f1 = sum(coqa_f1(p, refs) for p, refs in zip(predictions, references, strict=True)) / len(references)
    return _result("coqa", {"f1": 100 * f1}, len(references), path, start, primary_metric="f1",
                   stories=len(rows), limit=limit, predictions=predictions)
