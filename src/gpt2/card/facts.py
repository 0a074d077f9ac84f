"""The facts of a model card, in the sections of OpenAI's GPT-2 model card; `Card.to_dict` is model_card.json
and `Card.from_dict` reads it back. A fact no file recorded is None (null in the JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from gpt2.bias.report import BiasProbes
from gpt2.data.manifest import DataInput, Manifest


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
class PreparedData:
    """The prepared data's facts, from its manifest.json (gpt2.data.manifest)."""

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
    def from_dict(cls, doc: dict[str, Any]) -> PreparedData:
        return cls(**{**doc, "inputs": [DataInput(**i) for i in doc["inputs"]]})

    @classmethod
    def of(cls, manifest: Manifest, directory: Path) -> PreparedData:
        """What the card shows of the manifest of the prepared data in `directory`."""
        train, val = manifest.splits["train"], manifest.splits["val"]
        return cls(
            path=str(directory),
            tokenizer=manifest.tokenizer.name,
            vocab_size=manifest.tokenizer.vocab_size,
            train_documents=train.documents,
            train_tokens=train.tokens,
            val_documents=val.documents,
            val_tokens=val.tokens,
            val_fraction=manifest.val_fraction,
            split_seed=manifest.seed,
            txt_split=manifest.txt_split,
            inputs=list(manifest.inputs),
        )


@dataclass
class TrainingData:
    dataset: str | None  # a description of the dataset, for OpenAI's weights only
    read_from: str | None  # the data path the run recorded
    manifest: PreparedData | None
    note: str | None  # why the manifest is missing, when the run recorded a path

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "read_from": self.read_from,
                "manifest": self.manifest.to_dict() if self.manifest else None, "note": self.note}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> TrainingData:
        manifest = PreparedData.from_dict(doc["manifest"]) if doc["manifest"] is not None else None
        return cls(doc["dataset"], doc["read_from"], manifest, doc["note"])


@dataclass
class Evaluation:
    """A results.json of `gpt2 eval`."""

    file: str
    model: str | None
    model_parameters: int | None
    paper_size: str | None
    tasks: dict[str, Any]  # task -> its result, as the file records it (checked by gpt2.evaluation.report.read_results)


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
