"""Model cards: a checkpoint described in the structure of OpenAI's GPT-2 model card, from recorded facts only.

The facts come from files, never from guesses: `config.json` (sizes; parameter count from its shapes), the
training metadata `gpt2 train` saves with a checkpoint (`config.json`'s "gpt2" key, `training_state.pt`)
and in its run directory (`train_config.json`), the `manifest.json` of the prepared data the run read, the
`results.json` of `gpt2 eval` and the `bias.json` of `gpt2 bias`. A fact no file holds is null in
`model_card.json`, listed under "not_recorded", and written "not recorded" in `model_card.md`.

    from gpt2.card import build_card, render_markdown
    facts = build_card("runs/mini/checkpoint", results=["results/mini/results.json"])
    print(render_markdown(facts))

The fixed text (intended uses, out-of-scope uses, limitations) paraphrases OpenAI's GPT-2 model card
(github.com/openai/gpt-2, model_card.md) and the paper (Radford et al., 2019).
"""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpt2.errors import CheckpointError, DataError

CARD_MD = "model_card.md"
CARD_JSON = "model_card.json"
NOT_RECORDED = "not recorded"
PAPER = ('Radford, Wu, Child, Luan, Amodei and Sutskever (2019), "Language Models are Unsupervised '
         'Multitask Learners", OpenAI')

# Facts about OpenAI's released weights, from the paper and OpenAI's model card; used only when the card is
# made for a hub name (a local copy of those weights cannot be told apart from any other checkpoint).
HUB_FACTS = {
    "developed_by": "OpenAI",
    "license": "Modified MIT License (github.com/openai/gpt-2, LICENSE)",
    "training_data": (
        "WebText (not released): the text of about 8 million web pages, 40 GB, that were linked from "
        "Reddit posts with at least 3 karma, collected up to December 2017; Wikipedia articles were "
        "removed so that evaluations on Wikipedia-based benchmarks are not trained on (paper, Sec. 2.1)."
    ),
}

# Training settings shown on the card, in this order (all are TrainConfig fields).
TRAIN_FIELDS = (
    "model_size", "init_from", "data", "max_steps", "max_tokens", "time_budget_s", "batch_size", "seq_len",
    "total_batch_tokens", "lr", "min_lr", "warmup_steps", "weight_decay", "beta1", "beta2", "grad_clip",
    "dropout", "dtype", "seed",
)

# What a null TrainConfig field meant for the run (TrainConfig: None = "derive it").
UNSET = {
    "init_from": "not set: a fresh model", "max_steps": "not set", "max_tokens": "not set",
    "time_budget_s": "not set", "seq_len": "not set: the context length", "total_batch_tokens":
    "not set: no gradient accumulation", "min_lr": "not set: lr / 10", "warmup_steps":
    "not set: derived from the run's length",
}

INTENDED_USES = """\
- **Research.** The GPT-2 model card names AI researchers and practitioners as the primary users, and the
  study of large generative language models as the primary use: what they can do, how they fail, which
  biases they carry and where their limits lie.
- **Secondary uses** it lists: help with writing (grammar, autocompletion of prose or code); creative and
  fictional writing, poetry and other art; entertainment such as games, chat bots and playful text.
- A checkpoint trained with this project is in the first place an object of study: its samples show what a
  model of this size learns from the data described below."""

OUT_OF_SCOPE = """\
- **Anything that needs the text to be true.** The model cannot tell fact from fiction; it invents facts,
  names, quotations and sources as fluently as it repeats real ones.
- **Systems that talk to people**, unless whoever deploys it has first studied the biases that matter for
  that use: the model reproduces biases of the text it learned from.
- **Uses sensitive to biases about human attributes** (gender, race, religion, ...). OpenAI's probes found no
  statistically significant difference in such biases between its 774M and 1.5B models, so no size should
  be treated as safer than another.
- **Deception**: passing generated text off as written by a person, impersonation, spam, mass-produced
  disinformation or fake reviews."""

LIMITATIONS = """\
- **Unfiltered web text in, unfiltered text out.** GPT-2's training data was not filtered for offensive
  content; the model can produce offensive, demeaning or harmful text, more readily when a prompt leads
  there. A checkpoint trained here inherits whatever its own training data holds.
- **Learned associations are biased.** How the model completes text about groups of people mirrors its
  training text: OpenAI's probes of GPT-2 found, for example, different occupations suggested for men and
  women, and negative associations with some religions and races. `gpt2 bias` runs probes of this kind.
- **Fluent, not reliable.** Facts, numbers, quotations and references in samples are often wrong or
  invented; long samples repeat themselves, drift off topic or contradict themselves.
- **Skewed coverage.** WebText comes from pages shared on Reddit, so it over-represents English and the
  interests and demographics of that site's users; other languages, dialects and communities are served
  worse. A smaller or narrower training set (as in most runs of this project) narrows this further.
- **Size.** The paper's zero-shot results improve steadily with model size; small checkpoints are far
  weaker than the 1.5B model on every benchmark."""


# ---- finding the files ----

def locate(name_or_path: str | os.PathLike) -> tuple[Path, Path | None]:
    """The checkpoint directory for `name_or_path` (a run directory stands for its current checkpoint) and
    the run directory it belongs to, or None when it is not inside one."""
    from gpt2.checkpoint import CONFIG_FILE, resolve
    from gpt2.training.checkpointing import DIRECTORY, LINK

    directory = resolve(name_or_path)
    if not (directory / CONFIG_FILE).is_file() and (directory / LINK / CONFIG_FILE).is_file():
        directory = directory / LINK
    if not (directory / CONFIG_FILE).is_file():
        raise CheckpointError(f"{directory}: no {CONFIG_FILE}; expected a checkpoint directory (config.json + "
                              "model.safetensors) or a run directory of `gpt2 train` (with a `checkpoint` link)")
    run_dir = None
    if directory.name == LINK:  # runs/x/checkpoint -> runs/x
        run_dir = directory.parent
    elif directory.resolve().parent.name == DIRECTORY:  # runs/x/checkpoints/step_00001000 -> runs/x
        run_dir = directory.resolve().parent.parent
    return directory, run_dir


def _read_object(path: Path, name: str, command: str) -> dict[str, Any]:
    """The JSON object in `path`, a `name` (e.g. results.json) written by `command`; errors name the file."""
    what = f"a {name} written by `{command} --out DIR`"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; expected {what}") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory; expected {what}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: not valid JSON ({e}); expected {what}") from None
    if not isinstance(doc, dict):
        raise DataError(f"{path}: expected a JSON object (a {name} of `{command}`), got {type(doc).__name__}")
    return doc


def _dedupe(paths: list[Path]) -> list[Path]:
    seen, out = set(), []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# ---- reading what was recorded ----

def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """A `gpt2 eval` results.json, checked field by field (errors name the file and the field)."""
    from gpt2.evaluation.report import PAPER_SIZES

    path = Path(path)
    doc = _read_object(path, "results.json", "gpt2 eval")
    tasks = doc.get("tasks")
    if not isinstance(tasks, dict) or not tasks:
        raise DataError(f"{path}: field 'tasks' must be a non-empty object of task -> result, got {tasks!r}"[:300])
    for task, result in tasks.items():
        where = f"{path}: field 'tasks.{task}"
        if not isinstance(result, dict) or not isinstance(result.get("metrics"), dict):
            raise DataError(f"{where}.metrics' must be an object of metric -> number")
        for name, value in result["metrics"].items():
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise DataError(f"{where}.metrics.{name}' must be a finite number, got {value!r}")
        n = result.get("n_examples")
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise DataError(f"{where}.n_examples' must be a non-negative integer, got {n!r}")
    size = doc.get("paper_size")
    if size is not None and size not in PAPER_SIZES:
        raise DataError(f"{path}: field 'paper_size' must be one of {', '.join(PAPER_SIZES)}, got {size!r}")
    params = doc.get("model_parameters")
    if params is not None and (isinstance(params, bool) or not isinstance(params, int) or params <= 0):
        raise DataError(f"{path}: field 'model_parameters' must be a positive integer, got {params!r}")
    return doc


def read_bias(path: str | os.PathLike) -> dict[str, Any]:
    """A `gpt2 bias` bias.json, checked for the fields the card reads."""
    path = Path(path)
    doc = _read_object(path, "bias.json", "gpt2 bias")
    for key in ("dimensions", "overrepresented", "logprob_gaps", "settings"):
        if not isinstance(doc.get(key), dict):
            raise DataError(f"{path}: field {key!r} must be an object; is this a bias.json of `gpt2 bias`?")
    return doc


def _training_state(checkpoint: Path, sources: list[str]) -> dict[str, Any] | None:
    from gpt2.training.checkpointing import STATE_FILE, load_state

    path = checkpoint / STATE_FILE
    if not path.is_file():
        return None
    try:
        # mmap: the optimizer's tensors (twice the model's size) are mapped, not read; only the small
        # entries below are used
        state = load_state(checkpoint, mmap=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read as a training state ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dictionary of training state, got {type(state).__name__}")
    sources.append(str(path))
    return {k: state.get(k) for k in ("step", "tokens", "val_loss", "world_size", "train_config")}


def _train_config(run_dir: Path | None, state: dict[str, Any] | None, sources: list[str]) -> dict[str, Any] | None:
    from gpt2.training.config import CONFIG_FILE, TrainConfig

    if run_dir is not None and (run_dir / CONFIG_FILE).is_file():
        sources.append(str(run_dir / CONFIG_FILE))
        return TrainConfig.load(run_dir).to_dict()  # validated: errors name the file and the field
    if state is not None and isinstance(state.get("train_config"), dict):
        return dict(state["train_config"])
    return None


def _data(data_path: str | None, sources: list[str]) -> tuple[dict[str, Any] | None, str | None]:
    """The training data's facts from its manifest, and a note when the manifest could not be found."""
    from gpt2.data import MANIFEST, load_manifest

    if not data_path:
        return None, None
    directory = Path(data_path).expanduser()
    if not (directory / MANIFEST).is_file():
        # Relative paths are relative to where training ran, which is not recorded: no guessing here.
        return None, f"the run read {data_path}, but {directory / MANIFEST} is not there (moved, or a path " \
            "relative to a directory not recorded)"
    manifest = load_manifest(directory)  # errors name the file
    sources.append(str(directory / MANIFEST))
    splits = manifest.get("splits", {})
    tokenizer = manifest.get("tokenizer", {})
    return {
        "path": str(directory),
        "tokenizer": tokenizer.get("name"),
        "vocab_size": tokenizer.get("vocab_size"),
        "train_documents": splits.get("train", {}).get("documents"),
        "train_tokens": splits.get("train", {}).get("tokens"),
        "val_documents": splits.get("val", {}).get("documents"),
        "val_tokens": splits.get("val", {}).get("tokens"),
        "val_fraction": manifest.get("val_fraction"),
        "split_seed": manifest.get("seed"),
        "txt_split": manifest.get("txt_split"),
        "inputs": [{k: i.get(k) for k in ("path", "bytes", "sha256", "documents")}
                   for i in manifest.get("inputs", [])],
    }, None


# ---- the card ----

def build_card(
    name_or_path: str | os.PathLike,
    results: list[str | os.PathLike] | None = None,
    bias: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The facts of a model card: what the checkpoint and the files around it record, nothing else.

    `results` (results.json files of `gpt2 eval`) and `bias` (a bias.json of `gpt2 bias`) are added to the
    ones found in the checkpoint directory and its run directory."""
    from gpt2.checkpoint import (
        CONFIG_FILE,
        HUB_NAMES,
        describe,  # the same facts `gpt2 info` prints
    )

    checkpoint, run_dir = locate(name_or_path)
    info = describe(str(checkpoint))
    sources = [str(checkpoint / CONFIG_FILE)]
    # OpenAI's facts only for its hub names, and not when a local directory of that name was what loaded.
    hub = (str(name_or_path).removeprefix("openai-community/") in HUB_NAMES
           and not Path(name_or_path).expanduser().is_dir())
    config = info["config"]
    tok = info["tokenizer"]
    model = {
        "name": str(name_or_path) if hub else (run_dir or checkpoint).resolve().name,
        "path": str(checkpoint),
        "type": "GPT-2: decoder-only Transformer language model (pre-LayerNorm, learned positions, tied "
                "input/output embeddings)",
        "n_layer": config["n_layer"], "n_head": config["n_head"], "n_embd": config["n_embd"],
        "n_positions": config["n_positions"], "vocab_size": config["vocab_size"],
        "parameters": info["parameters"], "non_embedding_parameters": info["non_embedding_parameters"],
        "stored_dtypes": info["dtypes"] or None,
        "tokenizer": None if "error" in tok else f"{tok['name']} ({tok['type']}, {tok['vocab_size']:,} ids)",
        "developed_by": HUB_FACTS["developed_by"] if hub else None,
        "license": HUB_FACTS["license"] if hub else None,
        "paper": PAPER,
    }

    metadata = info["metadata"] if isinstance(info["metadata"], dict) else {}
    state = _training_state(checkpoint, sources)
    train_config = _train_config(run_dir, state, sources)

    def recorded(key: str) -> Any:  # the checkpoint's metadata first, then its training state
        if metadata.get(key) is not None:
            return metadata[key]
        return state.get(key) if state else None

    training = {
        "run_dir": str(run_dir) if run_dir is not None else None,
        "step": recorded("step"), "tokens": recorded("tokens"), "val_loss": recorded("val_loss"),
        "world_size": state.get("world_size") if state else None,
        # init_from null means trained from scratch, when a train config or the metadata records it.
        "init_from": (train_config or metadata).get("init_from"),
        "from_scratch": None if train_config is None and "init_from" not in metadata
        else (train_config or metadata).get("init_from") is None,
        "config": {k: train_config.get(k) for k in TRAIN_FIELDS} if train_config else None,
    }

    data_path = (train_config or {}).get("data") or metadata.get("data")
    data, data_note = _data(data_path, sources)
    if data is not None and data.get("train_tokens") and training["tokens"]:
        data["epochs"] = training["tokens"] / data["train_tokens"]  # tokens seen / tokens in the train split
    training_data = {"dataset": HUB_FACTS["training_data"] if hub else None, "read_from": data_path,
                     "manifest": data, "note": data_note}

    places = [checkpoint] + ([run_dir] if run_dir is not None else [])
    given = [Path(p) for p in results or []]
    found = [d / "results.json" for d in places if (d / "results.json").is_file()]
    evaluations = []
    for path in _dedupe(given + found):
        try:
            doc = read_results(path)
        except DataError:
            if path in given:
                raise
            continue  # "results.json" is a common name: one found here may be a benchmark's, not eval's
        sources.append(str(path))
        evaluations.append({"file": str(path), "model": doc.get("model"),
                            "model_parameters": doc.get("model_parameters"), "paper_size": doc.get("paper_size"),
                            "tasks": doc["tasks"]})

    bias_files = [Path(bias)] if bias is not None else [d / "bias.json" for d in places
                                                        if (d / "bias.json").is_file()]
    bias_facts = None
    if bias_files:  # bias.json is `gpt2 bias`'s own name: a malformed one found here is an error too
        doc = read_bias(bias_files[0])
        sources.append(str(bias_files[0]))
        bias_facts = {"file": str(bias_files[0]), **_bias_summary(doc)}

    facts: dict[str, Any] = {
        "format": "gpt2-model-card", "version": 1,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "model": model, "training": training, "training_data": training_data,
        "evaluation": evaluations, "bias_probes": bias_facts, "sources": sources,
    }
    facts["not_recorded"] = _unrecorded(facts)
    return facts


def _bias_summary(doc: dict[str, Any]) -> dict[str, Any]:
    """Per dimension: the attribute whose log-probability differs most between groups, and each group's
    most over-represented words."""
    out: dict[str, Any] = {"settings": doc.get("settings", {}), "dimensions": {}}
    for dim, groups in doc["dimensions"].items():
        gaps = doc["logprob_gaps"].get(dim) or []
        widest = max(gaps, key=lambda g: g.get("spread", 0), default=None)
        words = {g: [w["word"] for w in ws[:5]] for g, ws in doc["overrepresented"].get(dim, {}).items()}
        out["dimensions"][dim] = {"groups": groups, "widest_gap": widest, "top_words": words}
    return out


def _unrecorded(facts: dict[str, Any]) -> list[str]:
    """Dotted names of the facts that no file recorded (null in the JSON)."""
    missing = [f"model.{k}" for k, v in facts["model"].items() if v is None]
    training = facts["training"]
    missing += [f"training.{k}" for k, v in training.items()
                if v is None and not (k == "init_from" and training["from_scratch"])]
    data = facts["training_data"]
    if data["dataset"] is None and data["manifest"] is None:
        missing.append("training_data")
    if not facts["evaluation"]:
        missing.append("evaluation")
    if facts["bias_probes"] is None:
        missing.append("bias_probes")
    return missing


# ---- Markdown ----

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


def render_markdown(facts: dict[str, Any]) -> str:
    """The card as Markdown, in the sections of OpenAI's GPT-2 model card."""
    from gpt2.checkpoint import human_count

    m, t, d = facts["model"], facts["training"], facts["training_data"]
    lines = [
        f"# Model card: {m['name']}",
        "",
        "Written by `gpt2 card` from the files listed at the end; a fact none of them holds is marked "
        f"\"{NOT_RECORDED}\". The uses and limitations sections paraphrase OpenAI's GPT-2 model card.",
        "",
        "## Model details",
        "",
        f"- **Model type:** {m['type']}",
        f"- **Parameters:** {_fmt(m['parameters'])} ({human_count(m['parameters'])}; "
        f"{_fmt(m['non_embedding_parameters'])} without the token and position embeddings)",
        f"- **Layers / heads / width:** {m['n_layer']} / {m['n_head']} / {m['n_embd']}",
        f"- **Context length:** {_fmt(m['n_positions'])} tokens",
        f"- **Vocabulary:** {_fmt(m['vocab_size'])} ids; tokenizer {_fmt(m['tokenizer'])}",
        f"- **Stored weights:** {_fmt(m['stored_dtypes'])}, in `{m['path']}`",
        f"- **Developed by:** {_fmt(m['developed_by'])}",
        f"- **License:** {_fmt(m['license'])}",
        f"- **Paper:** {m['paper']}",
        "",
        "### Training procedure",
        "",
        f"- **Run directory:** {_fmt(t['run_dir'])}",
        "- **Initialised from:** "
        + ("random weights (trained from scratch)" if t["from_scratch"] else _fmt(t["init_from"])),
        f"- **Optimizer steps:** {_fmt(t['step'])}",
        f"- **Tokens trained on:** {_fmt(t['tokens'])}",
        "- **Validation loss at this checkpoint:** "
        + (f"{t['val_loss']:.4f} nats/token" if t["val_loss"] is not None else NOT_RECORDED),
        f"- **Processes:** {_fmt(t['world_size'])}",
    ]
    if t["config"]:
        lines += ["", "| setting | value |", "| --- | --- |"]
        lines += [f"| {k} | {UNSET.get(k, 'not set') if v is None else v} |" for k, v in t["config"].items()]
    else:
        lines += ["- **Training settings:** " + NOT_RECORDED + " (no train_config.json in a run directory and no "
                  "training_state.pt beside the weights)"]

    lines += ["", "## Intended uses", "", INTENDED_USES, "", "## Out-of-scope uses", "", OUT_OF_SCOPE, "",
              "## Training data", ""]
    if d["dataset"]:
        lines += [f"- **Dataset:** {d['dataset']}"]
    man = d["manifest"]
    if man:
        lines += [
            f"- **Prepared data:** `{man['path']}` (`gpt2 prepare` manifest)",
            f"- **Tokenizer:** {_fmt(man['tokenizer'])} ({_fmt(man['vocab_size'])} ids)",
            f"- **Train split:** {_fmt(man['train_documents'])} documents, {_fmt(man['train_tokens'])} tokens",
            f"- **Validation split:** {_fmt(man['val_documents'])} documents, {_fmt(man['val_tokens'])} tokens "
            f"(fraction {_fmt(man['val_fraction'])}, split seed {_fmt(man['split_seed'])}, documents by "
            f"{_fmt(man['txt_split'])})",
        ]
        if man.get("epochs") is not None:
            lines.append(f"- **Passes over the train split:** {man['epochs']:.2f} (tokens trained on / train tokens)")
        lines += ["", "| input | bytes | documents | sha256 |", "| --- | ---: | ---: | --- |"]
        lines += [f"| `{i['path']}` | {_fmt(i['bytes'])} | {_fmt(i['documents'])} | `{_fmt(i['sha256'])}` |"
                  for i in man["inputs"]]
    elif not d["dataset"]:
        lines.append(f"- **Dataset:** {NOT_RECORDED}"
                     + (f" ({d['note']})" if d["note"] else " (no training metadata points to a data manifest)"))

    lines += ["", "## Evaluation results", ""]
    if t["val_loss"] is not None:
        lines += [f"- Validation loss recorded in training: {t['val_loss']:.4f} nats/token "
                  f"(perplexity {math.exp(min(t['val_loss'], 700)):.2f}) on the held-out split above.", ""]
    if facts["evaluation"]:
        for ev in facts["evaluation"]:
            lines += _evaluation_table(ev, m["parameters"]) + [""]
        lines.pop()
    else:
        lines += [f"Zero-shot benchmarks: {NOT_RECORDED} (no results.json given with --results or found beside "
                  "the checkpoint; `gpt2 eval --model DIR --task ... --out DIR` writes one)."]

    lines += ["", "## Limitations and biases", "", LIMITATIONS, "", "### Bias probes of this model", ""]
    b = facts["bias_probes"]
    if b:
        s = b["settings"]
        lines.append(f"From `{b['file']}` ({s.get('samples', '?')} samples per template and group, seed "
                     f"{s.get('seed', '?')}); small samples: read as pointers, not measurements.")
        lines.append("")
        for dim, v in b["dimensions"].items():
            w = v["widest_gap"]
            if w:
                lo, hi = min(w["logprob"], key=w["logprob"].get), max(w["logprob"], key=w["logprob"].get)
                lines.append(f"- **{dim}:** widest log-probability gap: \"{w['template']}\" + \"{w['attribute']}\" "
                             f"is {w['spread']:.2f} nats more likely for \"{hi}\" than for \"{lo}\".")
            tops = "; ".join(f"{g}: {', '.join(ws) or '-'}" for g, ws in v["top_words"].items())
            lines.append(f"  Most over-represented words in samples: {tops}.")
    else:
        lines.append(f"{NOT_RECORDED} for this checkpoint (`gpt2 bias --model DIR --out DIR` runs templated "
                     "probes over gender, race and religion).")

    lines += ["", "## Sources", ""] + [f"- `{s}`" for s in facts["sources"]] + [""]
    return "\n".join(lines)


def _evaluation_table(ev: dict[str, Any], parameters: int) -> list[str]:
    """One results.json as a table, with the paper's number beside ours where the paper has one."""
    from gpt2.evaluation.report import PAPER_ROWS, nearest_paper_size

    size = ev["paper_size"] or nearest_paper_size(ev["model_parameters"] or parameters)
    lines = [f"From `{ev['file']}` (model {_fmt(ev['model'])}):"]
    if ev["model_parameters"] is not None and ev["model_parameters"] != parameters:
        lines.append(f"**Note:** this file was written for a model of {ev['model_parameters']:,} parameters, "
                     f"not this checkpoint's {parameters:,}.")
    paper = {(task, key): (scale, label, values.get(size)) for task, key, scale, label, values, _, _ in PAPER_ROWS}
    lines += ["", f"| task | metric | value | paper {size} | examples |", "| --- | --- | ---: | ---: | ---: |"]
    for task, result in ev["tasks"].items():
        for key, value in result["metrics"].items():
            scale, label, theirs = paper.get((task, key), (1.0, None, None))
            shown = f"{value * scale:.2f}" if label else f"{value:.4f}"
            lines.append(f"| {task} | {label or key} | {shown} | {'-' if theirs is None else f'{theirs:.2f}'} | "
                         f"{_fmt(result.get('n_examples'))} |")
    return lines


def write_card(facts: dict[str, Any], directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write `model_card.md` and `model_card.json` into `directory` (atomically); returns both paths."""
    from gpt2.io import atomic_write_text

    directory = Path(directory)
    md, js = directory / CARD_MD, directory / CARD_JSON
    atomic_write_text(js, json.dumps(facts, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(md, render_markdown(facts))
    return md, js
