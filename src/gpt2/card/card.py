"""Model cards: a checkpoint described in the structure of OpenAI's GPT-2 model card, from recorded facts only.

The facts come from files, never from guesses: `config.json` (sizes; parameter count from its shapes), the
training metadata `gpt2 train` saves with a checkpoint (`config.json`'s "gpt2" key, `training_state.pt`)
and in its run directory (`train_config.json`), the `manifest.json` of the prepared data the run read, the
`results.json` of `gpt2 eval` and the `bias.json` of `gpt2 bias`. A fact no file holds is null in
`model_card.json`, listed under "not_recorded", and written "not recorded" in `model_card.md`.

    from gpt2.card import build_card, render_markdown
    card = build_card("runs/mini/checkpoint", results=["results/mini/results.json"])
    print(render_markdown(card))

The fixed text (intended uses, out-of-scope uses, limitations) paraphrases OpenAI's GPT-2 model card
(github.com/openai/gpt-2, model_card.md) and the paper (Radford et al., 2019).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpt2.bias import LogprobGap, ProbeSettings
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


# ---- the card's facts ----

@dataclass
class ModelFacts:
    name: str
    path: str
    type: str
    n_layer: int
    n_head: int
    n_embd: int
    n_positions: int
    vocab_size: int
    parameters: int
    non_embedding_parameters: int
    stored_dtypes: list[str] | None
    tokenizer: str | None
    developed_by: str | None  # OpenAI's facts, for its hub names only
    license: str | None
    paper: str


@dataclass
class TrainingFacts:
    run_dir: str | None
    step: int | None
    tokens: int | None
    val_loss: float | None
    world_size: int | None
    init_from: str | None
    from_scratch: bool | None  # None: nothing records whether the run started from other weights
    config: dict[str, Any] | None  # TRAIN_FIELDS -> the run's value


@dataclass
class DataInput:
    """A file `gpt2 prepare` read, as its manifest records it."""

    path: str | None
    bytes: int | None
    sha256: str | None
    documents: int | None


@dataclass
class Manifest:
    """The prepared data's facts, from its manifest.json."""

    path: str
    tokenizer: str | None
    vocab_size: int | None
    train_documents: int | None
    train_tokens: int | None
    val_documents: int | None
    val_tokens: int | None
    val_fraction: float | None
    split_seed: int | None
    txt_split: str | None
    inputs: list[DataInput]
    epochs: float | None = None  # tokens trained on / train tokens; left out of the JSON when unknown

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.epochs is None:
            del d["epochs"]
        return d

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Manifest:
        return cls(**{**doc, "inputs": [DataInput(**i) for i in doc["inputs"]]})


@dataclass
class TrainingData:
    dataset: str | None  # a description of the dataset, for OpenAI's weights only
    read_from: str | None  # the data path the run recorded
    manifest: Manifest | None
    note: str | None  # why the manifest is missing, when the run recorded a path

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "read_from": self.read_from,
                "manifest": self.manifest.to_dict() if self.manifest else None, "note": self.note}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TrainingData:
        manifest = Manifest.from_dict(doc["manifest"]) if doc["manifest"] is not None else None
        return cls(doc["dataset"], doc["read_from"], manifest, doc["note"])


@dataclass
class Evaluation:
    """A results.json of `gpt2 eval`."""

    file: str
    model: str | None
    model_parameters: int | None
    paper_size: str | None
    tasks: dict[str, Any]  # task -> its result, as the file records it (checked by read_results)


@dataclass
class BiasDimension:
    groups: list[str]
    widest_gap: LogprobGap | None  # the attribute whose log-probability differs most between the groups
    top_words: dict[str, list[str]]  # group -> its most over-represented words

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> BiasDimension:
        widest = LogprobGap.from_dict(doc["widest_gap"]) if doc["widest_gap"] is not None else None
        return cls(doc["groups"], widest, doc["top_words"])


@dataclass
class BiasProbes:
    """A bias.json of `gpt2 bias`, summarised per dimension."""

    file: str
    settings: ProbeSettings
    dimensions: dict[str, BiasDimension]

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "settings": self.settings.to_dict(),
                "dimensions": {dim: asdict(v) for dim, v in self.dimensions.items()}}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> BiasProbes:
        return cls(doc["file"], ProbeSettings.from_dict(doc["settings"]),
                   {dim: BiasDimension.from_dict(v) for dim, v in doc["dimensions"].items()})


@dataclass
class Card:
    """A model card's facts, in the sections of OpenAI's GPT-2 model card; `to_dict` is model_card.json."""

    created: str
    model: ModelFacts
    training: TrainingFacts
    training_data: TrainingData
    evaluation: list[Evaluation]
    bias_probes: BiasProbes | None
    sources: list[str]  # the files the facts were read from

    @property
    def not_recorded(self) -> list[str]:
        """Dotted names of the facts that no file recorded (null in the JSON)."""
        missing = [f"model.{f.name}" for f in fields(self.model) if getattr(self.model, f.name) is None]
        t = self.training
        missing += [f"training.{f.name}" for f in fields(t) if getattr(t, f.name) is None
                    and not (f.name == "init_from" and t.from_scratch)]
        if self.training_data.dataset is None and self.training_data.manifest is None:
            missing.append("training_data")
        if not self.evaluation:
            missing.append("evaluation")
        if self.bias_probes is None:
            missing.append("bias_probes")
        return missing

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": "gpt2-model-card", "version": 1, "created": self.created,
            "model": asdict(self.model), "training": asdict(self.training),
            "training_data": self.training_data.to_dict(), "evaluation": [asdict(e) for e in self.evaluation],
            "bias_probes": self.bias_probes.to_dict() if self.bias_probes else None,
            "sources": self.sources, "not_recorded": self.not_recorded,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Card:
        """A card read back from its model_card.json."""
        return cls(
            created=doc["created"], model=ModelFacts(**doc["model"]), training=TrainingFacts(**doc["training"]),
            training_data=TrainingData.from_dict(doc["training_data"]),
            evaluation=[Evaluation(**e) for e in doc["evaluation"]],
            bias_probes=BiasProbes.from_dict(doc["bias_probes"]) if doc["bias_probes"] is not None else None,
            sources=doc["sources"],
        )


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


def read_bias(path: str | os.PathLike) -> BiasProbes:
    """A `gpt2 bias` bias.json, checked for the fields the card reads, summarised per dimension: the attribute
    whose log-probability differs most between groups, and each group's most over-represented words."""
    path = Path(path)
    doc = _read_object(path, "bias.json", "gpt2 bias")
    for key in ("dimensions", "overrepresented", "logprob_gaps", "settings"):
        if not isinstance(doc.get(key), dict):
            raise DataError(f"{path}: field {key!r} must be an object; is this a bias.json of `gpt2 bias`?")
    dimensions = {}
    for dim, groups in doc["dimensions"].items():
        try:
            rows = [LogprobGap.from_dict(r) for r in doc["logprob_gaps"].get(dim) or []]
            words = {g: [w["word"] for w in ws[:5]] for g, ws in doc["overrepresented"].get(dim, {}).items()}
        except (KeyError, TypeError, AttributeError):
            raise DataError(f"{path}: fields 'logprob_gaps.{dim}' and 'overrepresented.{dim}' must hold the rows "
                            "of a bias.json of `gpt2 bias`") from None
        dimensions[dim] = BiasDimension(groups, max(rows, key=lambda r: r.spread, default=None), words)
    return BiasProbes(str(path), ProbeSettings.from_dict(doc["settings"]), dimensions)


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


def _manifest(data_path: str | None, sources: list[str]) -> tuple[Manifest | None, str | None]:
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
    return Manifest(
        path=str(directory),
        tokenizer=tokenizer.get("name"),
        vocab_size=tokenizer.get("vocab_size"),
        train_documents=splits.get("train", {}).get("documents"),
        train_tokens=splits.get("train", {}).get("tokens"),
        val_documents=splits.get("val", {}).get("documents"),
        val_tokens=splits.get("val", {}).get("tokens"),
        val_fraction=manifest.get("val_fraction"),
        split_seed=manifest.get("seed"),
        txt_split=manifest.get("txt_split"),
        inputs=[DataInput(*(i.get(k) for k in ("path", "bytes", "sha256", "documents")))
                for i in manifest.get("inputs", [])],
    ), None


# ---- the card ----

def build_card(
    name_or_path: str | os.PathLike,
    results: list[str | os.PathLike] | None = None,
    bias: str | os.PathLike | None = None,
) -> Card:
    """The facts of a model card: what the checkpoint and the files around it record, nothing else.

    `results` (results.json files of `gpt2 eval`) and `bias` (a bias.json of `gpt2 bias`) are added to the
    ones found in the checkpoint directory and its run directory."""
    from gpt2.checkpoint import (
        CONFIG_FILE,
        describe,  # the same facts `gpt2 info` prints
    )
    from gpt2.model import GPT

    checkpoint, run_dir = locate(name_or_path)
    info = describe(str(checkpoint), GPT)
    sources = [str(checkpoint / CONFIG_FILE)]  # each reader below appends the files it read
    hub = _is_hub(name_or_path)
    model = model_facts(name_or_path, checkpoint, run_dir, info, hub)
    metadata = info["metadata"] if isinstance(info["metadata"], dict) else {}
    state = _training_state(checkpoint, sources)
    train_config = _train_config(run_dir, state, sources)
    training = training_facts(run_dir, metadata, state, train_config)
    data = training_data(hub, (train_config or {}).get("data") or metadata.get("data"),
                         training.tokens, sources)
    places = [checkpoint] + ([run_dir] if run_dir is not None else [])
    evaluation = evaluations(results, places, sources)
    bias_probes = find_bias(bias, places, sources)
    return Card(created=datetime.now(UTC).isoformat(timespec="seconds"), model=model, training=training,
                training_data=data, evaluation=evaluation, bias_probes=bias_probes, sources=sources)


def _is_hub(name_or_path: str | os.PathLike) -> bool:
    """OpenAI's facts only for its hub names, and not when a local directory of that name was what loaded."""
    from gpt2.checkpoint import HUB_NAMES

    return (str(name_or_path).removeprefix("openai-community/") in HUB_NAMES
            and not Path(name_or_path).expanduser().is_dir())


def model_facts(name_or_path: str | os.PathLike, checkpoint: Path, run_dir: Path | None, info: dict[str, Any],
                hub: bool) -> ModelFacts:
    """Sizes and parameter counts from `describe`, and OpenAI's facts for its hub names."""
    config, tok = info["config"], info["tokenizer"]
    return ModelFacts(
        name=str(name_or_path) if hub else (run_dir or checkpoint).resolve().name,
        path=str(checkpoint),
        type="GPT-2: decoder-only Transformer language model (pre-LayerNorm, learned positions, tied "
             "input/output embeddings)",
        n_layer=config["n_layer"], n_head=config["n_head"], n_embd=config["n_embd"],
        n_positions=config["n_positions"], vocab_size=config["vocab_size"],
        parameters=info["parameters"], non_embedding_parameters=info["non_embedding_parameters"],
        stored_dtypes=info["dtypes"] or None,
        tokenizer=None if "error" in tok else f"{tok['name']} ({tok['type']}, {tok['vocab_size']:,} ids)",
        developed_by=HUB_FACTS["developed_by"] if hub else None,
        license=HUB_FACTS["license"] if hub else None,
        paper=PAPER,
    )


def training_facts(run_dir: Path | None, metadata: dict[str, Any], state: dict[str, Any] | None,
                   train_config: dict[str, Any] | None) -> TrainingFacts:
    """Progress from the checkpoint's metadata (then its training state), settings from the train config."""

    def recorded(key: str) -> Any:
        if metadata.get(key) is not None:
            return metadata[key]
        return state.get(key) if state else None

    init_from = (train_config or metadata).get("init_from")
    return TrainingFacts(
        run_dir=str(run_dir) if run_dir is not None else None,
        step=recorded("step"), tokens=recorded("tokens"), val_loss=recorded("val_loss"),
        world_size=state.get("world_size") if state else None,
        init_from=init_from,
        # init_from null means trained from scratch, when a train config or the metadata records it.
        from_scratch=None if train_config is None and "init_from" not in metadata else init_from is None,
        config={k: train_config.get(k) for k in TRAIN_FIELDS} if train_config else None,
    )


def training_data(hub: bool, data_path: str | None, tokens: int | None, sources: list[str]) -> TrainingData:
    """The data the run read, from its manifest; OpenAI's description of WebText for its hub names."""
    manifest, note = _manifest(data_path, sources)
    if manifest is not None and manifest.train_tokens and tokens:
        manifest.epochs = tokens / manifest.train_tokens
    return TrainingData(dataset=HUB_FACTS["training_data"] if hub else None, read_from=data_path,
                        manifest=manifest, note=note)


def evaluations(results: list[str | os.PathLike] | None, places: list[Path], sources: list[str]
                ) -> list[Evaluation]:
    """The results.json files given, then those found in `places`, each read once."""
    given = [Path(p) for p in results or []]
    found = [d / "results.json" for d in places if (d / "results.json").is_file()]
    out = []
    for path in _dedupe(given + found):
        try:
            doc = read_results(path)
        except DataError:
            if path in given:
                raise
            continue  # "results.json" is a common name: one found here may be a benchmark's, not eval's
        sources.append(str(path))
        out.append(Evaluation(file=str(path), model=doc.get("model"), model_parameters=doc.get("model_parameters"),
                              paper_size=doc.get("paper_size"), tasks=doc["tasks"]))
    return out


def find_bias(bias: str | os.PathLike | None, places: list[Path], sources: list[str]) -> BiasProbes | None:
    """The bias.json given, else the first found in `places`, else None."""
    files = [Path(bias)] if bias is not None else [d / "bias.json" for d in places if (d / "bias.json").is_file()]
    if not files:
        return None
    # bias.json is `gpt2 bias`'s own name: a malformed one found here is an error too
    probes = read_bias(files[0])
    sources.append(str(files[0]))
    return probes


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
    from gpt2.checkpoint import human_count

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
    from gpt2.evaluation.report import PAPER_ROWS, nearest_paper_size

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
    from gpt2.files import atomic_write_text

    directory = Path(directory)
    md, js = directory / CARD_MD, directory / CARD_JSON
    atomic_write_text(js, json.dumps(card.to_dict(), indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(md, render_markdown(card))
    return md, js
