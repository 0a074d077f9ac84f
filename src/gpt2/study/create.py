"""Making a study from texts the project already has: output-dataset jsonl files (`gpt2 outputs`) as the
machine sources, real documents (jsonl with a "text" field, text files, directories) as the human ones.

Every text, machine or human, is cut the same way (at most `max_words` words, then back to a sentence end
when one is in the second half), so length and ending are not a cue to the source. Items get random opaque
ids and the file lists them shuffled; attention checks are built from real texts not used as study items.
"""

from __future__ import annotations

import random
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2.data.documents import expand_inputs, read_documents
from gpt2.errors import DataError
from gpt2.output_dataset.jsonl import read_samples
from gpt2.study.spec import CHECKS, COMMENT, CREDIBILITY, FORMAT, ORIGIN, VERSION, StudyError

WORD = re.compile(r"\S+")
SENTENCE_END = re.compile(r"[.!?][\"')\]]?(?=\s|$)")
CHECK_SETS = 4  # distinct attention-check sets, so neighbouring raters do not all see the same ones


@dataclass(frozen=True)
class Source:
    label: str  # e.g. "774M/k40" or "real"; stored in the study file, never sent to a rater
    paths: tuple[str, ...]
    machine: bool


def parse_source(spec: str, machine: bool) -> Source:
    """LABEL=PATH[,PATH...] (the form of --machine and --real)."""
    label, sep, paths = spec.partition("=")
    if not sep or not label.strip() or not paths:
        kind = "--machine" if machine else "--real"
        raise StudyError(f"{kind} {spec!r}: expected LABEL=PATH[,PATH...], e.g. {kind} "
                         + ("774M/k40=outputs/774M-k40.test.jsonl" if machine else "real=webtext.test.jsonl"))
    return Source(label.strip(), tuple(p for p in paths.split(",") if p), machine)


def read_texts(source: Source) -> list[str]:
    """The texts of a source: output-dataset rows (schema checked) for a machine source; for a real one,
    every document of its files (jsonl "text" fields, whole text files)."""
    if source.machine:
        return [row["text"] for path in source.paths for row in read_samples(path)]
    return [doc for path in expand_inputs(source.paths) for doc in read_documents(Path(path))]


def cut(text: str, max_words: int) -> str:
    """At most `max_words` words of `text`, ended at the last sentence end in the second half if any."""
    words = list(WORD.finditer(text))
    if len(words) <= max_words:
        return text.strip()
    piece = text[: words[max_words - 1].end()]
    ends = [m.end() for m in SENTENCE_END.finditer(piece) if m.end() >= len(piece) // 2]
    return piece[: ends[-1]].strip() if ends else piece.strip()


def garble(text: str, rng: random.Random) -> str:
    """The words of `text` in random order: well-formed words, no sense (the garbled attention check)."""
    words = WORD.findall(text)
    rng.shuffle(words)
    return " ".join(words)


def questions(origin: bool = True, confidence: bool = True, comment: bool = False) -> dict[str, Any]:
    """The questions as the study file spells them out (see spec.CREDIBILITY etc. for the wording)."""
    asked = {"credibility": dict(CREDIBILITY), "origin": None, "comment": dict(COMMENT) if comment else None}
    if origin:
        asked["origin"] = {**ORIGIN, "confidence": dict(ORIGIN["confidence"]) if confidence else None}
    return asked


def build_study(sources: Sequence[Source], *, items_per_rater: int, per_source: int = 100,
                max_words: int = 200, min_words: int = 40, origin: bool = True, confidence: bool = True,
                comment: bool = False, gltr_arm: bool = False, checks: bool = True, seed: int = 0,
                title: str = "Reading study",
                colour: Callable[[str], list[list[Any]]] | None = None) -> dict[str, Any]:
    """A study file's contents. `colour(text)` gives GLTR segments ([piece, bucket]) for every item; it is
    required with `gltr_arm` (see gpt2.study.colours)."""
    labels = [s.label for s in sources]
    if not sources or len(set(labels)) != len(labels):
        raise StudyError(f"sources must be given and their labels distinct, got {labels}")
    if gltr_arm and colour is None:
        raise StudyError("the GLTR arm needs a model to colour the texts (--gltr-model)")
    rng = random.Random(seed)
    items, spare, real = [], [], []
    for source in sources:
        texts = _usable(source, max_words, min_words, rng)
        items += [_item(t, source.label, source.machine) for t in texts[:per_source]]
        if not source.machine:
            real += texts[:per_source]
            spare += texts[per_source:]
    if checks:  # from real texts no rater reads as a study item, when the sources have more than per_source
        items += _check_items(spare or real, rng, labels)
    if colour is not None:
        for item in items:
            item["gltr"] = colour(item["text"])
    rng.shuffle(items)
    return {
        "format": FORMAT, "version": VERSION, "title": title, "seed": seed, "items_per_rater": items_per_rater,
        "questions": questions(origin, confidence, comment), "gltr_arm": gltr_arm,
        "checks": dict(CHECKS) if checks else None,
        "sources": [{"label": s.label, "machine": s.machine, "paths": list(s.paths),
                     "items": sum(1 for i in items if i["source"] == s.label and i["check"] is None)}
                    for s in sources],
        "cut": {"max_words": max_words, "min_words": min_words, "per_source": per_source},
        "items": items,
    }


def _usable(source: Source, max_words: int, min_words: int, rng: random.Random) -> list[str]:
    """The source's texts cut to `max_words`, those of at least `min_words` words, in a seeded random order."""
    texts = [cut(t, max_words) for t in read_texts(source)]
    texts = [t for t in texts if len(WORD.findall(t)) >= min_words]
    if not texts:
        raise DataError(f"source {source.label!r} ({', '.join(source.paths)}): no text of at least {min_words} "
                        "words; give longer texts or a smaller --min-words")
    rng.shuffle(texts)
    return texts


def _item(text: str, source: str, machine: bool, check: str | None = None) -> dict[str, Any]:
    return {"id": secrets.token_urlsafe(9), "text": text, "source": source, "machine": machine, "check": check,
            "pair": None, "gltr": None}


def _check_items(real: list[str], rng: random.Random, labels: list[str]) -> list[dict[str, Any]]:
    """CHECK_SETS of (a real text, the same text as a second item, a garbled real text)."""
    if not real:
        raise StudyError(f"attention checks need a real source (--real); the sources are {labels} "
                         "(or pass --no-checks)")
    out = []
    for n in range(CHECK_SETS):
        original = _item(real[(2 * n) % len(real)], "check", False, "original")
        repeat = {**_item(original["text"], "check", False, "repeat"), "pair": original["id"]}
        original["pair"] = repeat["id"]
        out += [original, repeat, _item(garble(real[(2 * n + 1) % len(real)], rng), "check", False, "garbled")]
    return out
