"""Gathering a card's facts from the files a checkpoint and its run directory hold: config.json (sizes,
the "gpt2" training metadata), training_state.pt, the run's train_config.json, the manifest.json of the
data the run read, results.json files of `gpt2 eval` and a bias.json of `gpt2 bias` (those three through
the typed readers of the modules that write them). Nothing is guessed: what no file holds stays None."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gpt2.bias.report import BiasProbes, read_bias
from gpt2.card.facts import Card, Evaluation, ModelFacts, PreparedData, TrainingData, TrainingFacts
from gpt2.card.text import HUB_FACTS, PAPER
from gpt2.checkpoint import CONFIG_FILE, HUB_NAMES, describe, resolve
from gpt2.data.manifest import read_manifest
from gpt2.data.shards import MANIFEST
from gpt2.errors import CheckpointError, DataError
from gpt2.evaluation.report import read_results
from gpt2.model import GPT
from gpt2.training.checkpointing import DIRECTORY, LINK, STATE_FILE, load_state
from gpt2.training.config import CONFIG_FILE as TRAIN_CONFIG
from gpt2.training.config import TrainConfig

# Training settings shown on the card, in this order (all are TrainConfig fields).
TRAIN_FIELDS = (
    "model_size", "init_from", "data", "max_steps", "max_tokens", "time_budget_s", "batch_size", "seq_len",
    "total_batch_tokens", "lr", "min_lr", "warmup_steps", "weight_decay", "beta1", "beta2", "grad_clip",
    "dropout", "dtype", "seed",
)


def build_card(
    name_or_path: str | os.PathLike,
    results: list[str | os.PathLike] | None = None,
    bias: str | os.PathLike | None = None,
) -> Card:
    """The facts of a model card: what the checkpoint and the files around it record, nothing else.

    `results` (results.json files of `gpt2 eval`) and `bias` (a bias.json of `gpt2 bias`) are added to the
    ones found in the checkpoint directory and its run directory."""
    checkpoint, run_dir = locate(name_or_path)
    info = describe(str(checkpoint), GPT)  # the same facts `gpt2 info` prints
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
        out.append(Evaluation(file=str(path), model=doc.model, model_parameters=doc.model_parameters,
                              paper_size=doc.paper_size, tasks=doc.tasks))
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


# ---- finding the files ----

def locate(name_or_path: str | os.PathLike) -> tuple[Path, Path | None]:
    """The checkpoint directory for `name_or_path` (a run directory stands for its current checkpoint) and
    the run directory it belongs to, or None when it is not inside one."""
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


def _dedupe(paths: list[Path]) -> list[Path]:
    seen, out = set(), []
    for p in paths:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


# ---- reading the training run's files ----

def _training_state(checkpoint: Path, sources: list[str]) -> dict[str, Any] | None:
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
    if run_dir is not None and (run_dir / TRAIN_CONFIG).is_file():
        sources.append(str(run_dir / TRAIN_CONFIG))
        return TrainConfig.load(run_dir).to_dict()  # validated: errors name the file and the field
    if state is not None and isinstance(state.get("train_config"), dict):
        return dict(state["train_config"])
    return None


def _manifest(data_path: str | None, sources: list[str]) -> tuple[PreparedData | None, str | None]:
    """The training data's facts from its manifest, and a note when the manifest could not be found."""
    if not data_path:
        return None, None
    directory = Path(data_path).expanduser()
    if not (directory / MANIFEST).is_file():
        # Relative paths are relative to where training ran, which is not recorded: no guessing here.
        return None, f"the run read {data_path}, but {directory / MANIFEST} is not there (moved, or a path " \
            "relative to a directory not recorded)"
    manifest = read_manifest(directory)  # errors name the file and the field
    sources.append(str(directory / MANIFEST))
    return PreparedData.of(manifest, directory), None
