"""The shifts `gpt2 detect robustness` tests detectors under, each a registered, named class (`ATTACKS`).

Two kinds:

- text attacks (`TextAttack`): a function of a text, a random stream and the tokenizer, applied to the
  machine texts (what a misuser edits) or, for length buckets, to both sides. Word deletion and swap at a
  rate, sentence shuffle, truncation to N tokens, homoglyphs, whitespace, paraphrase by a second model.
- generation shifts (`GenerationShift`): which machine texts the detectors are tested on, not an edit:
  the generator fine-tuned on a narrow corpus, and the sampler (trained on one, tested on another).

Every text attack is deterministic: text i of a call with seed s draws from a `random.Random` seeded by
sha256(s, the attack's label, i), so it does not depend on the other texts or on the order attacks run in.
A new attack is one small class with a `name`, its parameters and `edit`.
"""

from __future__ import annotations

import hashlib
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from gpt2.detection.detector import DetectorError
from gpt2.inference import load_for_inference
from gpt2.sampling import GenerationConfig, generate

ATTACKS: dict[str, type[Attack]] = {}
MACHINE, BOTH = ("machine",), ("human", "machine")


class Attack(ABC):
    """A named shift; `label` names one setting of it (e.g. `delete-10%`)."""

    name: ClassVar[str]
    kind: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            ATTACKS[cls.name] = cls

    @property
    def label(self) -> str:
        return self.name


class TextAttack(Attack):
    kind = "edit"
    sides: ClassVar[tuple[str, ...]] = MACHINE

    def apply(self, texts: Sequence[str], seed: int, tokenizer: Any = None) -> list[str]:
        """Each text edited with its own stream (seed, label, index)."""
        out = []
        for i, text in enumerate(texts):
            digest = hashlib.sha256(f"{seed}/{self.label}/{i}".encode()).digest()
            out.append(self.edit(text, random.Random(int.from_bytes(digest[:8], "little")), tokenizer))
        return out

    @abstractmethod
    def edit(self, text: str, rng: random.Random, tokenizer: Any) -> str:
        """The edited text."""


def _pieces(text: str) -> tuple[str, list[str]]:
    """(leading whitespace, words each with its trailing whitespace)."""
    lead = text[: len(text) - len(text.lstrip())]
    return lead, re.findall(r"\S+\s*", text[len(lead):])


def _count(rate: float, n: int) -> int:
    return min(n, round(rate * n))


class WordDeletion(TextAttack):
    """Delete round(rate * words) words (and the whitespace after each), chosen at random."""

    name = "delete"

    def __init__(self, rate: float = 0.1) -> None:
        self.rate = rate

    @property
    def label(self) -> str:
        return f"delete-{self.rate:.0%}"

    def edit(self, text: str, rng: random.Random, tokenizer: Any) -> str:
        lead, words = _pieces(text)
        gone = set(rng.sample(range(len(words)), _count(self.rate, len(words))))
        return lead + "".join(w for i, w in enumerate(words) if i not in gone)


class WordSwap(TextAttack):
    """Swap round(rate * words) randomly chosen words with their right neighbours (whitespace stays)."""

    name = "swap"

    def __init__(self, rate: float = 0.1) -> None:
        self.rate = rate

    @property
    def label(self) -> str:
        return f"swap-{self.rate:.0%}"

    def edit(self, text: str, rng: random.Random, tokenizer: Any) -> str:
        lead, pieces = _pieces(text)
        words = [p.rstrip() for p in pieces]
        spaces = [p[len(w):] for p, w in zip(pieces, words, strict=True)]
        if len(words) >= 2:
            for i in rng.sample(range(len(words) - 1), _count(self.rate, len(words) - 1)):
                words[i], words[i + 1] = words[i + 1], words[i]
        return lead + "".join(w + s for w, s in zip(words, spaces, strict=True))


class SentenceShuffle(TextAttack):
    """The text's sentences (split after . ! ? or a line break) in a random order."""

    name = "shuffle"

    def edit(self, text: str, rng: random.Random, tokenizer: Any) -> str:
        sentences = [s for s in re.split(r"(?<=[.!?\n])\s+", text.strip()) if s]
        rng.shuffle(sentences)
        return " ".join(sentences)


class Truncation(TextAttack):
    """The first `tokens` tokens of the machine text only (a misuser posting an excerpt)."""

    name = "truncate"

    def __init__(self, tokens: int = 64) -> None:
        self.tokens = tokens

    @property
    def label(self) -> str:
        return f"truncate-{self.tokens}"

    def edit(self, text: str, rng: random.Random, tokenizer: Any) -> str:
        return tokenizer.decode(tokenizer.encode(text)[: self.tokens])


# Latin letters and Cyrillic / Greek letters drawn the same in most fonts
HOMOGLYPHS = {"a": "\u0430", "c": "\u0441", "e": "\u0435", "i": "\u0456", "j": "\u0458", "o": "\u043e",
              "p": "\u0440", "s": "\u0455", "x": "\u0445", "y": "\u0443", "A": "\u0391", "B": "\u0392",
              "E": "\u0395", "H": "\u0397", "K": "\u039a", "M": "\u039c", "O": "\u039f", "P": "\u03a1",
              "T": "\u03a4", "X": "\u03a7"}


class Homoglyph(TextAttack):
    """Replace a `rate` of the letters that have a look-alike by it (a -> Cyrillic а, ...)."""

    name = "homoglyph"

    def __init__(self, rate: float = 0.1) -> None:
        self.rate = rate

    @property
    def label(self) -> str:
        return f"homoglyph-{self.rate:.0%}"

    def edit(self, text: str, rng: random.Random, tokenizer: Any) -> str:
        chars = list(text)
        where = [i for i, ch in enumerate(chars) if ch in HOMOGLYPHS]
        for i in rng.sample(where, _count(self.rate, len(where))):
            chars[i] = HOMOGLYPHS[chars[i]]
        return "".join(chars)


class Whitespace(TextAttack):
    """Double a `rate` of the spaces and put a zero-width space into as many words: invisible when
    rendered, different tokens."""

    name = "whitespace"

    def __init__(self, rate: float = 0.2) -> None:
        self.rate = rate

    @property
    def label(self) -> str:
        return f"whitespace-{self.rate:.0%}"

    def edit(self, text: str, rng: random.Random, tokenizer: Any) -> str:
        chars = list(text)
        spaces = [i for i, ch in enumerate(chars) if ch == " "]
        for i in rng.sample(spaces, _count(self.rate, len(spaces))):
            chars[i] = "  "
        inner = [i for i in range(1, len(chars)) if chars[i - 1].isalpha() and chars[i].isalpha()]
        for i in rng.sample(inner, min(len(inner), _count(self.rate, len(spaces)))):
            chars[i] = "\u200b" + chars[i]
        return "".join(chars)


class Paraphrase(TextAttack):
    """Each sentence rewritten by a second model: `prompt` (with {sentence}) continued with nucleus
    sampling up to the sentence's length in tokens, ending at a line break. A GPT-2 fine-tuned on
    rewrite pairs follows the prompt; a base model mostly continues it, which is a regeneration attack."""

    name = "paraphrase"

    def __init__(self, model: str, prompt: str = "Original: {sentence}\nRewritten:", top_p: float = 0.9,
                 device: str = "auto") -> None:
        if not model:
            raise DetectorError("the paraphrase attack needs a second model: paraphrase(model=DIR)")
        self.model_path, self.prompt, self.top_p, self.device = str(model), prompt, top_p, device
        self._loaded: tuple[Any, Any] | None = None

    def edit(self, text: str, rng: random.Random, tokenizer: Any) -> str:
        if self._loaded is None:
            self._loaded = load_for_inference(self.model_path, self.device, "fp32")
        model, tok = self._loaded
        out = []
        for sentence in [s for s in re.split(r"(?<=[.!?\n])\s+", text.strip()) if s]:
            ids = tok.encode(self.prompt.format(sentence=sentence))
            room = model.config.n_positions - len(ids) - 1
            n = min(len(tok.encode(sentence)) + 4, room)
            if n < 1:
                out.append(sentence)
                continue
            config = GenerationConfig(top_p=self.top_p, max_new_tokens=n, seed=rng.randrange(2**62),
                                      stop_strings=("\n",), eos_token_id=None)
            (sample,) = generate(model, ids, config, tokenizer=tok)
            out.append(sample.text.strip() or sentence)
        return " ".join(out)


class LengthBucket(TextAttack):
    """Both sides cut to a random length in [low, high) tokens: detection as a function of length."""

    name = "length"
    kind = "length"
    sides = BOTH

    def __init__(self, low: int = 16, high: int = 32) -> None:
        self.low, self.high = low, high

    @property
    def label(self) -> str:
        return f"length-{self.low}-{self.high}"

    def edit(self, text: str, rng: random.Random, tokenizer: Any) -> str:
        return tokenizer.decode(tokenizer.encode(text)[: rng.randrange(self.low, self.high)])


class GenerationShift(Attack):
    """Not an edit: the machine test texts come from another generator or sampler."""


class FineTuned(GenerationShift):
    """The generator fine-tuned for `steps` steps on a narrow corpus; the human side is that corpus's
    held-out text. Detectors stay trained on the base model's samples."""

    name = "finetune"
    kind = "generator"

    def __init__(self, steps: int = 30) -> None:
        self.steps = steps

    @property
    def label(self) -> str:
        return f"fine-tuned generator ({self.steps} steps)"


class SamplerShift(GenerationShift):
    """Detectors trained on samples drawn with `train`, tested on samples drawn with `test` (the output
    dataset's names: pure, topk:K, topp:P)."""

    name = "sampler"
    kind = "sampler"

    def __init__(self, train: str = "topk:40", test: str = "topp:0.95") -> None:
        self.train, self.test = train, test

    @property
    def label(self) -> str:
        return f"sampler {self.train} -> {self.test}"


def default_attacks(paraphraser: str | None = None, tokens: int = 128) -> list[Attack]:
    """The issue's list: fine-tune, sampler shifts both ways, the edits, length buckets up to `tokens`."""
    attacks: list[Attack] = [FineTuned(), SamplerShift("topk:40", "topp:0.95"), SamplerShift("topk:40", "pure"),
                             SamplerShift("topp:0.95", "topk:40")]
    attacks += [cls(rate) for cls in (WordDeletion, WordSwap) for rate in (0.05, 0.1, 0.2)]
    attacks += [SentenceShuffle(), *[Truncation(n) for n in (64, 128) if n < tokens], Homoglyph(), Whitespace()]
    if paraphraser:
        attacks.append(Paraphrase(paraphraser))
    edges = [e for e in (16, 32, 64, 128, 256) if e < tokens] + [tokens]
    attacks += [LengthBucket(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return attacks


def make_attack(spec: str) -> Attack:
    """An attack from `name` or `name:value` (delete:0.2, truncate:64, sampler:topk:40->pure,
    length:16-32, finetune:30, paraphrase:DIR)."""
    name, _, value = spec.partition(":")
    if name not in ATTACKS:
        raise DetectorError(f"unknown attack {name!r}; choose one of {', '.join(ATTACKS)}")
    cls = ATTACKS[name]
    if not value:
        return cls()
    try:
        if name == "sampler":
            train, _, test = value.partition("->")
            return cls(train, test)
        if name == "length":
            low, _, high = value.partition("-")
            return cls(int(low), int(high))
        if name == "paraphrase":
            return cls(value)
        return cls(float(value) if name in ("delete", "swap", "homoglyph", "whitespace") else int(value))
    except (TypeError, ValueError):
        raise DetectorError(f"attack {spec!r}: cannot read {value!r} as its setting") from None
