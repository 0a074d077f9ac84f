"""`GenerationConfig`: everything that decides a generated sequence, in one frozen, validated value.

Field names follow Hugging Face's GenerationConfig where it has one. The defaults differ where this
project's always did: sampling is on (temperature 1, no filter) and a sequence ends at the model's
<|endoftext|>. `generate(model, ids, max_new_tokens=20, top_k=40)` builds one from its keywords, as HF's
`generate(**kwargs)` updates its generation config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

import torch

from gpt2.errors import GPT2Error
from gpt2.sampling.watermark import Watermark

MODEL_EOS = "model"  # eos_token_id's default: the model config's <|endoftext|> (None: never stop at one)
# generate()'s keywords from before GenerationConfig, still accepted
_OLD_NAMES = {"num_samples": "num_return_sequences", "stop": "stop_strings"}


class SamplingError(GPT2Error, ValueError):
    """A generation option is out of range or inconsistent with the model."""


@dataclass(frozen=True)
class GenerationConfig:
    """How to continue a prompt: which token to pick at each step, how many sequences, when to stop.

    Picking: temperature (0, or do_sample=False, = greedy), then top-k, then top-p. A filter that is off
    is None; `top_k=0` and `top_p=1` also mean off (the CLI and OpenAI's API spell it so) and are stored as
    None, so that configs compare, hash and group equal however a caller wrote them. Stopping: at
    `eos_token_id` ('model': the model config's; None: never), at any of `stop_strings`, or after
    `max_new_tokens`. `seed` None draws one from torch's generator (so torch.manual_seed decides it).
    `watermark` adds its green-list bias after the temperature, before top-k and top-p (engine.py).
    """

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    do_sample: bool = True
    max_new_tokens: int = 20
    num_return_sequences: int = 1
    seed: int | None = None
    eos_token_id: int | str | None = MODEL_EOS
    stop_strings: tuple[str, ...] = ()  # a string or a list is stored as a tuple; None as ()
    watermark: Watermark | None = None  # the green-list bias (sampling/watermark.py); None: none

    def __post_init__(self) -> None:
        t, k, p = self.temperature, self.top_k, self.top_p
        check(_is_number(t) and t >= 0, "temperature", "a number >= 0 (0 = greedy)", t)
        check(k is None or (_is_int(k) and k >= 0), "top_k", "an integer >= 0 (0 = no limit) or None", k)
        check(p is None or (_is_number(p) and 0 < p <= 1), "top_p", "a number in (0, 1] (1 = off) or None", p)
        check(isinstance(self.do_sample, bool), "do_sample", "True or False (False = greedy)", self.do_sample)
        check(_is_int(self.max_new_tokens) and self.max_new_tokens >= 0, "max_new_tokens", "an integer >= 0",
              self.max_new_tokens)
        check(_is_int(self.num_return_sequences) and self.num_return_sequences >= 1, "num_return_sequences",
              "an integer >= 1", self.num_return_sequences)
        check(self.seed is None or _is_int(self.seed), "seed", "an integer or None", self.seed)
        eos = self.eos_token_id
        check(eos is None or eos == MODEL_EOS or (_is_int(eos) and eos >= 0), "eos_token_id",
              f"a token id >= 0, None (never stop at one) or {MODEL_EOS!r} (the model config's)", eos)
        stop = self.stop_strings if self.stop_strings is not None else ()
        stop = (stop,) if isinstance(stop, str) else tuple(stop) if isinstance(stop, Iterable) else None
        check(stop is not None and all(isinstance(s, str) and s for s in stop), "stop_strings",
              "a list of non-empty strings", self.stop_strings)
        check(self.watermark is None or isinstance(self.watermark, Watermark), "watermark",
              "a gpt2.sampling.Watermark or None", type(self.watermark).__name__)  # the type: never the key
        object.__setattr__(self, "top_k", k or None)
        object.__setattr__(self, "top_p", p if p is not None and p < 1 else None)
        object.__setattr__(self, "stop_strings", tuple(stop))

    @property
    def greedy(self) -> bool:
        """Each token is the argmax (no random number is drawn)."""
        return not self.do_sample or self.temperature == 0

    @property
    def sampler(self) -> tuple[float, int | None, float | None]:
        """What picks each token, as (temperature, top_k, top_p): rows that share it are sampled together."""
        return (0.0, None, None) if self.greedy else (self.temperature, self.top_k, self.top_p)

    def for_model(self, model_config: Any) -> GenerationConfig:
        """This config as a row is seeded with: the model's EOS token where it says 'model', and a seed
        drawn from torch's generator where it has none."""
        eos = model_config.eos_token_id if self.eos_token_id == MODEL_EOS else self.eos_token_id
        seed = int(torch.randint(0, 2**62, ()).item()) if self.seed is None else self.seed
        return replace(self, eos_token_id=eos, seed=seed)


SamplingOptions = GenerationConfig  # the name of its first three fields' type, before it held everything


def with_options(config: GenerationConfig | None, options: Mapping[str, Any]) -> GenerationConfig:
    """`config` (default: GenerationConfig()) with the fields `options` names replaced; the old keyword
    names num_samples and stop are accepted for num_return_sequences and stop_strings."""
    changes = {_OLD_NAMES.get(name, name): value for name, value in options.items()}
    known = {f.name for f in fields(GenerationConfig)}
    unknown = sorted(set(changes) - known)
    if unknown:
        raise TypeError(f"unknown generation options {unknown}; GenerationConfig's fields are {sorted(known)}")
    return replace(config or GenerationConfig(), **changes)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check(ok: bool, name: str, expected: str, value: Any) -> None:
    """Raise a SamplingError naming the option, what it must be and what it was, unless `ok`."""
    if not ok:
        raise SamplingError(f"{name} must be {expected}; got {value!r}")

