"""Human studies (gpt2.study, `gpt2 study`): the study file, the store, the rater API and page, durability
under SIGKILL, concurrency, the CLI, and the report's statistics against independent computations."""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import free_port, serve_in_thread
from gpt2.cli import main
from gpt2.study import Store, StoreError, create_app, invite, load_study, write_study
from gpt2.study.answers import Answer
from gpt2.study.assign import arm, assignment, shares
from gpt2.study.create import build_study, cut, parse_source
from gpt2.study.report import build_report, write_report
from gpt2.study.simulate import call
from gpt2.study.stats import bootstrap_mean_ci, krippendorff_alpha, permutation_p, two_proportion_z
from gpt2.study.store import MIGRATIONS, SCHEMA_VERSION

# Distinctive labels, so "the label never reaches the browser" can be checked by searching for them.
LABELS = ("SRCLABEL-alpha/k40", "SRCLABEL-beta/p0.9", "SRCLABEL-real")
WORDS = ("the a model city river report council said people year new found data time water school "
         "minister court market storm players season music village doctors bridge").split()


def _text(rng: random.Random, sentences: int = 8) -> str:
    return " ".join(" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 12))).capitalize() + "."
                    for _ in range(sentences))


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """Two output-dataset files (`gpt2 outputs` rows) and one real jsonl file of 40 texts each."""
    root = tmp_path_factory.mktemp("sources")
    rng = random.Random(0)
    paths = {}
    for label, name in zip(LABELS, ("alpha.jsonl", "beta.jsonl", "webtext.jsonl"), strict=True):
        rows = [{"id": i, "ended": True, "length": 90, "text": _text(rng)} for i in range(40)]
        if name == "webtext.jsonl":
            rows = [{"text": r["text"]} for r in rows]
        paths[label] = root / name
        paths[label].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def fake_colours(text: str) -> list[list]:
    """GLTR-like segments without a model (tests of colours.py use a real one)."""
    return [[text[:12], 0], [text[12:40], 1], [text[40:], 3]]


def make_study(sources, path: Path, **options) -> object:
    srcs = [parse_source(f"{LABELS[0]}={sources[LABELS[0]]}", True), parse_source(f"{LABELS[1]}={sources[LABELS[1]]}",
                                                                                  True),
            parse_source(f"{LABELS[2]}={sources[LABELS[2]]}", False)]
    settings = {"items_per_rater": 6, "per_source": 12, "gltr_arm": True, "colour": fake_colours, **options}
    return write_study(build_study(srcs, **settings), path)


@pytest.fixture
def study(sources, tmp_path):
    return make_study(sources, tmp_path / "study.json")


def answer_for(item_id: str, credibility: int = 6, origin: str = "machine", confidence: int = 3) -> dict:
    return {"item": item_id, "credibility": credibility, "origin": origin, "confidence": confidence, "seconds": 4.0}


# ---- the study file ----

def test_a_study_is_balanced_blinded_and_reproducible(study, sources, tmp_path):
    assert [s["label"] for s in study.sources] == list(LABELS)
    assert {s["label"]: s["items"] for s in study.sources} == dict.fromkeys(LABELS, 12)
    assert "Rate it from 1 (not at all credible) to 10" in study.questions["credibility"]["text"]
    assert all(len(i) >= 12 and not any(p in i for p in ("alpha", "beta", "real")) for i in study.items)
    for n in range(8):  # every rater: two items of each source, their check set, original before repeat
        ids = assignment(study, n)
        kinds = [study.items[i].check or study.items[i].source for i in ids]
        assert {k: kinds.count(k) for k in LABELS} == dict.fromkeys(LABELS, 2)
        assert kinds.index("original") < kinds.index("repeat") and "garbled" in kinds
        assert study.items[ids[kinds.index("original")]].pair == ids[kinds.index("repeat")]
    arms = [arm(study, n) for n in range(10)]
    assert all(sorted(arms[i:i + 2]) == ["gltr", "plain"] for i in range(0, 10, 2))  # blocks of two
    seen = [i for n in range(6) for i in assignment(study, n) if study.items[i].check is None]
    assert len(set(seen)) == len(seen) == 36  # six raters walk the 36 items once before any repeats
    assert shares(study, 1) == dict.fromkeys(LABELS, 2)
    again = make_study(sources, tmp_path / "again.json")  # same seed: same texts and order (ids are random)
    assert [i.text for i in again.items.values()] == [i.text for i in study.items.values()]
    assert cut("One two three. Four five six seven.", 5) == "One two three."


def test_the_cli_creates_a_study_and_bad_files_get_one_line(sources, tmp_path, capsys):
    out = tmp_path / "cli.json"
    argv = ["study", "create", "--machine", f"{LABELS[0]}={sources[LABELS[0]]}", "--real",
            f"{LABELS[2]}={sources[LABELS[2]]}", "--items-per-rater", "4", "--per-source", "10", "--out", str(out)]
    assert main(argv) == 0
    assert "attention checks" in capsys.readouterr().out and load_study(out).items_per_rater == 4
    good = json.loads(out.read_text())
    cases = {
        "not json": ("{oops", "not a JSON study file"),
        "no items": ({k: v for k, v in good.items() if k != "items"}, "field 'items' is missing"),
        "bad text": ({**good, "items": [{**good["items"][0], "text": 5}] + good["items"][1:]},
                     "field 'items[0].text' must be str, got int"),
        "no colours": ({**good, "gltr_arm": True}, "field 'gltr_arm' is true but item"),
        "too few": ({**good, "items_per_rater": 40}, "each rater needs 20"),
    }
    for name, (content, expected) in cases.items():
        bad = tmp_path / f"{name}.json"
        bad.write_text(content if isinstance(content, str) else json.dumps(content))
        assert main(["study", "invite", str(bad)]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(bad) in err and expected in err, (name, err)
    machine_not_outputs = f"{LABELS[0]}={sources[LABELS[2]]}"  # a real jsonl given as output-dataset rows
    assert main([*argv[:3], machine_not_outputs, *argv[4:]]) == 2
    err = capsys.readouterr().err
    assert f"{sources[LABELS[2]]}:1" in err and "'id'" in err and err.count("\n") == 1
    assert main(["study", "create", "--machine", "no-equals-sign", "--out", str(out)]) == 2
    assert "expected LABEL=PATH" in capsys.readouterr().err


# ---- the store ----

def test_the_store_migrates_refuses_newer_and_other_studies(study, tmp_path):
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[1] + "; PRAGMA user_version = 1;")
    db.execute("INSERT INTO raters (token_hash, role, number, arm, created) VALUES ('h', 'rater', 0, 'plain', 0)")
    db.execute("INSERT INTO assignments VALUES (1, 0, 'item-x')")
    db.execute("INSERT INTO answers (rater, item, credibility, answered) VALUES (1, 'item-x', 5, 0)")
    db.commit()
    db.close()
    store = Store(path, study.sha256)
    assert store.version() == SCHEMA_VERSION == 2
    assert [tuple(r) for r in store._connection().execute("SELECT credibility, seconds FROM answers")] == [(5, None)]
    assert store._connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    with pytest.raises(StoreError, match="made for a study file with sha256"):
        Store(path, "0" * 64)
    newer = sqlite3.connect(tmp_path / "newer.sqlite")
    newer.execute("PRAGMA user_version = 99")
    newer.close()
    with pytest.raises(StoreError, match="schema version 99 is newer"):
        Store(tmp_path / "newer.sqlite", study.sha256)
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all, clearly" * 100)
    with pytest.raises(StoreError, match="not a SQLite database"):
        Store(tmp_path / "junk.sqlite", study.sha256)


def test_withdrawing_a_rater_leaves_no_trace_of_their_answers(study, tmp_path):
    store = Store(tmp_path / "w.sqlite", study.sha256)
    (inv,) = invite(study, store, 1, "http://x")
    item = store.assignment(1)[0]
    assert store.submit(1, Answer(item, 5, "person", 2, "MY-PRIVATE-NOTE-1234", 3.0)) == "recorded"
    assert store.withdraw(inv.rater) == 1
    assert store.answers() == [] and store.rater(inv.token) is None
    files = [p for p in tmp_path.iterdir() if p.name.startswith("w.sqlite")]
    assert not any(b"MY-PRIVATE-NOTE-1234" in p.read_bytes() for p in files)
    with pytest.raises(StoreError, match="no rater number 0"):
        store.withdraw(0)


# ---- the API ----

def test_tokens_items_and_one_answer_per_item(study, tmp_path):
    store = Store(tmp_path / "s.sqlite", study.sha256)
    (a, b) = invite(study, store, 2, "http://x")
    admin = store.add_admin()
    client = TestClient(create_app(study, store))
    head = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731
    assert client.get("/api/state").status_code == 401
    assert client.get("/api/state", headers=head("forged-" + a.token)).status_code == 403
    assert client.get("/api/progress", headers=head(a.token)).status_code == 403
    assert client.get("/api/state", headers=head(admin)).status_code == 403
    state = client.get("/api/state", headers=head(a.token)).json()
    first = state["item"]["id"]
    assert state["position"] == 1 and state["total"] == 9 and set(state["item"]) <= {"id", "text", "gltr"}
    assert ("gltr" in state["item"]) == (a.arm == "gltr") == state["colours"]
    theirs = store.assignment(2)[0]
    assert client.get(f"/api/items/{theirs}", headers=head(a.token)).status_code == 403
    r = client.post("/api/answers", headers=head(a.token), json=answer_for(theirs))
    assert r.status_code == 403 and r.json()["error"]["field"] == "item"
    bad = {"credibility": 11, "origin": "robot", "confidence": 0, "seconds": -1, "colour": 1}
    for field, value in bad.items():
        r = client.post("/api/answers", headers=head(a.token), json={**answer_for(first), field: value})
        assert r.status_code == 422 and r.json()["error"]["field"] == field, (field, r.json())
        assert repr(value) in r.json()["error"]["message"] or field == "colour"
    missing = {k: v for k, v in answer_for(first).items() if k != "origin"}
    assert client.post("/api/answers", headers=head(a.token), json=missing).json()["error"]["field"] == "origin"
    r = client.post("/api/answers", headers={**head(a.token), "content-type": "application/json"}, content=b"{x")
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    assert client.post("/api/answers", headers=head(a.token), json=answer_for(first, 7)).status_code == 201
    assert client.post("/api/answers", headers=head(a.token), json=answer_for(first, 7)).status_code == 200
    r = client.post("/api/answers", headers=head(a.token), json=answer_for(first, 2))
    assert r.status_code == 409 and "refused" in r.json()["error"]["message"]
    assert [x["credibility"] for x in store.answers()] == [7]  # the first answer stands, stored once
    assert client.get("/api/state", headers=head(a.token)).json()["position"] == 2
    progress = client.get("/api/progress", headers=head(admin)).json()
    assert [(p["rater"], p["answered"]) for p in progress["raters"]] == [(0, 1), (1, 0)]
    urls = ("/", "/static/rate.js", "/api/state", f"/api/items/{first}")
    every = [client.get(u, headers=head(a.token)) for u in urls]
    every += [client.get("/api/progress", headers=head(admin)), client.get("/admin")]
    for response in every:
        blob = response.text + json.dumps(dict(response.headers))
        assert not any(label in blob for label in LABELS) and "SRCLABEL" not in blob
    assert all(r.headers["cache-control"] == "no-store" for r in every)


def test_a_study_without_origin_but_with_comments_checks_answers_by_its_own_questions(sources, tmp_path):
    study = make_study(sources, tmp_path / "c.json", origin=False, comment=True, checks=False, gltr_arm=False,
                       colour=None)
    assert study.questions["origin"] is None and study.checks is None and not study.gltr_arm
    store = Store(tmp_path / "c.sqlite", study.sha256)
    (inv,) = invite(study, store, 1, "http://x")
    client = TestClient(create_app(study, store))
    head = {"Authorization": f"Bearer {inv.token}"}
    state = client.get("/api/state", headers=head).json()
    assert state["total"] == 6 and "gltr" not in state["item"] and not state["colours"]
    item = state["item"]["id"]
    r = client.post("/api/answers", headers=head, json={"item": item, "credibility": 4, "origin": "person"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "origin" and "does not ask" in r.text
    r = client.post("/api/answers", headers=head, json={"item": item, "credibility": 4, "comment": "x" * 2001})
    assert r.status_code == 422 and r.json()["error"]["field"] == "comment"
    r = client.post("/api/answers", headers=head, json={"item": item, "credibility": 4, "comment": "odd ending"})
    assert r.status_code == 201
    assert [(a["credibility"], a["origin"], a["comment"]) for a in store.answers()] == [(4, None, "odd ending")]
    report = build_report(study, store.answers(), n_boot=200)
    assert report["detection"] is None and report["arms"] is None and report["raters"]["excluded"] == []
    paths = write_report(report, tmp_path / "r")
    assert "roc_png" not in paths and "Person or machine" not in paths["markdown"].read_text()


def test_twenty_concurrent_raters(study, tmp_path):
    store = Store(tmp_path / "c.sqlite", study.sha256)
    invitations = invite(study, store, 20, "http://x")
    failures: list[str] = []

    def rate(token: str) -> None:
        while True:
            status, state = call(f"{url}/api/state", token)
            if state["item"] is None:
                return
            status, _ = call(f"{url}/api/answers", token, answer_for(state["item"]["id"], random.randint(1, 10)))
            if status != 201:
                failures.append(f"{status}")

    with serve_in_thread(create_app(study, store)) as url:
        threads = [threading.Thread(target=rate, args=(inv.token,)) for inv in invitations]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert failures == []
    rows = store.answers()
    assert len(rows) == 20 * 9 == len({(r["rater"], r["item"]) for r in rows})
    for inv in invitations:
        mine = {r["item"] for r in rows if r["rater"] == inv.rater}
        assert mine == set(store.assignment(store.raters()[inv.rater].id))


# ---- durability: SIGKILL in a flood of submissions ----

def _serve(study_path: Path, db: Path, port: int, log: Path) -> subprocess.Popen:
    """`gpt2 study serve` in its own process (access log on, to a file), once it answers."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "gpt2", "study", "serve", str(study_path), "--db", str(db),
                                 "--port", str(port), "--log-level", "info"], stdout=out,
                                stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 60
    while True:
        try:
            if call(f"http://127.0.0.1:{port}/api/state", "x")[0] == 403:
                return proc
        except OSError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "the study server did not start"
        time.sleep(0.1)


def _flood(url: str, jobs: list[tuple[str, dict]], results: list, stop: threading.Event, workers: int = 6
           ) -> None:
    """POST every (token, answer) in `jobs` from `workers` threads until done or the server dies; each
    answer the server answered is appended to `results` as (token, item, status)."""
    queue = list(jobs)
    lock = threading.Lock()

    def work() -> None:
        while not stop.is_set():
            with lock:
                if not queue:
                    return
                token, body = queue.pop()
            try:
                status, _ = call(f"{url}/api/answers", token, body)
            except (OSError, http.client.HTTPException, json.JSONDecodeError):
                return  # the server is gone: this answer's fate is unknown, which is allowed
            results.append((token, body["item"], status))

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)


def test_sigkill_during_a_flood_loses_no_acknowledged_answer_and_doubles_none(sources, tmp_path):
    study = make_study(sources, tmp_path / "flood.json", items_per_rater=30)
    db = tmp_path / "flood.sqlite"
    store = Store(db, study.sha256)
    invitations = invite(study, store, 8, "http://x")
    jobs = [(inv.token, answer_for(item, 5)) for inv in invitations for item in store.assignment(
        store.raters()[inv.rater].id)]
    random.Random(0).shuffle(jobs)
    port, log = free_port(), tmp_path / "server.log"
    proc = _serve(study.path, db, port, log)
    acked: list = []
    stop = threading.Event()
    flood = threading.Thread(target=_flood, args=(f"http://127.0.0.1:{port}", jobs, acked, stop))
    flood.start()
    while len(acked) < 60 and flood.is_alive():
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    flood.join(60)
    assert {status for _, _, status in acked} <= {201}, "a first submission is acknowledged 201"
    assert 60 <= len(acked) < len(jobs), "the kill must land mid-flood"
    rows = sqlite3.connect(db).execute("SELECT rater, item FROM answers").fetchall()
    by_token = {inv.token: store.raters()[inv.rater].id for inv in invitations}
    assert {(by_token[t], item) for t, item, _ in acked} <= set(rows)  # nothing acknowledged is lost
    assert len(rows) == len(set(rows))
    text = log.read_text()
    assert "POST /api/answers" in text and not any(inv.token in text for inv in invitations)  # no token in logs
    proc = _serve(study.path, db, port, log)  # the clients resend everything: stored answers come back 200
    try:
        again: list = []
        _flood(f"http://127.0.0.1:{port}", jobs, again, threading.Event())
    finally:
        proc.kill()
        proc.wait(10)
    assert len(again) == len(jobs) and {status for _, _, status in again} <= {200, 201}
    assert sum(status == 200 for _, _, status in again) >= len(acked)  # stored before: acknowledged again
    rows = sqlite3.connect(db).execute("SELECT rater, item FROM answers").fetchall()
    assert len(rows) == len(set(rows)) == len(jobs)
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


# ---- the statistics, against independent computations ----

def test_krippendorff_alpha_matches_the_worked_example():
    """Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 observers x 12 units
    example: nominal 0.743, ordinal 0.815, interval 0.849 (as published, to 3 decimals)."""
    n = None
    rows = [[1, 2, 3, 3, 2, 1, 4, 1, 2, n, n, n], [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, n, 3],
            [n, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, n], [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, n]]
    units = [[r[i] for r in rows if r[i] is not None] for i in range(12)]
    for metric, published in (("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)):
        assert krippendorff_alpha(units, metric) == pytest.approx(published, abs=5e-4)
    # by hand: two raters, items (1, 1), (2, 2), (1, 2): o = [[2, 1], [1, 2]], n_c = (3, 3), n = 6;
    # nominal D_o = 2/6, D_e = 2*3*3/(6*5) = 0.6: alpha = 1 - (1/3)/0.6 = 4/9
    assert krippendorff_alpha([[1, 1], [2, 2], [1, 2]], "nominal") == pytest.approx(4 / 9, abs=1e-12)
    assert krippendorff_alpha([["x", "x"], ["x", "x"]], "nominal") != krippendorff_alpha([[1, 2]], "nominal")


def test_tests_and_intervals_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    values = rng.integers(1, 11, size=300).astype(float)
    mean, low, high = bootstrap_mean_ci(values, n_boot=4000, seed=2)
    ref = stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile", random_state=3)
    assert mean == pytest.approx(values.mean())
    # two Monte Carlo intervals of the same statistic: their ends agree within 0.06 on a 1-10 scale (the
    # bootstrap's own error at 4000 resamples is about 0.02 for n = 300)
    assert low == pytest.approx(ref.confidence_interval.low, abs=0.06)
    assert high == pytest.approx(ref.confidence_interval.high, abs=0.06)
    z, p = two_proportion_z(72, 100, 54, 100)
    chi2, p_chi2, _, _ = stats.chi2_contingency([[72, 28], [54, 46]], correction=False)
    assert z**2 == pytest.approx(chi2, rel=1e-12) and p == pytest.approx(p_chi2, rel=1e-9)
    a, b = rng.normal(0.7, 0.1, 12), rng.normal(0.6, 0.1, 12)
    ref_p = stats.permutation_test((a, b), lambda x, y: np.mean(x) - np.mean(y), n_resamples=5000,
                                   alternative="two-sided", random_state=4).pvalue
    assert permutation_p(a, b, n_perm=5000, seed=5) == pytest.approx(ref_p, abs=0.02)  # Monte Carlo error


def _synthetic_answers(study, rng: random.Random) -> list[dict]:
    """Answers as Store.answers() gives them: 10 raters, every study item, skill in the GLTR arm; rater 9
    fails the garbled check and rater 8 contradicts itself on the repeat."""
    out = []
    checks = study.check_sets()
    for rater in range(10):
        arm_name = "gltr" if rater % 2 else "plain"
        original, repeat, garbled = checks[rater % len(checks)]
        for item in [*study.items.values()]:
            if item.check and item.id not in (original.id, repeat.id, garbled.id):
                continue
            right = rng.random() < (0.8 if arm_name == "gltr" else 0.55)
            origin = ("machine" if item.machine else "person") if right else ("person" if item.machine else "machine")
            cred = rng.randint(1, 10) if item.check is None else 2
            origin = origin if item.check is None else "person"
            if item.id == garbled.id and rater == 9:
                cred = 9
            if item.id == repeat.id and rater == 8:
                cred = 9
            out.append({"rater": rater, "arm": arm_name, "simulated": False, "item": item.id, "answered": 0.0,
                        "credibility": cred, "origin": origin, "confidence": rng.randint(1, 5),
                        "comment": None, "seconds": 3.0})
    return out


def test_the_report_against_sklearn_and_numpy(study, tmp_path):
    from sklearn.metrics import roc_auc_score

    answers = _synthetic_answers(study, random.Random(7))
    report = build_report(study, answers, n_boot=3000, seed=0)
    excluded = {e["rater"]: " ".join(e["reasons"]) for e in report["raters"]["excluded"]}
    assert set(excluded) == {8, 9}
    assert "garbled text rated 9 (expected at most 4)" in excluded[9] and "rated 2 then 9" in excluded[8]
    kept = [a for a in answers if a["rater"] < 8 and study.items[a["item"]].check is None]
    assert report["answers"] == len(kept)
    truth = [int(study.items[a["item"]].machine) for a in kept]
    score = [a["confidence"] * (1 if a["origin"] == "machine" else -1) for a in kept]
    assert report["detection"]["auroc"] == pytest.approx(roc_auc_score(truth, score), abs=1e-12)
    accuracy = np.mean([(a["origin"] == "machine") == bool(t) for a, t in zip(kept, truth, strict=True)])
    assert report["detection"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    gltr = [a for a in kept if a["arm"] == "gltr"]
    gltr_truth = [int(study.items[a["item"]].machine) for a in gltr]
    assert report["arms"]["gltr"]["auroc"] == pytest.approx(roc_auc_score(
        gltr_truth, [a["confidence"] * (1 if a["origin"] == "machine" else -1) for a in gltr]), abs=1e-12)
    assert report["arms"]["difference"] > 0 and report["arms"]["z_test"]["p"] < 0.05
    for row in report["credibility"]:  # an independent numpy bootstrap, another seed: within 0.15 (n = 32)
        values = np.array([a["credibility"] for a in kept if study.items[a["item"]].source == row["source"]])
        boots = values[np.random.default_rng(99).integers(0, len(values), (3000, len(values)))].mean(1)
        assert row["mean"] == pytest.approx(values.mean(), abs=1e-12)
        assert row["ci95"] == pytest.approx(list(np.percentile(boots, [2.5, 97.5])), abs=0.15)
    paths = write_report(report, tmp_path / "report")
    assert all(p.stat().st_size > 0 for p in paths.values()) and "SIMULATED" not in paths["markdown"].read_text()
    assert json.loads(paths["json"].read_text())["reference"]["cornell_credibility"]["1.5B"] == 6.91


# ---- the whole path from the command line ----

def test_simulate_export_report_and_withdraw_from_the_cli(study, sources, tmp_path, capsys):
    from gpt2.detection import make_detector

    texts = lambda label: [json.loads(line)["text"] for line in sources[label].read_text().splitlines()]  # noqa: E731
    make_detector("tfidf", min_df=1).fit(texts(LABELS[2]), texts(LABELS[0]) + texts(LABELS[1])).save(tmp_path / "det")
    out = tmp_path / "sim"
    assert main(["study", "simulate", str(study.path), "--n", "8", "--careless", "0.5", "--out", str(out),
                 "--detector", str(tmp_path / "det"), "--bootstrap", "500"]) == 0
    assert "SIMULATED" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert report["simulated"] is True and report["simulated_raters"] == 8 and report["arms"] is not None
    assert report["detector"]["name"] == "tfidf" and len(report["detector"]["by_source"]) == 3
    assert report["raters"]["excluded"], "half the raters answer at random: the checks should catch some"
    md = (out / "report.md").read_text()
    assert md.startswith("# Reading study (SIMULATED)") and "SIMULATED RATERS" in md and "Cornell" in md
    assert (out / "credibility.png").stat().st_size > 5000 and (out / "roc.png").stat().st_size > 5000
    sim_db = study.path.with_suffix(".simulated.sqlite")
    for suffix in ("jsonl", "csv"):
        target = tmp_path / f"a.{suffix}"
        assert main(["study", "export", str(study.path), "--db", str(sim_db), "--out", str(target)]) == 0
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(rows) == 8 * 9 and all(r["simulated"] for r in rows) and {r["source"] for r in rows} >= set(LABELS)
    assert (tmp_path / "a.csv").read_text().splitlines()[0].startswith("rater,arm,simulated,item,source")
    assert main(["study", "withdraw", str(study.path), "--db", str(sim_db), "--rater", "3"]) == 0
    assert "9 answers deleted" in capsys.readouterr().out
    assert 3 not in {a["rater"] for a in Store(sim_db, study.sha256).answers()}
    assert main(["study", "invite", str(study.path), "--n", "2"]) == 0  # real raters in the default db
    links = capsys.readouterr().out.splitlines()
    assert len(links) == 2 and all("http://127.0.0.1:8000/#" in line for line in links)
    assert main(["study", "simulate", str(study.path), "--db", str(study.path.with_suffix(".sqlite")),
                 "--n", "1", "--out", str(out)]) == 2
    assert "holds real raters" in capsys.readouterr().err


def test_gltr_colours_cover_the_text_exactly():
    import torch

    from gpt2.config import GPTConfig
    from gpt2.model import GPT
    from gpt2.study.colours import segments
    from gpt2.tokenizer import Tokenizer

    tokenizer = Tokenizer.train([_text(random.Random(3), 30)] * 5, vocab_size=300)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("nano", vocab_size=tokenizer.vocab_size)).eval()
    for text in ("The council said the river was high.", "Zoë's café — naïve 東京 façade ✓ end."):
        pieces = segments(model, tokenizer, text)
        assert "".join(p for p, _ in pieces) == text and all(b in (0, 1, 2, 3) for _, b in pieces)


# ---- the page, in a real browser ----

CHROMIUM = Path(os.environ.get("GPT2_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",  # as tests/test_web.py
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]


def _answer_by_keyboard(page, expect, credibility_key: str, position: int, total: int) -> None:
    """Number keys for the three questions, then Enter; waits for the next text."""
    page.keyboard.press(credibility_key)
    assert page.evaluate("document.activeElement.name") == "origin"  # focus moves on to the next question
    page.keyboard.press("2")  # machine
    page.keyboard.press("4")  # confidence
    assert page.evaluate("document.activeElement.id") == "submit"
    page.keyboard.press("Enter")
    if position < total:
        expect(page.locator("#progress-text")).to_have_text(f"Text {position + 1} of {total} ({position} answered)")


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent (apt-get install -y chromium)")
def test_a_rater_completes_the_study_in_chromium_by_keyboard_and_resumes_after_a_reload(study, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")
    expect = sync_api.expect
    store = Store(tmp_path / "b.sqlite", study.sha256)
    rater = next(inv for inv in invite(study, store, 2, "http://x") if inv.arm == "gltr")
    rater_id = store.raters()[rater.rater].id
    keys = ["7", "0", "3", "5", "1", "9", "2", "8", "6"]  # "0" is 10
    with serve_in_thread(create_app(study, store)) as url, sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        received, errors = [], []

        def capture(route):  # every byte the browser receives, kept before a reload can drop it
            response = route.fetch()
            received.append(response.text() + json.dumps(response.headers))
            route.fulfill(response=response)

        page.route("**/*", capture)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/#{rater.token}")
        expect(page.locator("#progress-text")).to_have_text("Text 1 of 9 (0 answered)")
        first = study.items[store.assignment(rater_id)[0]]
        assert page.text_content("#text") == first.text and page.locator("#text span.b0").count() == 1
        assert page.is_visible("#legend")  # the GLTR arm sees the colours and their key
        labelled = page.locator("input[type=radio]").evaluate_all("xs => xs.map(x => x.labels.length)")
        assert len(labelled) == 10 + 2 + 5 and all(labelled)  # every choice has its label
        page.keyboard.press("Tab")  # from the text's heading, Tab reaches the first question
        assert page.evaluate("document.activeElement.name") == "credibility"
        for position in range(1, 4):
            _answer_by_keyboard(page, expect, keys[position - 1], position, 9)
        page.reload()  # resumes at the first unanswered text
        expect(page.locator("#progress-text")).to_have_text("Text 4 of 9 (3 answered)")
        for position in range(4, 10):
            _answer_by_keyboard(page, expect, keys[position - 1], position, 9)
        expect(page.locator("#done")).to_be_visible()
        html = page.content()
        forged = browser.new_page()
        forged.goto(f"{url}/#forged-{rater.token}")
        expect(forged.locator("#message")).to_have_text("this token is not valid here")
        browser.close()
    stored = {a["item"]: a for a in store.answers() if a["rater"] == rater.rater}
    order = store.assignment(rater_id)
    assert [stored[i]["credibility"] for i in order] == [int(k) or 10 for k in keys]
    assert {(a["origin"], a["confidence"]) for a in stored.values()} == {("machine", 4)}
    assert errors == [] and len(received) > 20
    for blob in [html, *received]:  # the page, every script, every API answer and header the browser got
        assert not any(label in blob for label in LABELS) and "SRCLABEL" not in blob
