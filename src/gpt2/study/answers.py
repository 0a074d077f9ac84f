"""One rater's answer to one item, checked against the study's questions: errors name the field, the value
and what was expected, and the server answers them with a 422 that says so."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

MAX_SECONDS = 24 * 3600.0


class AnswerError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Answer:
    item: str
    credibility: int
    origin: str | None = None  # "person" or "machine"
    confidence: int | None = None
    comment: str | None = None
    seconds: float | None = None  # time on the item, as the page measured it

    def same_as(self, stored: dict[str, Any]) -> bool:
        """Whether a stored answer says the same (a retried submission); the time on the item may differ."""
        return all(stored[f] == getattr(self, f) for f in ("credibility", "origin", "confidence", "comment"))


def parse_answer(body: Any, questions: dict[str, Any]) -> Answer:
    """An Answer from a submitted JSON body, with every field the study asks for present and in range."""
    if not isinstance(body, dict):
        raise AnswerError("body", f"expected a JSON object, got {type(body).__name__}")
    known = {"item", "credibility", "origin", "confidence", "comment", "seconds"}
    if extra := sorted(set(body) - known):
        raise AnswerError(extra[0], f"unknown field; expected only {', '.join(sorted(known))}")
    item = body.get("item")
    if not isinstance(item, str) or not item:
        raise AnswerError("item", f"expected an item id (a string), got {item!r}")
    cred = questions["credibility"]
    answer = {"item": item, "credibility": _scale(body, "credibility", cred["min"], cred["max"])}
    origin = questions.get("origin")
    if origin is not None:
        value = body.get("origin")
        if value not in origin["choices"]:
            raise AnswerError("origin", f"expected one of {', '.join(origin['choices'])}, got {value!r}")
        answer["origin"] = value
        if (conf := origin.get("confidence")) is not None:
            answer["confidence"] = _scale(body, "confidence", conf["min"], conf["max"])
    for name in ("origin", "confidence"):
        if name not in answer and body.get(name) is not None:
            raise AnswerError(name, "this study does not ask it; leave it out")
    answer["comment"] = _comment(body, questions.get("comment"))
    answer["seconds"] = _seconds(body.get("seconds"))
    return Answer(**answer)


def _scale(body: dict, name: str, low: int, high: int) -> int:
    value = body.get(name)
    if type(value) is not int or not low <= value <= high:
        raise AnswerError(name, f"expected a whole number from {low} to {high}, got {value!r}")
    return value


def _comment(body: dict, question: dict | None) -> str | None:
    value = body.get("comment")
    if value is None or value == "":
        return None
    if question is None:
        raise AnswerError("comment", "this study asks for no comment; leave it out")
    if not isinstance(value, str) or len(value) > question["max_chars"]:
        raise AnswerError("comment", f"expected text of at most {question['max_chars']} characters, got "
                          f"{type(value).__name__} of length {len(value) if isinstance(value, str) else '-'}")
    return value


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise AnswerError("seconds", f"expected a number of seconds from 0 to {MAX_SECONDS:.0f}, got {value!r}")
    return float(value)
