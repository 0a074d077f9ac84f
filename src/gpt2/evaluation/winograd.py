"""The Winograd Schema Challenge, WSC273 (the first 273 schemas of `WSCollection.xml`).

Each schema is a sentence `txt1 <pron> txt2` and two candidate referents. As in the GPT-2 paper (Sec. 3.4,
following Trinh & Le, 2018) each candidate is substituted for the pronoun and scored two ways:

`partial` (the paper's better one, the primary metric): log p(txt2 | <|endoftext|> txt1 candidate),
    i.e. only the words after the substitution, given the prefix that contains it;
`full`: log p(txt1 candidate txt2 | <|endoftext|>), the whole sentence.

The candidate with the higher log-probability is the prediction. Substitution follows the usual
conventions (as in lm-evaluation-harness's wsc273): a possessive pronoun (his, her, their, its, my, our,
your; every "her" in WSC273 is possessive) becomes "candidate's"; a candidate starting with "The"/"A"/"An"
is lower-cased mid-sentence and capitalised where the pronoun was.
"""

from __future__ import annotations

import os
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from gpt2.errors import DataError
from gpt2.evaluation.result import TaskResult, read_bytes
from gpt2.files import file_sha256
from gpt2.scoring import best_candidates, score_continuations, total_nll

WSC273_SIZE = 273
DESCRIPTION = "the Winograd Schema collection XML (WSCollection.xml)"
_POSSESSIVE = {"his", "her", "their", "its", "my", "our", "your"}
_ARTICLES = {"The", "A", "An"}


@dataclass
class WinogradSchema:
    txt1: str  # text before the pronoun (may be empty)
    pronoun: str
    txt2: str  # text after the pronoun
    candidates: list[str]
    label: int  # index into candidates of the correct referent
    source: str = ""

    @property
    def sentence(self) -> str:
        return _join(self.txt1, self.pronoun, self.txt2)

    def substitute(self, candidate: str) -> tuple[str, str]:
        """(prefix ending with the substituted candidate, the rest of the sentence with its leading space)."""
        text = candidate
        if self.pronoun.lower() in _POSSESSIVE and not text.endswith("'s"):
            text += "'s"
        first, _, rest = text.partition(" ")
        if self.pronoun[:1].isupper():
            text = text[:1].upper() + text[1:]
        elif first in _ARTICLES:
            text = first.lower() + (" " + rest if rest else "")
        prefix = _join(self.txt1, text, "")
        return prefix, self.txt2 if self.txt2[:1] in tuple(",.;:!?'") else " " + self.txt2


def _clean(s: str | None) -> str:
    return " ".join((s or "").split())


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


def _field(schema: ET.Element, path: str, where: str) -> str:
    node = schema.find(path)
    if node is None:
        raise DataError(f"{where}: missing <{path.replace('/', '><')}>; expected {DESCRIPTION}")
    return _clean("".join(node.itertext()))


def read_wsc(path: str | os.PathLike, limit: int | None = WSC273_SIZE) -> list[WinogradSchema]:
    """Parse `WSCollection.xml` (ISO-8859-1, as published); the first `limit` schemas (WSC273 by default)."""
    path = Path(path)
    data = read_bytes(path, DESCRIPTION)
    try:
        root = ET.fromstring(data)  # honours the file's own encoding declaration
    except ET.ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else "?"
        raise DataError(f"{path}: line {line}: not well-formed XML ({e}); expected {DESCRIPTION}") from None
    schemas = root.findall("schema")
    if not schemas:
        raise DataError(f"{path}: no <schema> elements; expected {DESCRIPTION}")
    lines = _schema_lines(data)
    out = []
    for i, schema in enumerate(schemas[:limit] if limit else schemas):
        where = f"{path}: line {lines[i]} (schema {i + 1})" if i < len(lines) else f"{path}: schema {i + 1}"
        candidates = [_clean("".join(a.itertext())) for a in schema.findall("answers/answer")]
        if len(candidates) < 2 or not all(candidates):
            raise DataError(f"{where}: expected at least two non-empty <answer> elements, got {candidates}")
        correct = _field(schema, "correctAnswer", where).rstrip(".").strip()
        if len(correct) != 1 or not "A" <= correct.upper() < chr(ord("A") + len(candidates)):
            raise DataError(f"{where}: <correctAnswer> is {correct!r}; expected a letter A-"
                            f"{chr(ord('A') + len(candidates) - 1)}")
        pronoun = _field(schema, "text/pron", where)
        if not pronoun:
            raise DataError(f"{where}: empty <pron>; expected the ambiguous pronoun")
        txt2 = _field(schema, "text/txt2", where)
        if not txt2:
            raise DataError(f"{where}: empty <txt2>; partial scoring needs the text after the pronoun")
        out.append(WinogradSchema(
            txt1=_field(schema, "text/txt1", where),
            pronoun=pronoun,
            txt2=txt2,
            candidates=candidates,
            label=ord(correct.upper()) - ord("A"),
            source=_clean(schema.findtext("source")),
        ))
    return out


def _schema_lines(data: bytes) -> list[int]:
    """1-based line number of each <schema> tag, for error messages."""
    lines, pos = [], 0
    while (pos := data.find(b"<schema>", pos)) >= 0:
        lines.append(data.count(b"\n", 0, pos) + 1)
        pos += 1
    return lines


def evaluate_wsc(
    model,
    tokenizer,
    path: str | os.PathLike,
    *,
    limit: int | None = None,
    batch_size: int = 8,
    progress: bool = False,
) -> TaskResult:
    """WSC273 accuracy with partial (primary) and full scoring; `limit` takes the first N of the 273."""
    start = time.perf_counter()
    schemas = read_wsc(path, min(limit, WSC273_SIZE) if limit else WSC273_SIZE)
    eot = tokenizer.eot_token_id
    partial_requests, full_requests = [], []
    for schema in schemas:
        for candidate in schema.candidates:
            prefix, rest = schema.substitute(candidate)
            partial_requests.append(([eot, *tokenizer.encode(prefix)], tokenizer.encode(rest)))
            full_requests.append(([eot], tokenizer.encode(prefix + rest)))
    partial = score_continuations(model, partial_requests, batch_size, progress, desc="wsc partial")
    full = score_continuations(model, full_requests, batch_size, progress, desc="wsc full")

    counts = [len(schema.candidates) for schema in schemas]
    metrics = {}
    for name, scores in (("accuracy_partial", partial), ("accuracy_full", full)):
        picks = best_candidates(scores, counts)
        metrics[name] = sum(p == schema.label for p, schema in zip(picks, schemas, strict=True)) / len(schemas)
    nll = total_nll(partial)
    return TaskResult(
        task="wsc",
        metrics=metrics,
        n_examples=len(schemas),
        nll=nll.nll,
        tokens=nll.tokens,
        runtime_s=time.perf_counter() - start,
        data_file=str(path),
        data_sha256=file_sha256(path),
        details={"primary_metric": "accuracy_partial", "limit": limit},
    )
