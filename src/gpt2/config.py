"""GPTConfig: the hyperparameters of a GPT-2 model, its size presets, and HF `config.json` keys."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2.errors import ConfigError

# HF GPT2Config keys that this architecture honours, mapped to our field names.
_HF_FIELDS = {
    "vocab_size": "vocab_size",
    "n_positions": "n_positions",
    "n_embd": "n_embd",
    "n_layer": "n_layer",
    "n_head": "n_head",
    "n_inner": "n_inner",
    "layer_norm_epsilon": "layer_norm_epsilon",
    "resid_pdrop": "resid_pdrop",
    "embd_pdrop": "embd_pdrop",
    "attn_pdrop": "attn_pdrop",
    "initializer_range": "initializer_range",
    "bos_token_id": "bos_token_id",
    "eos_token_id": "eos_token_id",
}
# HF keys that are bookkeeping or describe options GPT-2 itself leaves at their defaults: accepted, ignored
# unless their value would change the architecture (checked in `from_dict`).
_HF_IGNORED = {
    "architectures", "model_type", "transformers_version", "torch_dtype", "dtype", "n_ctx",
    "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
    "summary_first_dropout", "task_specific_params", "use_cache", "scale_attn_weights",
    "scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn", "activation_function",
    "tie_word_embeddings", "add_cross_attention", "pad_token_id", "_name_or_path", "output_past",
    "return_dict", "output_hidden_states", "output_attentions", "torchscript", "id2label", "label2id",
    "problem_type", "tokenizer_class", "prefix", "sep_token_id", "decoder_start_token_id",
    "is_encoder_decoder", "is_decoder", "chunk_size_feed_forward", "tf_legacy_loss", "use_bfloat16",
    "pruned_heads", "finetuning_task", "cross_attention_hidden_size", "tie_encoder_decoder",
    "gpt2", "gpt2_meta",
}
# Values of ignored keys that would mean a different network than GPT-2's.
_HF_REQUIRED_VALUES = {
    "activation_function": {"gelu_new", "gelu_pytorch_tanh"},
    "scale_attn_weights": {True},
    "scale_attn_by_inverse_layer_idx": {False},
    "reorder_and_upcast_attn": {False},
    "tie_word_embeddings": {True},
    "add_cross_attention": {False},
}


@dataclass
class GPTConfig:
    """GPT-2's hyperparameters. Field names follow HF's GPT2Config so `config.json` maps one to one."""

    vocab_size: int = 50257
    n_positions: int = 1024  # context length (the paper's n_ctx)
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None  # MLP width; GPT-2 uses 4 * n_embd
    layer_norm_epsilon: float = 1e-5
    resid_pdrop: float = 0.0
    embd_pdrop: float = 0.0
    attn_pdrop: float = 0.0
    initializer_range: float = 0.02
    bos_token_id: int | None = None  # default: the last id, where GPT-2 keeps <|endoftext|>
    eos_token_id: int | None = None

    def __post_init__(self) -> None:
        self.validate()
        if self.bos_token_id is None:
            self.bos_token_id = self.vocab_size - 1
        if self.eos_token_id is None:
            self.eos_token_id = self.vocab_size - 1

    @property
    def mlp_width(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def validate(self) -> None:
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"config field {name!r} must be a positive integer, got {value!r}")
        if self.n_inner is not None and (not isinstance(self.n_inner, int) or self.n_inner <= 0):
            raise ConfigError(f"config field 'n_inner' must be a positive integer or null, got {self.n_inner!r}")
        if self.n_embd % self.n_head != 0:
            raise ConfigError(
                f"config field 'n_embd' ({self.n_embd}) must be divisible by 'n_head' ({self.n_head})"
            )
        for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0.0 <= value < 1.0:
                raise ConfigError(f"config field {name!r} must be a probability in [0, 1), got {value!r}")
        if not isinstance(self.layer_norm_epsilon, int | float) or self.layer_norm_epsilon <= 0:
            raise ConfigError(
                f"config field 'layer_norm_epsilon' must be a positive number, got {self.layer_norm_epsilon!r}"
            )

    # ---- HF config.json ----

    def to_dict(self) -> dict[str, Any]:
        """The HF GPT2Config dictionary (loadable by `transformers.GPT2Config`)."""
        d: dict[str, Any] = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}
        d.update(dataclasses.asdict(self))
        d.update(
            n_ctx=self.n_positions,
            activation_function="gelu_new",
            scale_attn_weights=True,
            tie_word_embeddings=True,
            use_cache=True,
        )
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> GPTConfig:
        """Build from an HF `config.json` dictionary; unknown or unsupported fields are errors."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected a JSON object, got {type(d).__name__}")
        if d.get("model_type", "gpt2") != "gpt2":
            raise ConfigError(f"{source}: model_type is {d['model_type']!r}, expected 'gpt2'")
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key in _HF_FIELDS:
                kwargs[_HF_FIELDS[key]] = value
            elif key in _HF_REQUIRED_VALUES:
                if value not in _HF_REQUIRED_VALUES[key]:
                    allowed = sorted(map(str, _HF_REQUIRED_VALUES[key]))
                    raise ConfigError(
                        f"{source}: field {key!r} is {value!r}; GPT-2 needs one of {allowed}"
                    )
            elif key in _HF_IGNORED or key.startswith("_"):
                continue
            else:
                raise ConfigError(
                    f"{source}: unknown field {key!r}; expected HF GPT2Config keys such as "
                    f"{', '.join(list(_HF_FIELDS)[:5])}"
                )
        if "n_ctx" in d and "n_positions" not in d:
            kwargs["n_positions"] = d["n_ctx"]
        try:
            return cls(**kwargs)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def load(cls, path: str | Path) -> GPTConfig:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            hint = ""
            if (path.parent / "checkpoint" / "config.json").is_file():  # a `gpt2 train` run directory
                hint = f"; {path.parent} is a training run: its model is {path.parent / 'checkpoint'}"
            raise ConfigError(f"{path}: file not found{hint}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        return cls.from_dict(d, source=str(path))

    # ---- presets ----

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> GPTConfig:
        key = PRESET_ALIASES.get(name, name)
        if key not in PRESETS:
            raise ConfigError(f"unknown model size {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[key], **overrides})


PRESETS: dict[str, dict[str, int]] = {
    # The four released sizes (the paper's 117M/345M/762M/1542M, recounted by OpenAI later).
    "124M": dict(n_layer=12, n_head=12, n_embd=768),
    "355M": dict(n_layer=24, n_head=16, n_embd=1024),
    "774M": dict(n_layer=36, n_head=20, n_embd=1280),
    "1558M": dict(n_layer=48, n_head=25, n_embd=1600),
    # Small sizes for CPU work and tests (GPT-2 architecture, smaller numbers).
    "nano": dict(n_layer=2, n_head=2, n_embd=64, n_positions=128),
    "micro": dict(n_layer=4, n_head=4, n_embd=128, n_positions=256),
    "mini": dict(n_layer=6, n_head=6, n_embd=384, n_positions=256),
}
PRESET_ALIASES = {
    "117M": "124M", "gpt2": "124M", "345M": "355M", "gpt2-medium": "355M",
    "762M": "774M", "gpt2-large": "774M", "1542M": "1558M", "1.5B": "1558M", "gpt2-xl": "1558M",
}
