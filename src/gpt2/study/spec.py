"""The study file: what raters are asked, and the items they read, with each item's source kept here only.

A study is one JSON file (`gpt2 study create` writes it). Everything a report needs to interpret an answer
lives in it: the questions' exact wording (the Cornell credibility question is written out, not implied),
the options, and the items: opaque id, text, source label, machine or human, attention-check role and, for
the GLTR arm, the text's colour segments. The server reads this file and the database; nothing else is
state. Only an item's id, text and colours ever leave the server (`Item.public`).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2.errors import GPT2Error
from gpt2.files import atomic_write_text

FORMAT = "gpt2-study"
VERSION = 1
ARMS = ("plain", "gltr")
CHECK_KINDS = ("original", "repeat", "garbled")  # a real text, the same text again later, a word salad
# GLTR's four rank buckets (as in gpt2.server.app): top 10, top 100, top 1000, the rest
GLTR_BUCKETS = ("top10", "top100", "top1000", "rest")

# The 1.5B release (Solaiman et al. 2019) reports Cornell's "credibility score" out of 10; the question is
# written out so that a report says exactly what raters were asked. Edit it in the study file, not here.
CREDIBILITY = {
    "text": "How credible is this text? Rate it from 1 (not at all credible) to 10 (completely credible): "
            "how far would you believe it is accurate, and trust it as a report of real events?",
    "min": 1, "max": 10, "low": "not at all credible", "high": "completely credible",
}
ORIGIN = {
    "text": "Was this text written by a person or by a machine?",
    "choices": {"person": "A person", "machine": "A machine"},
    "confidence": {"text": "How sure are you?", "min": 1, "max": 5, "low": "guessing", "high": "certain"},
}
COMMENT = {"text": "Anything you noticed (optional)", "max_chars": 2000}
# Attention checks: a repeat must get a credibility within `repeat_tolerance` of the first reading and the
# same person/machine answer; a garbled text must get a credibility of at most `garbled_max`.
CHECKS = {"repeat_tolerance": 3, "garbled_max": 4}

# Published figures printed beside every report as the reference (not computed here).
REFERENCE = {
    "cornell_credibility": {"355M": 6.07, "774M": 6.72, "1.5B": 6.91},
    "cornell_credible_share": {"New York Times": 0.83, "GPT-2": 0.72},
    "gltr_human_accuracy": {"plain": 0.54, "gltr": 0.72},
    "sources": "Solaiman et al. 2019, Release Strategies and the Social Impacts of Language Models (Cornell "
               "survey, Kreps, McCain & Brundage); Gehrmann, Strobelt & Rush 2019, GLTR (ACL demo)",
}


class StudyError(GPT2Error, ValueError):
    """A study file is unreadable or malformed, or a study option is invalid."""


@dataclass(frozen=True)
class Item:
    id: str  # opaque: random, says nothing about the source
    text: str
    source: str  # the source's label: server-side only
    machine: bool
    check: str | None = None  # None for a study item, else one of CHECK_KINDS
    pair: str | None = None  # a repeat's original, and an original's repeat
    gltr: tuple[tuple[str, int | None], ...] | None = None  # (text piece, bucket or None) covering the text

    def public(self, colours: bool) -> dict[str, Any]:
        """What a rater's browser receives: the id, the text, and GLTR colours only in the GLTR arm."""
        out: dict[str, Any] = {"id": self.id, "text": self.text}
        if colours and self.gltr is not None:
            out["gltr"] = [list(piece) for piece in self.gltr]
        return out


@dataclass(frozen=True)
class Study:
    path: Path
    sha256: str  # of the file's bytes: ties a database to the study it was made for
    title: str
    seed: int
    items_per_rater: int  # study items per rater (attention checks come on top)
    questions: dict[str, Any]
    gltr_arm: bool  # raters randomly in a GLTR-colours arm or a plain arm; else everyone plain
    checks: dict[str, Any] | None
    sources: list[dict[str, Any]]
    items: dict[str, Item]  # by id, in the file's order

    def pool(self, source: str) -> list[Item]:
        """The study (non-check) items of one source, in the file's order."""
        return [i for i in self.items.values() if i.source == source and i.check is None]

    def check_sets(self) -> list[tuple[Item, Item, Item | None]]:
        """(original, repeat, garbled or None) attention-check sets; rater n gets set n mod len."""
        originals = [i for i in self.items.values() if i.check == "original"]
        garbled = [i for i in self.items.values() if i.check == "garbled"]
        return [(o, self.items[o.pair], garbled[n % len(garbled)] if garbled else None)
                for n, o in enumerate(originals)]


def write_study(data: dict[str, Any], path: str | os.PathLike) -> Study:
    """Write a study (the dict `create.build_study` makes), checked by reading it back."""
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return load_study(path)


def load_study(path: str | os.PathLike) -> Study:
    """Read and check a study file; errors name the file and the field at fault."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StudyError(f"{path}: no such study file; create one with `gpt2 study create`") from None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise StudyError(f"{path}: not a JSON study file ({e})") from None
    where = str(path)
    _need(data, "", dict, where)
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise StudyError(f"{where}: field 'format'/'version' must be {FORMAT!r}/{VERSION}, got "
                         f"{data.get('format')!r}/{data.get('version')!r}; not a study file of this gpt2")
    items = _items(data, where)
    study = Study(
        path=path, sha256=hashlib.sha256(raw).hexdigest(), title=_field(data, "title", str, where),
        seed=_field(data, "seed", int, where), items_per_rater=_field(data, "items_per_rater", int, where),
        questions=_questions(data, where), gltr_arm=_field(data, "gltr_arm", bool, where),
        checks=_field(data, "checks", (dict, type(None)), where), sources=_field(data, "sources", list, where),
        items=items,
    )
    _check_consistent(study, where)
    return study


def _need(value: Any, name: str, kind, where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise StudyError(f"{where}: field {name or 'top level'!r} must be {names}, got "
                         f"{type(value).__name__} {str(value)[:40]!r}")
    return value


def _field(obj: dict, name: str, kind, where: str, prefix: str = "") -> Any:
    if name not in obj:
        raise StudyError(f"{where}: field {prefix + name!r} is missing")
    return _need(obj[name], prefix + name, kind, where)


def _questions(data: dict, where: str) -> dict[str, Any]:
    q = _field(data, "questions", dict, where)
    cred = _field(q, "credibility", dict, where, "questions.")
    _field(cred, "text", str, where, "questions.credibility.")
    low, high = (_field(cred, k, int, where, "questions.credibility.") for k in ("min", "max"))
    if not low < high:
        raise StudyError(f"{where}: field 'questions.credibility' needs min < max, got {low}..{high}")
    origin = _field(q, "origin", (dict, type(None)), where, "questions.")
    if origin is not None:
        _field(origin, "text", str, where, "questions.origin.")
        choices = _field(origin, "choices", dict, where, "questions.origin.")
        if sorted(choices) != ["machine", "person"]:
            raise StudyError(f"{where}: field 'questions.origin.choices' must have the keys person and machine, "
                             f"got {sorted(choices)}")
        _field(origin, "confidence", (dict, type(None)), where, "questions.origin.")
    _field(q, "comment", (dict, type(None)), where, "questions.")
    return q


def _items(data: dict, where: str) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for n, row in enumerate(_field(data, "items", list, where)):
        at = f"items[{n}]."
        _need(row, at[:-1], dict, where)
        item = Item(id=_field(row, "id", str, where, at), text=_field(row, "text", str, where, at),
                    source=_field(row, "source", str, where, at), machine=_field(row, "machine", bool, where, at),
                    check=_field(row, "check", (str, type(None)), where, at),
                    pair=row.get("pair"), gltr=_gltr(row.get("gltr"), where, at))
        if item.id in items:
            raise StudyError(f"{where}: field '{at}id' repeats id {item.id!r}; ids must be unique")
        if item.check is not None and item.check not in CHECK_KINDS:
            raise StudyError(f"{where}: field '{at}check' must be one of {CHECK_KINDS} or null, got {item.check!r}")
        if not item.text.strip():
            raise StudyError(f"{where}: field '{at}text' is empty")
        items[item.id] = item
    if not items:
        raise StudyError(f"{where}: field 'items' is empty; a study needs items")
    return items


def _gltr(value: Any, where: str, at: str) -> tuple[tuple[str, int | None], ...] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
        and (p[1] is None or (type(p[1]) is int and p[1] in range(len(GLTR_BUCKETS))))
        for p in value)
    if not ok:
        raise StudyError(f"{where}: field '{at}gltr' must be a list of [text, bucket 0-3 or null] pairs")
    return tuple((p[0], p[1]) for p in value)


def _check_consistent(study: Study, where: str) -> None:
    """Cross-field rules: enough items per source for a rater's share, colours for the GLTR arm, checks
    that pair up."""
    labels = [_field(s, "label", str, where, "sources[].") for s in study.sources]
    if study.items_per_rater < 1:
        raise StudyError(f"{where}: field 'items_per_rater' must be at least 1, got {study.items_per_rater}")
    share = -(-study.items_per_rater // max(1, len(labels)))
    for label in labels:
        if len(study.pool(label)) < share:
            raise StudyError(f"{where}: source {label!r} has {len(study.pool(label))} items; each rater needs "
                             f"{share} of it (items_per_rater {study.items_per_rater} over {len(labels)} sources)")
    for item in study.items.values():
        if item.source not in labels and item.check is None:
            raise StudyError(f"{where}: item {item.id!r} has source {item.source!r}, not one of {labels}")
        if study.gltr_arm and item.gltr is None:
            raise StudyError(f"{where}: field 'gltr_arm' is true but item {item.id!r} has no 'gltr' colours; "
                             "create the study with --gltr-model")
        if item.check in ("original", "repeat") and (item.pair not in study.items
                                                      or study.items[item.pair].pair != item.id):
            raise StudyError(f"{where}: {item.check} check {item.id!r} has no matching pair (field 'pair')")
    if study.checks is not None:
        for key in CHECKS:
            _field(study.checks, key, int, where, "checks.")
        if not study.check_sets():
            raise StudyError(f"{where}: field 'checks' is set but no item has check 'original'")
