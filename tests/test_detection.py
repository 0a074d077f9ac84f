"""Detection: metrics against scikit-learn, per-token statistics and GLTR ranks against transformers on the
same random weights, Fast-DetectGPT and Binoculars against loop-based float64 references, every detector's
fit/score/save/load, jsonl errors, the reports and the CLI.

Models are tiny random-weight GPT-2s (2 layers, 64 wide) over a 300-token vocabulary trained in the test,
written by transformers' save_pretrained. Tolerances: per-token log-probs, entropies and variances 1e-4
(float32 logits from two implementations); per-text statistics 1e-4 relative; ranks exact up to ties
within 1e-5 of the actual token's log-prob (counted as either side)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from conftest import shared_data
from gpt2.cli import main
from gpt2.detection import (
    DETECTORS,
    ZERO_SHOT,
    DetectorError,
    load_detector,
    make_detector,
    metrics,
    token_ranks,
    token_stats,
)
from gpt2.detection import statistics as lm_stats
from gpt2.detection.data import read_texts, real_data_splits
from gpt2.detection.report import evaluate, transfer_matrix, write_report
from gpt2.errors import DataError

N_CTX = 48
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads cost more than they give


# ---- metrics ----

def random_scores(seed: int, n: int = 300, ties: bool = True):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    scores = rng.normal(labels * 0.8, 1.0)
    if ties:
        scores = np.round(scores, 1)  # many tied scores, across the classes
    return labels, scores


def reference_tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """By hand, from scikit-learn's curve: walk the segments; at a vertical segment take the top."""
    best = 0.0
    points = list(zip(fpr, tpr, strict=True))
    for (f0, t0), (f1, t1) in zip(points, points[1:], strict=False):
        if f0 <= target <= f1:
            value = t1 if f1 == f0 else t0 + (t1 - t0) * (target - f0) / (f1 - f0)
            best = max(best, value)
    return best


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("ties", [True, False])
def test_roc_auroc_and_tpr_match_sklearn(seed, ties):
    labels, scores = random_scores(seed, ties=ties)
    fpr, tpr, thresholds = metrics.roc_curve(labels, scores)
    sk_fpr, sk_tpr, sk_thr = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=1e-12)
    np.testing.assert_allclose(tpr, sk_tpr, atol=1e-12)
    np.testing.assert_allclose(thresholds[1:], sk_thr[1:])
    assert metrics.auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    for target in (0.0, 0.001, 0.01, 0.05, 0.1, 0.37, 1.0):
        expected = reference_tpr_at_fpr(sk_fpr, sk_tpr, target)
        assert metrics.tpr_at_fpr(labels, scores, target) == pytest.approx(expected, abs=1e-12), target


def test_metric_edge_cases():
    assert metrics.auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.auroc([0, 1], [0.5, 0.5]) == 0.5  # a tie is half a win
    assert metrics.tpr_at_fpr([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], 0.0) == 1.0
    # one human text above every machine text: the curve runs (0, 0) -> (0.5, 0), up to (0.5, 1), on to (1, 1)
    labels, scores = [0, 0, 1, 1], [0.9, 0.1, 0.5, 0.6]
    assert [metrics.tpr_at_fpr(labels, scores, f) for f in (0.25, 0.5, 0.75)] == [0.0, 1.0, 1.0]
    # ties across classes: one diagonal step, read by interpolation
    assert metrics.tpr_at_fpr([0, 1, 0, 1], [0.5, 0.5, 0.1, 0.9], 0.25) == pytest.approx(0.75)
    assert metrics.accuracy([0, 1, 1], [0.2, 0.7, 0.5]) == pytest.approx(2 / 3)  # machine iff score > 0.5
    with pytest.raises(ValueError, match="both human"):
        metrics.auroc([1, 1], [0.1, 0.2])
    labels, scores = random_scores(7)
    t = metrics.best_threshold(labels, scores)
    cuts = np.unique(scores)
    best = max(metrics.accuracy(labels, scores, c) for c in cuts)
    assert metrics.accuracy(labels, scores, t) >= best - 1e-12
    rows = metrics.accuracy_by_length([0, 1, 0, 1], [0.1, 0.9, 0.8, 0.2], [10, 70, 300, 2000],
                                      metrics.TOKEN_EDGES)
    assert [(r["bucket"], r["n"], r["accuracy"]) for r in rows] == [
        ("0-64", 1, 1.0), ("64-128", 1, 1.0), ("256-512", 1, 0.0), ("1024+", 1, 0.0)]


# ---- models ----

@pytest.fixture(scope="module")
def tokenizer():
    from gpt2.tokenizer import Tokenizer

    text = "the cat sat on the mat. a dog ran in the park; the sun is warm, and so is the sand. " * 30
    return Tokenizer.train([text], vocab_size=300)


def hf_checkpoint(directory: Path, tokenizer, seed: int) -> Path:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=N_CTX, vocab_size=tokenizer.vocab_size,
                        bos_token_id=tokenizer.eot_token_id, eos_token_id=tokenizer.eot_token_id)
    hf = GPT2LMHeadModel(config)
    with torch.no_grad():  # sharper distributions than the 0.02 init, so ranks and entropies vary
        hf.transformer.wte.weight.mul_(8)
    hf.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def ck(tmp_path_factory, tokenizer) -> Path:
    return hf_checkpoint(tmp_path_factory.mktemp("ck"), tokenizer, 0)


@pytest.fixture(scope="module")
def ck2(tmp_path_factory, tokenizer) -> Path:
    return hf_checkpoint(tmp_path_factory.mktemp("ck2"), tokenizer, 1)


@pytest.fixture(scope="module")
def hf(ck):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(ck).eval()


@pytest.fixture(scope="module")
def hf2(ck2):
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(ck2).eval()


@pytest.fixture(scope="module")
def ours(ck):
    return lm_stats.load_model(str(ck), dtype="fp32")[0]  # compared with transformers' float32 below


@pytest.fixture(scope="module")
def ours2(ck2):
    return lm_stats.load_model(str(ck2), dtype="fp32")[0]


TEXTS = ["the cat sat on the mat.", "a dog ran in the park; the sun is warm",
         "sand, sun and so on " * 8, "q", "the the the the the the the the the the the"]


def hf_logp(hf, tokenizer, text: str, max_tokens: int | None = None) -> tuple[list[int], np.ndarray]:
    """float64 log-probs (T, V) from transformers, one unpadded sequence starting at <|endoftext|>."""
    ids = tokenizer.encode(text)[: min(N_CTX, max_tokens or N_CTX)]
    with torch.no_grad():
        logits = hf(torch.tensor([[tokenizer.eot_token_id, *ids[:-1]]])).logits[0].double()
    return ids, torch.log_softmax(logits, -1).numpy()


# ---- per-token statistics and GLTR ranks ----

def rank_bounds(logp_row: np.ndarray, token: int, eps: float = 1e-5) -> tuple[int, int]:
    x = logp_row[token]
    return int((logp_row > x + eps).sum()) + 1, int((logp_row > x - eps).sum())  # the token itself excluded


def test_token_stats_match_transformers(ours, hf, tokenizer):
    texts = [*TEXTS, "sun " * 60]  # the last one is cut to the 48-token context
    stats = token_stats(ours, tokenizer, texts, batch_tokens=64)  # several batches, padded rows
    for text, s in zip(texts, stats, strict=True):
        ids, logp = hf_logp(hf, tokenizer, text)
        assert s.ids.tolist() == ids
        p = np.exp(logp)
        np.testing.assert_allclose(s.logprob, logp[np.arange(len(ids)), ids], atol=1e-4)
        np.testing.assert_allclose(s.entropy, -(p * logp).sum(-1), atol=1e-4)
        np.testing.assert_allclose(s.expected_logprob, (p * logp).sum(-1), atol=1e-4)
        var = (p * logp**2).sum(-1) - ((p * logp).sum(-1)) ** 2
        np.testing.assert_allclose(s.var_logprob, var, atol=1e-4)
        for t, token in enumerate(ids):
            lo, hi = rank_bounds(logp[t], token)
            assert lo <= s.rank[t] <= max(lo, hi), (text, t)
    assert len(stats[-1]) == N_CTX
    assert len(set(np.concatenate([s.rank for s in stats]).tolist())) > 5  # ranks vary: a real check


def test_gltr_token_ranks_match_transformers(ours, hf, tokenizer):
    text = "the sun is warm, and so is the sand in the park"
    view = token_ranks(ours, tokenizer, text, top_k=3)
    ids, logp = hf_logp(hf, tokenizer, text)
    assert [v["id"] for v in view] == ids
    assert "".join(v["token"] for v in view) == text
    for t, v in enumerate(view):
        lo, hi = rank_bounds(logp[t], ids[t])
        assert lo <= v["rank"] <= max(lo, hi)
        assert v["prob"] == pytest.approx(math.exp(logp[t, ids[t]]), rel=1e-4)
        top = np.argsort(-logp[t], kind="stable")[:3]
        assert [a["prob"] for a in v["top_k"]] == pytest.approx(np.exp(logp[t, top]).tolist(), rel=1e-4)
        assert sorted(v.keys()) == ["id", "prob", "rank", "token", "top_k"]
        assert v["rank"] == 1 or v["prob"] <= v["top_k"][0]["prob"]


def reference_fast_detectgpt(hf_score, hf_ref, tokenizer, text: str) -> float:
    """Bao et al.'s analytic criterion, loop by loop in float64."""
    ids, logp = hf_logp(hf_score, tokenizer, text)
    _, logq = hf_logp(hf_ref, tokenizer, text)
    total_lp = total_mu = total_var = 0.0
    for t, token in enumerate(ids):
        q = [math.exp(v) for v in logq[t]]
        mu = sum(qv * lv for qv, lv in zip(q, logp[t], strict=True))
        second = sum(qv * lv * lv for qv, lv in zip(q, logp[t], strict=True))
        total_lp += logp[t][token]
        total_mu += mu
        total_var += second - mu * mu
    return (total_lp - total_mu) / math.sqrt(total_var)


def reference_binoculars(hf_performer, hf_observer, tokenizer, text: str) -> float:
    """Hans et al.: log-PPL under the performer / mean cross-entropy (observer probs, performer log-probs)."""
    ids, logp = hf_logp(hf_performer, tokenizer, text)
    _, logq = hf_logp(hf_observer, tokenizer, text)
    nll = x_ent = 0.0
    for t, token in enumerate(ids):
        nll -= logp[t][token]
        x_ent -= sum(math.exp(qv) * lv for qv, lv in zip(logq[t], logp[t], strict=True))
    return (nll / len(ids)) / (x_ent / len(ids))


def test_fast_detectgpt_matches_reference(ours, ours2, hf, hf2, tokenizer):
    texts = TEXTS[:3]
    same = token_stats(ours, tokenizer, texts)
    other = token_stats(ours, tokenizer, texts, reference=ours2)  # a separate sampling model
    for text, s, r in zip(texts, same, other, strict=True):
        expected = reference_fast_detectgpt(hf, hf, tokenizer, text)
        assert lm_stats.sampling_discrepancy(s) == pytest.approx(expected, rel=1e-4, abs=1e-4)
        expected = reference_fast_detectgpt(hf, hf2, tokenizer, text)
        assert lm_stats.sampling_discrepancy(r) == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_binoculars_matches_reference(ours, ours2, hf, hf2, tokenizer):
    texts = TEXTS[:3]
    stats = token_stats(ours, tokenizer, texts, observer=ours2)  # ours = performer
    for text, s in zip(texts, stats, strict=True):
        expected = reference_binoculars(hf, hf2, tokenizer, text)
        assert lm_stats.binoculars(s) == pytest.approx(expected, rel=1e-4)


# ---- detectors ----

WORDS_H = "river stone garden letter morning window autumn violin harbour meadow".split()
WORDS_M = "quantum server protocol module kernel vector token cluster buffer socket".split()
FILLER = "the a of and to in is it that was".split()


def synthetic(n: int, words: list[str], seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words + FILLER, size=int(rng.integers(12, 30)))) for _ in range(n)]


@pytest.fixture(scope="module")
def data():
    return {split: (synthetic(n, WORDS_H, 10 + i), synthetic(n, WORDS_M, 20 + i))
            for i, (split, n) in enumerate([("train", 40), ("valid", 20), ("test", 30)])}


def test_tfidf_separates_separable_data(tmp_path, data):
    det = make_detector("tfidf", min_df=2).fit(*data["train"], valid=data["valid"])
    real, fake = data["test"]
    scores = det.score(real + fake)
    labels = [0] * len(real) + [1] * len(fake)
    assert metrics.auroc(labels, scores) == 1.0
    assert metrics.accuracy(labels, scores, det.threshold) == 1.0
    assert set(det.info["valid_accuracy_by_C"]) == {f"{2.0**k:g}" for k in range(-6, 7)}
    det.save(tmp_path / "tfidf")
    again = load_detector(tmp_path / "tfidf")
    np.testing.assert_allclose(again.score(real + fake), scores, rtol=1e-12)
    assert again.info["C"] == det.info["C"]


def test_tfidf_with_too_few_texts_says_what_to_do():
    with pytest.raises(DetectorError, match="lower min_df"):
        make_detector("tfidf").fit(["aa bb"], ["cc dd"])


def test_gltr_and_zero_shot_detectors(tmp_path, ck, ck2, data):
    real, fake = data["test"][0][:8], data["test"][1][:8]
    texts = real + fake
    for name in ["gltr", *ZERO_SHOT]:
        extra = {"observer": str(ck2)} if name == "binoculars" else {}
        det = make_detector(name, model=str(ck), max_tokens=32, **extra)
        valid = (data["valid"][0][:6], data["valid"][1][:6])
        det.fit(data["train"][0][:10], data["train"][1][:10], valid=valid)
        scores = det.score(texts)
        assert scores.shape == (16,) and np.all((scores >= 0) & (scores <= 1)), name
        det.save(tmp_path / name)
        again = load_detector(tmp_path / name)
        assert type(again) is type(det) and again.threshold == det.threshold
        np.testing.assert_allclose(again.score(texts), scores, rtol=1e-6, err_msg=name)
    uncalibrated = make_detector("binoculars", model=str(ck), observer=str(ck2), max_tokens=32)
    raw = uncalibrated.statistics(texts)
    expected = 1 / (1 + np.exp(-(-raw + 0.9015310749276843) / 0.05))
    np.testing.assert_allclose(uncalibrated.score(texts), expected, rtol=1e-9)


def test_zero_shot_orientation(ck, tokenizer):
    """Text the scoring model likes (its greedy choice at every step, <|endoftext|> excluded) scores as more
    machine-like than text it does not."""
    model, tok = lm_stats.load_model(str(ck))
    ids = [tok.eot_token_id]
    with torch.no_grad():
        for _ in range(30):
            logits = model(torch.tensor([ids]))[0][0, -1]
            logits[tok.eot_token_id] = -math.inf
            ids.append(int(logits.argmax()))
    liked = tok.decode(ids[1:])
    assert tok.encode(liked) == ids[1:]  # the text reads back as the same tokens
    human = "the park is warm and the sand is so warm, a dog sat on the mat"
    for name in ("loglik", "logrank", "fast-detectgpt"):
        det = make_detector(name, model=str(ck))
        p_human, p_machine = det.score([human, liked])
        assert p_machine > p_human, name


def test_classifier_learns_and_round_trips(tmp_path, ck, data):
    det = make_detector("classifier", model=str(ck), max_tokens=24, lr=3e-3, batch_size=8, max_epochs=4,
                        patience=2, pooling="mean")
    det.fit(*data["train"], valid=data["valid"])
    real, fake = data["test"]
    scores = det.score(real + fake)
    assert metrics.auroc([0] * len(real) + [1] * len(fake), scores) > 0.9
    assert det.info["epochs"][0]["valid_loss"] > 0 and "best_epoch" in det.info
    det.save(tmp_path / "clf")
    assert (tmp_path / "clf" / "backbone" / "model.safetensors").is_file()
    assert (tmp_path / "clf" / "head.safetensors").is_file()
    again = load_detector(tmp_path / "clf")
    np.testing.assert_allclose(again.score(real + fake), scores, rtol=1e-5, atol=1e-6)
    last = make_detector("classifier", model=str(ck), max_tokens=16, max_epochs=1, pooling="last")
    assert last.fit(real[:4], fake[:4]).score(real[:2]).shape == (2,)


def test_detector_errors(tmp_path, ck):
    with pytest.raises(DetectorError, match="unknown detector 'nope'"):
        make_detector("nope")
    with pytest.raises(DetectorError, match="observer"):
        make_detector("binoculars", model=str(ck))
    with pytest.raises(DetectorError, match="not trained"):
        make_detector("tfidf").score(["x"])
    with pytest.raises(DetectorError, match="detector.json: not found"):
        load_detector(tmp_path)
    with pytest.raises(DataError, match="needs both human and machine"):
        make_detector("tfidf").fit([], ["x"])
    assert set(DETECTORS) == {"tfidf", "gltr", "loglik", "logrank", "entropy", "fast-detectgpt", "binoculars",
                              "classifier", "encoder-classifier"}


# ---- data files ----

@pytest.mark.parametrize("content,message", [
    ('{"text": "ok"}\n{"text": "ok"}\n{"text": \n', r"bad.jsonl:3: not valid JSON"),
    ('{"text": "ok"}\n["a"]\n', r"bad.jsonl:2: expected a JSON object"),
    ('{"id": 1}\n', r"bad.jsonl:1: expected a JSON object with a \"text\" field, got an object with fields \['id'\]"),
    ('\n{"text": 5}\n', r"bad.jsonl:2: field \"text\" must be a string"),
    ("\n\n", r"bad.jsonl: holds no texts"),
])
def test_malformed_jsonl_names_file_and_line(tmp_path, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_texts(path)


def test_read_texts_utf8_error_and_missing(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2: not valid UTF-8"):
        read_texts(path)
    with pytest.raises(DataError, match="no such file"):
        read_texts(tmp_path / "missing.jsonl")


def test_real_data_split():
    directory = shared_data("gpt2-output")
    splits = real_data_splits(directory)
    counts = {k: (len(v.real), len(v.fake)) for k, v in splits.items()}
    assert counts == {"train": (158, 158), "valid": (264, 264), "test": (265, 265)}
    all_real = splits["train"].real.texts + splits["valid"].real.texts + splits["test"].real.texts
    assert len(set(all_real)) == len(all_real)
    assert not set(splits["valid"].fake.texts) & set(splits["test"].fake.texts)
    pooled = real_data_splits(directory, "pooled")
    assert {k: (len(v.real), len(v.fake)) for k, v in pooled.items()} == {
        "train": (343, 343), "valid": (172, 172), "test": (172, 172)}
    fakes = [t for v in pooled.values() for t in v.fake.texts]
    assert sorted(fakes) == sorted(t for v in splits.values() for t in v.fake.texts)  # all 687, once each
    assert pooled == real_data_splits(directory, "pooled")  # deterministic


# ---- reports and the CLI ----

def write_jsonl(path: Path, texts: list[str], with_length: bool = True) -> Path:
    path.write_text("".join(json.dumps({"id": i, "ended": True, "length": len(t.split()), "text": t}
                                       if with_length else {"text": t}) + "\n" for i, t in enumerate(texts)))
    return path


def test_evaluate_and_report(tmp_path, data):
    from gpt2.detection.data import Texts

    det = make_detector("tfidf", min_df=2).fit(*data["train"])
    real, fake = data["test"]
    lengths = [len(t.split()) for t in real]
    result = evaluate(det, Texts(real, lengths, "r"), Texts(fake, [None] * len(fake), "f"))
    assert result["length_unit"] == "characters"  # not every row had a length
    assert result["auroc"] == 1.0 and result["tpr_at_1pct_fpr"] == 1.0
    paths = write_report(result, tmp_path)
    assert json.loads(paths["json"].read_text())["detector"] == "tfidf"
    assert "| tfidf | 100.00% | 1.0000 |" in paths["markdown"].read_text()
    assert paths["roc"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_detect(tmp_path, data, ck, capsys):
    d = tmp_path / "data"
    d.mkdir()
    for split, (real, fake) in data.items():
        write_jsonl(d / f"webtext.{split}.jsonl", real)
        write_jsonl(d / f"a.{split}.jsonl", fake)
        write_jsonl(d / f"b.{split}.jsonl", [t.replace("kernel", "river") for t in fake])
    train = ["detect", "train", "--detector", "tfidf", "--min-df", "2",
             "--real", str(d / "webtext.train.jsonl"),
             "--fake", str(d / "a.train.jsonl"), "--valid-real", str(d / "webtext.valid.jsonl"),
             "--valid-fake", str(d / "a.valid.jsonl"), "--out", str(tmp_path / "det")]
    assert main(train) == 0
    assert json.loads(capsys.readouterr().out)["detector"] == "tfidf"
    ev = ["detect", "eval", str(tmp_path / "det"), "--real", str(d / "webtext.test.jsonl"), "--fake",
          str(d / "a.test.jsonl"), "--out", str(tmp_path / "ev")]
    assert main(ev) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["auroc"] == 1.0 and shown["length_unit"] == "tokens" and "tpr_at_0.1pct_fpr" in shown
    assert {p.name for p in (tmp_path / "ev").iterdir()} == {"results.json", "results.md", "roc.png"}

    score = ["detect", "score", str(tmp_path / "det"), "the sun is warm", "--model", str(ck), "--top-k", "2"]
    assert main(score) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 <= out["probability"] <= 1 and len(out["tokens"][0]["top_k"]) == 2
    assert "".join(t["token"] for t in out["tokens"]) == "the sun is warm"

    matrix = ["detect", "matrix", "--data-dir", str(d), "--sources", "a", "b", "--detector", "tfidf",
              "--min-df", "2", "--out", str(tmp_path / "m")]
    assert main(matrix) == 0
    result = json.loads((tmp_path / "m" / "matrix.json").read_text())
    assert set(result["cells"]) == {"a", "b"} and result["cells"]["a"]["a"]["accuracy"] == 1.0
    assert "| trained on \\ tested on | a | b |" in capsys.readouterr().out

    (d / "broken.jsonl").write_text('{"text": "fine"}\n{"txt": "oops"}\n')
    bad = [*train[:8], "--fake", str(d / "broken.jsonl"), "--out", str(tmp_path / "x")]
    assert main(bad) == 2
    assert "broken.jsonl:2: expected a JSON object with a \"text\" field" in capsys.readouterr().err
    assert main(["detect", "train", "--detector", "gltr", "--real", "r", "--fake", "f", "--out", "o"]) == 2
    assert "--model" in capsys.readouterr().err


def test_transfer_matrix_zero_shot(tmp_path, data, ck):
    d = tmp_path
    for split, (real, fake) in data.items():
        write_jsonl(d / f"webtext.{split}.jsonl", real[:6])
        write_jsonl(d / f"a.{split}.jsonl", fake[:6])
    result = transfer_matrix(d, ["a"], lambda: make_detector("loglik", model=str(ck), max_tokens=16))
    assert 0 <= result["cells"]["a"]["a"]["auroc"] <= 1
