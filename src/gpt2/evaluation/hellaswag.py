"""HellaSwag (Zellers et al., 2019): choose the ending of a short context among four, on the validation file
`hellaswag_val.jsonl` (10,042 rows of {"ctx", "ctx_a", "ctx_b", "activity_label", "endings", "label"}).

Not in the GPT-2 paper, but the number every GPT-2 reproduction reports (nanoGPT, llm.c), and two
definitions are in use, each computed as its authors compute it, chosen with `protocol=` (`gpt2 eval
--protocol`): `lm-eval` (the default), `llm-c`, or `both`:

`lm_eval`  lm-evaluation-harness 0.4's `hellaswag`: the context is "activity_label: ctx_a Ctx_b" and every
           text goes through its clean-up of WikiHow's artifacts ("[title]" -> ". ", other [brackets]
           removed); a candidate is " " + ending, tokens split from the context as the harness does (the
           context + ending encoded whole, minus the context's own tokens; a context the clean-up leaves
           ending in a space gives that space to the ending, whose token is then scored too), no
           <|endoftext|> first. Checked against lm-eval 0.4.13 itself by benchmarks/lm_eval_crosscheck.py.
           acc: the highest summed log-probability; acc_norm: the highest log-probability per character
           of the ending (the harness's length normalisation).
`llm_c`    llm.c's and nanoGPT-era reproductions' (Karpathy's hellaswag.py): the file's `ctx` as it is,
           " " + ending encoded on its own; acc: the highest summed log-probability; acc_norm: the highest
           mean log-probability per token. GPT-2 124M: about 0.2955 (acc_norm), per llm.c.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from gpt2.errors import DataError
from gpt2.evaluation.choices import score_choices
from gpt2.evaluation.result import TaskResult, check_protocol, read_text
from gpt2.files import file_sha256, parse_record
from gpt2.scoring import ContinuationScore

DESCRIPTION = 'hellaswag_val.jsonl: jsonl rows with "ctx", "ctx_a", "ctx_b", "activity_label", "endings", "label"'
FIELDS = {"ctx": (str,), "ctx_a": (str,), "ctx_b": (str,), "activity_label": (str,), "endings": (list,),
          "label": (int, str)}


@dataclass(frozen=True)
class Example:
    ctx: str
    ctx_a: str
    ctx_b: str
    activity_label: str
    endings: tuple[str, ...]
    label: int


def read_hellaswag(path: str | os.PathLike, limit: int | None = None) -> list[Example]:
    path = Path(path)
    examples = []
    for number, line in enumerate(read_text(path, DESCRIPTION).split("\n"), 1):
        if not line.strip():
            continue
        row = parse_record(line, f"{path}: line {number}", FIELDS)
        endings, label = row["endings"], str(row["label"]).strip()
        label = int(label) if label.isdigit() else -1
        if len(endings) < 2 or not all(isinstance(e, str) for e in endings) or not 0 <= label < len(endings):
            raise DataError(f"{path}: line {number}: expected at least two string endings and a label among "
                            f"them; got {len(endings)} endings and label {row['label']!r}")
        examples.append(Example(row["ctx"], row["ctx_a"], row["ctx_b"], row["activity_label"], tuple(endings),
                                label))
        if limit is not None and len(examples) >= limit:
            break
    if not examples:
        raise DataError(f"{path}: no examples; expected {DESCRIPTION}")
    return examples


def clean(text: str) -> str:
    """lm-evaluation-harness's clean-up of HellaSwag's WikiHow artifacts."""
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ")


def harness_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context, continuation) ids as lm-eval's `_encode_pair` makes them: whitespace ending the context
    moves to the continuation (so a context that ends in " " scores that space's token too), the two are
    encoded whole, and the context's own ids are split off the front."""
    spaces = len(context) - len(context.rstrip())
    if spaces:
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    alone = tokenizer.encode(context)
    return alone, tokenizer.encode(context + continuation)[len(alone):]


def harness_requests(tokenizer, ex: Example) -> tuple[list[tuple[list[int], list[int]]], list[int]]:
    """(context, ending) token pairs as lm-eval builds them, and each ending's length in characters."""
    context = clean(f"{ex.activity_label}: {ex.ctx_a} {ex.ctx_b.capitalize()}")
    endings = [clean(e) for e in ex.endings]
    return [harness_pair(tokenizer, context, " " + e) for e in endings], [len(e) for e in endings]


PROTOCOLS = ("lm-eval", "llm-c")  # the first is the default


def evaluate_hellaswag(model, tokenizer, path: str | os.PathLike, *, limit: int | None = None,
                       batch_size: int = 8, progress: bool = False, protocol: str = "lm-eval") -> TaskResult:
    """acc and acc_norm under `protocol` (see the module doc): `lm-eval` (the default), `llm-c` or `both`;
    `limit` takes the first N examples. Each example's context is read once for its four endings
    (`gpt2.evaluation.choices`); `details["protocols"]` says which definitions were computed."""
    protocols = check_protocol(protocol, PROTOCOLS, "hellaswag")
    start = time.perf_counter()
    examples = read_hellaswag(path, limit)
    labels = [ex.label for ex in examples]
    metrics: dict[str, float] = {}
    gold_scores = None
    if "lm-eval" in protocols:
        requests = [harness_requests(tokenizer, ex) for ex in examples]
        scored = score_choices(model, [(pairs[0][0], [c for _, c in pairs]) for pairs, _ in requests],
                               batch_size=batch_size, progress=progress, desc="hellaswag (lm-eval)")
        chars = [lengths for _, lengths in requests]
        metrics["acc_lm_eval"] = _accuracy(scored, labels, lambda s, n: s.logprob, chars)
        metrics["acc_norm_lm_eval"] = _accuracy(scored, labels, lambda s, n: s.logprob / max(n, 1), chars)
        gold_scores = [ex_scores[label] for ex_scores, label in zip(scored, labels, strict=True)]
    if "llm-c" in protocols:
        plain = [(tokenizer.encode(ex.ctx), [tokenizer.encode(" " + e) for e in ex.endings]) for ex in examples]
        scored = score_choices(model, plain, batch_size=batch_size, progress=progress, desc="hellaswag (llm.c)")
        tokens = [[len(e) for e in ends] for _, ends in plain]
        metrics["acc_llm_c"] = _accuracy(scored, labels, lambda s, n: s.logprob, tokens)
        metrics["acc_norm_llm_c"] = _accuracy(scored, labels, lambda s, n: s.logprob / n, tokens)
        gold_scores = gold_scores or [ex_scores[label] for ex_scores, label in zip(scored, labels, strict=True)]
    return TaskResult(
        task="hellaswag",
        metrics=metrics,
        n_examples=len(examples),
        nll=-sum(s.logprob for s in gold_scores),
        tokens=sum(len(s.logprobs) for s in gold_scores),
        runtime_s=time.perf_counter() - start,
        data_file=str(path),
        data_sha256=file_sha256(path),
        details={"primary_metric": "acc_norm_lm_eval" if "lm-eval" in protocols else "acc_norm_llm_c",
                 "limit": limit, "protocols": list(protocols)},
    )


def _accuracy(scored: list[list[ContinuationScore]], labels: list[int], value, sizes: list[list[int]]) -> float:
    """The share of examples whose highest-`value(score, size)` ending (the first of equals) is the label."""
    right = 0
    for scores, label, ns in zip(scored, labels, sizes, strict=True):
        values = [value(s, n) for s, n in zip(scores, ns, strict=True)]
        right += max(range(len(values)), key=values.__getitem__) == label
    return right / len(labels)
