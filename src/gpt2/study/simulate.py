"""Simulated raters, for tests and demos: they take the whole real path (invitation, the HTTP API the page
uses, the store, the report) with answers drawn from a stated noise model. Every rater they create is
flagged simulated in the database, so exports and reports say SIMULATED; and they refuse a database that
holds real raters, so simulated answers never mix with people's.

The noise model (`NoiseModel`, defaults chosen to echo the published figures, not fitted to anything):
- credibility = clip(round(mean(source) + b_rater + e), min, max), b_rater ~ N(0, rater_sd) once per rater,
  e ~ N(0, answer_sd) per answer; mean(source) is `real_mean` for real sources, `machine_mean` for machine
  ones, unless `source_means` names the source.
- person or machine: evidence v = +d (machine text) or -d (real text) + N(0, 1); "machine" when v > 0, so
  accuracy is Phi(d): d = `plain_d` (0.10: 54%, GLTR's no-colours figure) without colours and `gltr_d`
  (0.58: 72%, GLTR's with-colours figure) in the GLTR arm; confidence = clip(1 + floor(2 |v|), 1, 5).
- attention: a repeated text gets the first answer's origin and its credibility +- N(0, 0.5); a garbled
  text gets credibility 1 + floor(|N(0, 1)|), "machine". A share `careless` of raters answers every
  question uniformly at random instead (the attention checks catch most of them).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from gpt2.study.app import create_app
from gpt2.study.invite import Invitation, invite
from gpt2.study.spec import Item, Study
from gpt2.study.store import Store, StoreError


@dataclass(frozen=True)
class NoiseModel:
    real_mean: float = 7.0
    machine_mean: float = 6.3
    source_means: dict[str, float] = field(default_factory=dict)
    rater_sd: float = 0.8
    answer_sd: float = 1.5
    plain_d: float = 0.10
    gltr_d: float = 0.58
    careless: float = 0.1


class SimulatedRater:
    def __init__(self, study: Study, invitation: Invitation, noise: NoiseModel, seed: int) -> None:
        self.study, self.invitation, self.noise = study, invitation, noise
        self.rng = random.Random(f"{seed}/simulated-rater/{invitation.rater}")
        self.bias = self.rng.gauss(0, noise.rater_sd)
        self.careless = self.rng.random() < noise.careless
        self.seen: dict[str, dict[str, Any]] = {}  # text -> the answer given: a repeat is recognised

    def answer(self, item_id: str) -> dict[str, Any]:
        """The body this rater POSTs for an item; what it 'perceives' (the item's source) comes from the
        study file, as a simulated reader's stand-in for reading the text."""
        item = self.study.items[item_id]
        q = self.study.questions
        cred_q = q["credibility"]
        if self.careless:
            body = {"credibility": self.rng.randint(cred_q["min"], cred_q["max"]),
                    "origin": self.rng.choice(["person", "machine"]), "confidence": self.rng.randint(1, 5)}
        elif item.text in self.seen:
            first = self.seen[item.text]
            body = {**first, "credibility": self._clip(first["credibility"] + self.rng.gauss(0, 0.5), cred_q)}
        elif item.check == "garbled":
            body = {"credibility": self._clip(1 + math.floor(abs(self.rng.gauss(0, 1))), cred_q),
                    "origin": "machine", "confidence": 4}
        else:
            body = {"credibility": self._clip(self._mean(item) + self.bias + self.rng.gauss(0, self.noise.answer_sd),
                                              cred_q), **self._judge(item)}
        self.seen.setdefault(item.text, body)
        return self._fit(body, item_id, q)

    def _mean(self, item: Item) -> float:
        n = self.noise
        return n.source_means.get(item.source, n.machine_mean if item.machine else n.real_mean)

    def _judge(self, item: Item) -> dict[str, Any]:
        d = self.noise.gltr_d if self.invitation.arm == "gltr" else self.noise.plain_d
        evidence = (d if item.machine else -d) + self.rng.gauss(0, 1)
        return {"origin": "machine" if evidence > 0 else "person",
                "confidence": max(1, min(5, 1 + math.floor(2 * abs(evidence))))}

    @staticmethod
    def _clip(value: float, q: dict[str, Any]) -> int:
        return int(max(q["min"], min(q["max"], round(value))))

    @staticmethod
    def _fit(body: dict[str, Any], item_id: str, q: dict[str, Any]) -> dict[str, Any]:
        """The body with only the questions this study asks, confidence mapped onto its scale."""
        out = {"item": item_id, "credibility": body["credibility"], "seconds": 10.0}
        origin = q.get("origin")
        if origin is not None:
            out["origin"] = body["origin"]
            if (conf := origin.get("confidence")) is not None:
                out["confidence"] = max(conf["min"], min(conf["max"], body["confidence"]))
        return out


def call(url: str, token: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """(status, JSON) of a GET (or, with `body`, a POST) to the study API with the rater's token."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                     headers={"Authorization": f"Bearer {token}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def run_rater(base_url: str, rater: SimulatedRater) -> int:
    """Answer every item the server hands this rater, one at a time as the page does; returns the count."""
    token, answered = rater.invitation.token, 0
    while True:
        status, state = call(f"{base_url}/api/state", token)
        if status != 200:
            raise StoreError(f"simulated rater {rater.invitation.rater}: GET /api/state answered {status}: {state}")
        if state["item"] is None:
            return answered
        status, reply = call(f"{base_url}/api/answers", token, rater.answer(state["item"]["id"]))
        if status not in (200, 201):
            raise StoreError(f"simulated rater {rater.invitation.rater}: POST /api/answers answered {status}: "
                             f"{reply}")
        answered += 1


@contextmanager
def serving(app, host: str = "127.0.0.1") -> Iterator[str]:
    """The app under uvicorn on a free loopback port, in a thread; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise StoreError("the study server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def simulate(study: Study, store: Store, n: int, noise: NoiseModel | None = None, seed: int = 0,
             workers: int = 8) -> list[Invitation]:
    """Invite `n` simulated raters and have them answer everything over HTTP, `workers` at a time."""
    if any(not r.simulated for r in store.raters()):
        raise StoreError(f"{store.path}: holds real raters; simulated ones go in a database of their own "
                         "(--db another.sqlite)")
    noise = noise or NoiseModel()
    with serving(create_app(study, store)) as url:
        invitations = invite(study, store, n, url, simulated=True)
        raters = [SimulatedRater(study, inv, noise, seed) for inv in invitations]
        with ThreadPoolExecutor(max_workers=max(1, min(workers, n))) as pool:
            list(pool.map(lambda r: run_rater(url, r), raters))
    return invitations
