"""Checkpoints in Hugging Face's layout: `config.json` + `model.safetensors` (+ tokenizer files).

HF's GPT-2 stores attention and MLP projections as Conv1D weights, shaped (in, out); our nn.Linear holds
(out, in), so those four matrices are transposed on the way in and out. Older checkpoints (the hub's `gpt2`)
name tensors without the `transformer.` prefix and carry the causal-mask buffers `attn.bias`; both load.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gpt2.config import GPTConfig
from gpt2.errors import CheckpointError, ConfigError, GPT2Error
from gpt2.files import atomic_write
from gpt2.tokenizer import Tokenizer

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PYTORCH_FILE = "pytorch_model.bin"
HUB_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
_HUB_FILES = [CONFIG_FILE, SAFETENSORS_FILE, SAFETENSORS_INDEX, "model-*.safetensors", "vocab.json",
              "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]


# ---- resolving a name to a local directory ----

def resolve(name_or_path: str | os.PathLike) -> Path:
    """A local checkpoint directory for `name_or_path`: the path itself, or a download from the HF hub."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if path.is_file():
        raise CheckpointError(f"{path} is a file; expected a checkpoint directory holding {CONFIG_FILE}")
    name = str(name_or_path)
    if not _looks_like_hub_id(name):
        raise CheckpointError(f"checkpoint directory {name} does not exist")
    return _download(name)


def check_name(name_or_path: str | os.PathLike) -> None:
    """Fail now, in one line, on a name that cannot be a checkpoint (a missing or incomplete directory, or
    neither a path nor a hub id), without loading or downloading anything: commands call it before their
    expensive work (fetching benchmark data, writing output directories)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if not (path / CONFIG_FILE).is_file():
            raise CheckpointError(f"{path}: no {CONFIG_FILE}; expected an HF-layout checkpoint directory")
    elif path.is_file():
        raise CheckpointError(f"{path} is a file; expected a checkpoint directory holding {CONFIG_FILE}")
    elif not _looks_like_hub_id(str(name_or_path)):
        raise CheckpointError(f"checkpoint directory {name_or_path} does not exist")


def _looks_like_hub_id(name: str) -> bool:
    if name in HUB_NAMES:
        return True
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        return False
    return all(part and part.replace("-", "").replace("_", "").replace(".", "").isalnum()
               for part in name.split("/"))


def _download(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(repo_id, allow_patterns=_HUB_FILES))
    except Exception as e:  # offline, unknown repo, auth: all end the same way for the user
        raise CheckpointError(
            f"could not get {repo_id!r} from the Hugging Face hub ({type(e).__name__}: {str(e)[:200]}). "
            "Offline, pass a local directory with config.json and model.safetensors instead, e.g. one "
            "written by `gpt2 train`, `gpt2 demo` or transformers' save_pretrained()."
        ) from None


# ---- loading ----

class PreTrainedModel(nn.Module):
    """HF's habit on the model class: `GPT.from_pretrained(dir_or_name)` and `model.save_pretrained(dir)`.

    The model (`gpt2.model.GPT`) subclasses this, so this module never imports the model: the class to build
    is `cls`, and the arrow runs one way, model -> checkpoint."""

    config: GPTConfig

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, device: torch.device | str | None = None,
                        dtype: torch.dtype | None = None):
        """Load an HF-layout directory or hub name (`gpt2`, `gpt2-medium`, ..., any repo id)."""
        directory = resolve(name_or_path)
        config = load_config(directory)
        state = load_state_dict(directory)
        with torch.device("meta"):
            model = cls(config)  # no point initialising weights that are about to be replaced
        expected = {name: p.shape for name, p in model.state_dict().items() if name != "lm_head.weight"}
        model.load_state_dict(from_hf_state_dict(state, expected, source=str(directory)), assign=True)
        model.lm_head.weight = model.transformer.wte.weight  # assign=True broke the tie
        if dtype is not None:
            model.to(dtype=dtype)
        if device is not None:
            model.to(device=device)
        return model.eval()

    def save_pretrained(self, directory: str | os.PathLike, tokenizer: Any | None = None,
                        metadata: dict[str, Any] | None = None) -> Path:
        """Write config.json + model.safetensors (+ tokenizer files) in HF's layout (see `save_pretrained`)."""
        return save_pretrained(self, directory, tokenizer=tokenizer, metadata=metadata)


def load_config(directory: Path) -> GPTConfig:
    """The GPTConfig of a checkpoint directory, or one line naming what is wrong with it."""
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise CheckpointError(f"{directory}: no {CONFIG_FILE}; expected an HF-layout checkpoint directory")
    try:
        return GPTConfig.load(config_path)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None


def load_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """The raw tensors of a checkpoint directory (safetensors preferred, sharded or not; else .bin)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    single, index, legacy = directory / SAFETENSORS_FILE, directory / SAFETENSORS_INDEX, directory / PYTORCH_FILE
    if single.is_file():
        files = [single]
    elif index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as e:
            raise CheckpointError(f"{index}: not a valid safetensors index ({e})") from None
        files = [directory / f for f in sorted(set(weight_map.values()))]
    elif legacy.is_file():
        try:
            # weights_only: a .bin is a pickle, and unpickling runs code; this refuses anything but tensors.
            return torch.load(legacy, map_location="cpu", weights_only=True)
        except Exception as e:
            raise CheckpointError(f"{legacy}: cannot be read as a PyTorch state dict ({e})") from None
    else:
        raise CheckpointError(f"{directory}: no weights; expected {SAFETENSORS_FILE} or {PYTORCH_FILE}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            state.update(load_file(f))
        except (SafetensorError, OSError, ValueError) as e:
            raise CheckpointError(f"{f}: corrupt or unreadable safetensors file ({e})") from None
    return state


def from_hf_state_dict(state: dict[str, torch.Tensor], expected: dict[str, torch.Size], source: str = "checkpoint"
                       ) -> dict[str, torch.Tensor]:
    """HF GPT2LMHeadModel tensors -> this model's state dict (names, Conv1D transposes), checked against the
    `expected` parameter shapes (the model's state dict less the tied lm_head)."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if not name.startswith(("transformer.", "lm_head.")):
            name = "transformer." + name  # GPT2Model-style names, as in the hub's original checkpoints
        if name.endswith((".attn.bias", ".attn.masked_bias")) or name == "lm_head.weight":
            continue  # causal-mask buffers; lm_head is tied to wte
        if name.endswith(_CONV1D):
            tensor = tensor.t()
        out[name] = tensor.contiguous()
    missing = sorted(set(expected) - set(out))
    unexpected = sorted(set(out) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source}: weights do not match config.json"
            + (f"; missing {missing[:5]}{' ...' if len(missing) > 5 else ''}" if missing else "")
            + (f"; unexpected {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}" if unexpected else "")
        )
    for name, shape in expected.items():
        if out[name].shape != shape:
            raise CheckpointError(
                f"{source}: tensor {name} has shape {tuple(out[name].shape)}, config.json implies {tuple(shape)}"
            )
    out["lm_head.weight"] = out["transformer.wte.weight"]
    return out


# ---- saving ----

def to_hf_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """This model's tensors under HF names and layouts (lm_head omitted: it is tied to wte)."""
    out = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":
            continue
        if name.endswith(_CONV1D):
            tensor = tensor.t()
        out[name] = tensor.detach().contiguous().cpu()
    return out


def save_pretrained(
    model: PreTrainedModel,
    directory: str | os.PathLike,
    tokenizer: Any | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `config.json` + `model.safetensors` (+ tokenizer files) so the directory is self-contained.

    Every file is written atomically; `metadata` (e.g. training provenance) goes under `config.json`'s
    "gpt2" key, which transformers keeps as an attribute and otherwise ignores.
    """
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = to_hf_state_dict(model)
    atomic_write(directory / SAFETENSORS_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
    config = model.config.to_dict()
    config["torch_dtype"] = str(model.dtype).removeprefix("torch.")
    if metadata:
        config["gpt2"] = metadata
    atomic_write(directory / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"))
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    return directory


def read_metadata(directory: str | os.PathLike) -> dict[str, Any]:
    """The "gpt2" metadata saved with a checkpoint (empty if none)."""
    try:
        return json.loads((Path(directory) / CONFIG_FILE).read_text(encoding="utf-8")).get("gpt2", {})
    except (OSError, json.JSONDecodeError):
        return {}


def load_tokenizer(name_or_path: str | os.PathLike):
    """The tokenizer saved beside a checkpoint; GPT-2's own when the directory has none and the vocabulary
    size is GPT-2's."""

    directory = resolve(name_or_path)
    if any((directory / f).is_file() for f in ("tokenizer.json", "vocab.json", "encoder.json")):
        return Tokenizer.from_pretrained(directory)
    config = GPTConfig.load(directory / CONFIG_FILE)
    if config.vocab_size == 50257:
        return Tokenizer.from_pretrained("gpt2")
    raise CheckpointError(
        f"{directory}: no tokenizer files (tokenizer.json or vocab.json + merges.txt) and vocab_size "
        f"{config.vocab_size} is not GPT-2's 50257; save the tokenizer beside the weights"
    )


# ---- what a checkpoint holds (`gpt2 info`, model cards) ----

def describe(name_or_path: str, model_class: type[PreTrainedModel]) -> dict[str, Any]:
    """A checkpoint's config, parameter counts (of `model_class` built from its config), stored dtypes,
    tokenizer, files and metadata."""
    directory = resolve(name_or_path)
    config = load_config(directory)
    with torch.device("meta"):  # counts from shapes; nothing allocated
        model = model_class(config)
    try:
        tok = load_tokenizer(directory)
        tokenizer = {"type": type(tok).__name__, "name": tok.name, "vocab_size": tok.vocab_size}
    except GPT2Error as e:
        tokenizer = {"error": str(e)}
    return {
        "path": str(directory),
        "config": dataclasses.asdict(config),
        "parameters": model.num_parameters(),
        "non_embedding_parameters": model.num_parameters(exclude_embeddings=True),
        "dtypes": stored_dtypes(directory),
        "tokenizer": tokenizer,
        "files": {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()},
        "metadata": read_metadata(directory),
    }


def stored_dtypes(directory: Path) -> list[str]:
    """The dtypes of the tensors in a directory's safetensors files (read from their headers)."""
    from safetensors import SafetensorError, safe_open

    dtypes: set[str] = set()
    for path in sorted(directory.glob("*.safetensors")):
        try:
            with safe_open(path, framework="pt") as f:
                dtypes.update(f.get_slice(key).get_dtype() for key in f.keys())
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({e})") from None
    return sorted(dtypes)


def human_count(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)
