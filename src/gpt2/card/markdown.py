"""The card as Markdown (model_card.md), in the sections of OpenAI's GPT-2 model card, and the writer of
model_card.md and model_card.json."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from gpt2.bias.report import BiasProbes
from gpt2.card.facts import Card, Evaluation, ModelFacts, TrainingData, TrainingFacts
from gpt2.card.text import INTENDED_USES, LIMITATIONS, NOT_RECORDED, OUT_OF_SCOPE, UNSET
from gpt2.checkpoint import human_count
from gpt2.evaluation.report import PAPER_ROWS, nearest_paper_size
from gpt2.files import atomic_write_text

CARD_MD = "model_card.md"
CARD_JSON = "model_card.json"


def _fmt(value: Any) -> str:
    if value is None:
        return NOT_RECORDED
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def render_markdown(card: Card) -> str:
    """The card as Markdown, in the sections of OpenAI's GPT-2 model card."""
    sections = [
        _md_title(card.model),
        _md_model(card.model),
        _md_training(card.training),
        ["## Intended uses", "", INTENDED_USES],
        ["## Out-of-scope uses", "", OUT_OF_SCOPE],
        _md_training_data(card.training_data),
        _md_evaluation(card),
        ["## Limitations and biases", "", LIMITATIONS],
        _md_bias(card.bias_probes),
        ["## Sources", ""] + [f"- `{s}`" for s in card.sources],
    ]
    return "\n\n".join("\n".join(lines) for lines in sections) + "\n"


def _md_title(m: ModelFacts) -> list[str]:
    return [f"# Model card: {m.name}", "",
            "Written by `gpt2 card` from the files listed at the end; a fact none of them holds is marked "
            f"\"{NOT_RECORDED}\". The uses and limitations sections paraphrase OpenAI's GPT-2 model card."]


def _md_model(m: ModelFacts) -> list[str]:
    return [
        "## Model details",
        "",
        f"- **Model type:** {m.type}",
        f"- **Parameters:** {_fmt(m.parameters)} ({human_count(m.parameters)}; "
        f"{_fmt(m.non_embedding_parameters)} without the token and position embeddings)",
        f"- **Layers / heads / width:** {m.n_layer} / {m.n_head} / {m.n_embd}",
        f"- **Context length:** {_fmt(m.n_positions)} tokens",
        f"- **Vocabulary:** {_fmt(m.vocab_size)} ids; tokenizer {_fmt(m.tokenizer)}",
        f"- **Stored weights:** {_fmt(m.stored_dtypes)}, in `{m.path}`",
        f"- **Developed by:** {_fmt(m.developed_by)}",
        f"- **License:** {_fmt(m.license)}",
        f"- **Paper:** {m.paper}",
    ]


def _md_training(t: TrainingFacts) -> list[str]:
    lines = [
        "### Training procedure",
        "",
        f"- **Run directory:** {_fmt(t.run_dir)}",
        "- **Initialised from:** " + ("random weights (trained from scratch)" if t.from_scratch else _fmt(t.init_from)),
        f"- **Optimizer steps:** {_fmt(t.step)}",
        f"- **Tokens trained on:** {_fmt(t.tokens)}",
        "- **Validation loss at this checkpoint:** "
        + (f"{t.val_loss:.4f} nats/token" if t.val_loss is not None else NOT_RECORDED),
        f"- **Processes:** {_fmt(t.world_size)}",
    ]
    if not t.config:
        return lines + ["- **Training settings:** " + NOT_RECORDED + " (no train_config.json in a run directory and "
                        "no training_state.pt beside the weights)"]
    lines += ["", "| setting | value |", "| --- | --- |"]
    return lines + [f"| {k} | {UNSET.get(k, 'not set') if v is None else v} |" for k, v in t.config.items()]


def _md_training_data(d: TrainingData) -> list[str]:
    lines = ["## Training data", ""]
    if d.dataset:
        lines.append(f"- **Dataset:** {d.dataset}")
    man = d.manifest
    if man is None:
        if not d.dataset:
            lines.append(f"- **Dataset:** {NOT_RECORDED}"
                         + (f" ({d.note})" if d.note else " (no training metadata points to a data manifest)"))
        return lines
    lines += [
        f"- **Prepared data:** `{man.path}` (`gpt2 prepare` manifest)",
        f"- **Tokenizer:** {_fmt(man.tokenizer)} ({_fmt(man.vocab_size)} ids)",
        f"- **Train split:** {_fmt(man.train_documents)} documents, {_fmt(man.train_tokens)} tokens",
        f"- **Validation split:** {_fmt(man.val_documents)} documents, {_fmt(man.val_tokens)} tokens "
        f"(fraction {_fmt(man.val_fraction)}, split seed {_fmt(man.split_seed)}, documents by "
        f"{_fmt(man.txt_split)})",
    ]
    if man.epochs is not None:
        lines.append(f"- **Passes over the train split:** {man.epochs:.2f} (tokens trained on / train tokens)")
    lines += ["", "| input | bytes | documents | sha256 |", "| --- | ---: | ---: | --- |"]
    return lines + [f"| `{i.path}` | {_fmt(i.bytes)} | {_fmt(i.documents)} | `{_fmt(i.sha256)}` |"
                    for i in man.inputs]


def _md_evaluation(card: Card) -> list[str]:
    lines = ["## Evaluation results", ""]
    val_loss = card.training.val_loss
    if val_loss is not None:
        lines += [f"- Validation loss recorded in training: {val_loss:.4f} nats/token "
                  f"(perplexity {math.exp(min(val_loss, 700)):.2f}) on the held-out split above.", ""]
    if not card.evaluation:
        return lines + [f"Zero-shot benchmarks: {NOT_RECORDED} (no results.json given with --results or found "
                        "beside the checkpoint; `gpt2 eval --model DIR --task ... --out DIR` writes one)."]
    for ev in card.evaluation:
        lines += _evaluation_table(ev, card.model.parameters) + [""]
    return lines[:-1]


def _evaluation_table(ev: Evaluation, parameters: int) -> list[str]:
    """One results.json as a table, with the paper's number beside ours where the paper has one."""
    size = ev.paper_size or nearest_paper_size(ev.model_parameters or parameters)
    lines = [f"From `{ev.file}` (model {_fmt(ev.model)}):"]
    if ev.model_parameters is not None and ev.model_parameters != parameters:
        lines.append(f"**Note:** this file was written for a model of {ev.model_parameters:,} parameters, "
                     f"not this checkpoint's {parameters:,}.")
    paper = {(task, key): (scale, label, values.get(size)) for task, key, scale, label, values, _, _ in PAPER_ROWS}
    lines += ["", f"| task | metric | value | paper {size} | examples |", "| --- | --- | ---: | ---: | ---: |"]
    for task, result in ev.tasks.items():
        for key, value in result["metrics"].items():
            scale, label, theirs = paper.get((task, key), (1.0, None, None))
            shown = f"{value * scale:.2f}" if label else f"{value:.4f}"
            lines.append(f"| {task} | {label or key} | {shown} | {'-' if theirs is None else f'{theirs:.2f}'} | "
                         f"{_fmt(result.get('n_examples'))} |")
    return lines


def _md_bias(b: BiasProbes | None) -> list[str]:
    lines = ["### Bias probes of this model", ""]
    if b is None:
        return lines + [f"{NOT_RECORDED} for this checkpoint (`gpt2 bias --model DIR --out DIR` runs templated "
                        "probes over gender, race and religion)."]
    s = b.settings
    lines += [f"From `{b.file}` ({'?' if s.samples is None else s.samples} samples per template and group, seed "
              f"{'?' if s.seed is None else s.seed}); small samples: read as pointers, not measurements.", ""]
    for dim, v in b.dimensions.items():
        w = v.widest_gap
        if w:
            lo, hi = min(w.logprob, key=w.logprob.get), max(w.logprob, key=w.logprob.get)
            lines.append(f"- **{dim}:** widest log-probability gap: \"{w.template}\" + \"{w.attribute}\" "
                         f"is {w.spread:.2f} nats more likely for \"{hi}\" than for \"{lo}\".")
        tops = "; ".join(f"{g}: {', '.join(ws) or '-'}" for g, ws in v.top_words.items())
        lines.append(f"  Most over-represented words in samples: {tops}.")
    return lines


def write_card(card: Card, directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write `model_card.md` and `model_card.json` into `directory` (atomically); returns both paths."""
    directory = Path(directory)
    md, js = directory / CARD_MD, directory / CARD_JSON
    atomic_write_text(js, json.dumps(card.to_dict(), indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(md, render_markdown(card))
    return md, js
