"""The green-list watermark (Kirchenbauer et al. 2023): the seeding hash re-stated, the z-test against a
hand-worked example, repeated n-grams, the sampling bias (right key z > 4 on 200 tokens at gamma 0.25,
delta 2; a wrong key |z| < 2), greedy and mixed batches, the detector, and the commands: bad keys and
arguments give one line, and the key appears in no output, log or written file."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import struct

import numpy as np
import pytest
import torch

from gpt2 import GPT, GPTConfig
from gpt2.cli import main
from gpt2.detection import PROVENANCE_DETECTORS, WatermarkDetector, load_detector
from gpt2.sampling import GenerationConfig, SampleRow, Watermark, WatermarkError, generate, score_ids
from gpt2.sampling.engine import sample_tokens
from gpt2.sampling.filters import filter_logits, sample_from_logits
from gpt2.sampling.watermark import p_value, read_key

pytestmark = pytest.mark.usefixtures("one_thread")
KEY = b"hand-worked-key"
SECRET = "correct-horse-battery-staple-7319"  # the commands' key; must never show up anywhere


# ---- the seeding hash and the z-test, by hand ----

def test_hmac_seeding_restated_and_pinned():
    w = Watermark(KEY, gamma=0.25)
    for context in ([0], [7], [3, 5]):
        c = context[-1:]  # context width 1: the last id only
        digest = hmac.new(KEY, struct.pack(f"<{len(c)}q", *c), hashlib.sha256).digest()
        seed = int.from_bytes(digest[:8], "little") & (2**63 - 1)
        assert w.seed(context) == seed
        perm = torch.randperm(8, generator=torch.Generator().manual_seed(seed))
        assert w.greenlist(context, 8).tolist() == perm[:2].tolist()
    assert w.seed([0]) == 6382515975625661741  # stable across versions: a changed hash fails here
    h2 = Watermark(KEY, context_width=2)
    assert h2.seed([9, 3, 5]) == h2.seed([3, 5]) != h2.seed([5, 3])


def test_lefthash_seeding_is_the_authors_additive_prf():
    w = Watermark(b"15485863", gamma=0.25, seeding="lefthash")
    for prev in (0, 1, 299):
        seed = (15485863 * prev) % (2**64 - 1)
        perm = torch.randperm(300, generator=torch.Generator().manual_seed(seed))
        assert w.greenlist([prev], 300).tolist() == perm[: int(300 * 0.25)].tolist()


# Green lists of KEY over a vocabulary of 8 ids at gamma 0.25 (2 green ids after each token), pinned by
# test_hand_worked_green_lists: 0 -> {0, 2}, 1 -> {1, 5}, 2 -> {0, 6}, 3 -> {0, 1}, 4 -> {0, 1},
# 5 -> {2, 3}, 6 -> {0, 2}, 7 -> {0, 2}.
GREEN = {0: {0, 2}, 1: {1, 5}, 2: {0, 6}, 3: {0, 1}, 4: {0, 1}, 5: {2, 3}, 6: {0, 2}, 7: {0, 2}}


def test_hand_worked_green_lists():
    w = Watermark(KEY, gamma=0.25)
    assert {c: set(w.greenlist([c], 8).tolist()) for c in range(8)} == GREEN


def test_z_score_hand_worked():
    # ids 3 0 2 6 1 5 3 1 4 7: the first only seeds; the nine (previous, token) pairs, by the table above:
    # (3,0) green, (0,2) green, (2,6) green, (6,1) red, (1,5) green, (5,3) green, (3,1) green, (1,4) red,
    # (4,7) red: 6 green of 9. z = (6 - 0.25 * 9) / sqrt(9 * 0.25 * 0.75) = 3.75 / 1.299038 = 2.886751
    s = score_ids([3, 0, 2, 6, 1, 5, 3, 1, 4, 7], Watermark(KEY, gamma=0.25), 8)
    assert (s.tokens, s.scored, s.green) == (10, 9, 6)
    assert s.z == pytest.approx(2.886751, abs=1e-6)
    assert s.p_value == pytest.approx(0.0019462, abs=1e-6)  # 1 - Phi(2.886751)
    assert p_value(0.0) == 0.5 and p_value(4.0) == pytest.approx(3.167e-5, rel=1e-3)


def test_repeated_ngrams_count_once():
    # 3 0 2 3 0 2 3 0: pairs (3,0) g, (0,2) g, (2,3) r, (3,0) g, (0,2) g, (2,3) r, (3,0) g
    ids = [3, 0, 2, 3, 0, 2, 3, 0]
    w = Watermark(KEY, gamma=0.25)
    every = score_ids(ids, w, 8, ignore_repeated=False)
    unique = score_ids(ids, w, 8)  # the default: each distinct (context, token) once: (3,0) (0,2) (2,3)
    assert (every.scored, every.green) == (7, 5)
    assert every.z == pytest.approx((5 - 1.75) / math.sqrt(7 * 0.1875))
    assert (unique.scored, unique.green) == (3, 2)
    assert unique.z == pytest.approx((2 - 0.75) / 0.75)
    empty = score_ids([5], w, 8)
    assert (empty.scored, empty.z, empty.p_value) == (0, 0.0, 0.5)


def test_settings_are_checked_and_the_key_is_never_shown():
    for bad, message in (({"gamma": 0}, "gamma must be in"), ({"gamma": 1.5}, "gamma must be in"),
                         ({"delta": -1}, "delta must be"), ({"delta": float("inf")}, "delta must be"),
                         ({"context_width": 0}, "context width"), ({"seeding": "md5"}, "seeding must be")):
        with pytest.raises(WatermarkError, match=message):
            Watermark(SECRET.encode(), **bad)
    with pytest.raises(WatermarkError, match="at least 8 bytes"):
        Watermark(b"short")
    with pytest.raises(WatermarkError, match="integer salt"):
        Watermark(b"not-digits", seeding="lefthash")
    w = Watermark(SECRET)
    assert w.key == SECRET.encode()
    config = GenerationConfig(watermark=w)
    assert SECRET not in repr(w) and SECRET not in repr(config) and SECRET not in json.dumps(w.describe())
    with pytest.raises(ValueError, match="watermark must be a gpt2.sampling.Watermark") as e:
        GenerationConfig(watermark=SECRET)
    assert SECRET not in str(e.value)


def test_read_key(tmp_path, monkeypatch):
    monkeypatch.delenv("GPT2_WATERMARK_KEY", raising=False)
    with pytest.raises(WatermarkError, match=r"no watermark key: pass --watermark-key-file FILE or set \$GPT2"):
        read_key(None)
    monkeypatch.setenv("GPT2_WATERMARK_KEY", f"  {SECRET}\n")
    assert read_key(None) == SECRET.encode()
    (tmp_path / "k").write_text(SECRET + "\n")
    assert read_key(tmp_path / "k") == SECRET.encode()  # the file wins over the variable
    (tmp_path / "empty").write_text("\n")
    for path, message in ((tmp_path / "missing", "not found"), (tmp_path / "empty", "empty"),
                          (tmp_path, "is a directory")):
        with pytest.raises(WatermarkError, match=f"watermark key file .*: {message}"):
            read_key(path)


# ---- sampling with the bias ----

@pytest.fixture(scope="module")
def tok():
    from gpt2.tokenizer import Tokenizer

    text = "the cat sat on the mat. a dog ran in the park; the sun is warm, and so is the sand. " * 30
    return Tokenizer.train([text], vocab_size=300)


@pytest.fixture(scope="module")
def model(tok):
    """A random GPT-2 over the tokenizer's ids whose next-token distributions are broad (entropy several
    nats), as the paper's detection rate at ~200 tokens assumes; sharper ones hold less watermark."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, n_positions=256, vocab_size=tok.vocab_size,
                      bos_token_id=tok.eot_token_id, eos_token_id=tok.eot_token_id)).eval()
    with torch.no_grad():
        m.transformer.wte.weight.mul_(3)
    return m


def test_right_key_detects_wrong_key_does_not(model):
    V = model.config.vocab_size
    wm = Watermark(SECRET, gamma=0.25, delta=2.0)
    marked = generate(model, [[0]] * 4, max_new_tokens=200, top_k=40, seed=3, eos_token_id=None, watermark=wm)
    plain = generate(model, [[0]] * 4, max_new_tokens=200, top_k=40, seed=3, eos_token_id=None)
    for m, p in zip(marked, plain, strict=True):
        assert m.tokens != p.tokens
        assert score_ids([0, *m.tokens], wm, V).z > 4
        for key in (b"another-key-entirely", b"correct-horse-battery-staple-7318"):
            assert abs(score_ids([0, *m.tokens], Watermark(key), V).z) < 2
        assert abs(score_ids([0, *p.tokens], wm, V).z) < 2


def test_bias_goes_after_temperature_before_top_k(model):
    V = model.config.vocab_size
    wm = Watermark(SECRET, gamma=0.25, delta=2.0)
    config = GenerationConfig(temperature=0.7, top_k=5, top_p=0.9, watermark=wm).for_model(model.config)
    rows = [SampleRow(config, [1, 2, i]) for i in range(6)]
    logits = torch.randn(6, V, dtype=torch.float32) * 3
    uniforms = [torch.rand((), generator=torch.Generator().manual_seed(r.generator.initial_seed()),
                           dtype=torch.float64) for r in rows]
    got = sample_tokens(logits, rows, config)
    green = torch.stack([torch.zeros(V, dtype=torch.float64).index_fill(0, wm.greenlist([i], V), 1.0)
                         for i in range(6)])
    biased = logits.double() / 0.7 + 2.0 * green
    want = sample_from_logits(filter_logits(biased, 1.0, 5, 0.9), torch.stack(uniforms))
    assert got.tolist() == want.tolist()
    greedy = GenerationConfig(temperature=0, watermark=wm).for_model(model.config)
    greedy_rows = [SampleRow(greedy, [1, 2, i]) for i in range(6)]
    assert sample_tokens(logits, greedy_rows, greedy).tolist() == (logits.double() + 2.0 * green).argmax(-1).tolist()


def test_unwatermarked_rows_keep_their_tokens_in_a_mixed_batch(model):
    from gpt2.sampling import DecodeBatch

    V = model.config.vocab_size
    plain = GenerationConfig(max_new_tokens=30, top_k=40, seed=5, eos_token_id=None)
    alone = generate(model, [[0], [4]], plain)
    wm_config = GenerationConfig(max_new_tokens=30, top_k=40, seed=5, eos_token_id=None,
                                 watermark=Watermark(SECRET))
    rows = [SampleRow(plain.for_model(model.config), [0], prompt_index=0),
            SampleRow(wm_config.for_model(model.config), [0], prompt_index=1),
            SampleRow(plain.for_model(model.config), [4], prompt_index=2)]
    batch = DecodeBatch(model)
    batch.admit(rows)
    while batch.rows:
        for row, token in zip(batch.rows, batch.sample().tolist(), strict=True):
            row.add(token)
        batch.drop_finished()
        if batch.rows:
            batch.step()
    assert rows[0].tokens == alone[0].tokens and rows[2].tokens == alone[1].tokens
    assert score_ids([0, *rows[1].tokens], Watermark(SECRET), V).green > 15


# ---- the detector and the commands ----

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, model, tok):
    directory = tmp_path_factory.mktemp("wm-ck")
    model.save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def test_detector_scores_saves_and_never_stores_the_key(tmp_path, checkpoint, monkeypatch):
    from gpt2.checkpoint import load_tokenizer

    monkeypatch.setenv("GPT2_WATERMARK_KEY", SECRET)
    tok = load_tokenizer(checkpoint)
    model = GPT.from_pretrained(checkpoint).eval()
    wm = Watermark(SECRET)
    marked = generate(model, [[tok.eot_token_id]] * 3, max_new_tokens=200, top_k=40, seed=1, eos_token_id=None,
                      watermark=wm, tokenizer=tok)
    plain = generate(model, [[tok.eot_token_id]] * 3, max_new_tokens=200, top_k=40, seed=1, eos_token_id=None,
                     tokenizer=tok)
    det = PROVENANCE_DETECTORS["watermark"](str(checkpoint))
    z_marked, z_plain = det.statistics([s.text for s in marked]), det.statistics([s.text for s in plain])
    assert (z_marked > 4).all() and (np.abs(z_plain) < 2.5).all()
    assert det.predict([s.text for s in marked]).tolist() == [1, 1, 1]
    det.save(tmp_path / "det")
    assert SECRET not in (tmp_path / "det" / "detector.json").read_text()
    loaded = WatermarkDetector.load(tmp_path / "det", device="cpu")
    np.testing.assert_allclose(loaded.statistics([marked[0].text]), z_marked[:1])
    assert type(load_detector(tmp_path / "det", device="cpu")) is WatermarkDetector  # the generic loader too


def written_files(root):
    return [p for p in root.rglob("*") if p.is_file()]


def test_commands_watermark_end_to_end_and_keep_the_key_secret(tmp_path, checkpoint, monkeypatch, capsys,
                                                              caplog):
    monkeypatch.delenv("GPT2_WATERMARK_KEY", raising=False)
    key_file = tmp_path / "key.txt"
    key_file.write_text(SECRET + "\n")
    ck = str(checkpoint)
    base = ["generate", "-m", ck, "--device", "cpu", "-n", "200", "--seed", "2", "--no-eos"]
    assert main([*base, "--watermark-key-file", str(key_file), ""]) == 0
    marked = capsys.readouterr()
    text = marked.out.split("\n", 1)[1].rstrip("\n")
    (tmp_path / "text.txt").write_text(text)
    assert main(["detect", "watermark", "-m", ck, "--watermark-key-file", str(key_file), str(text)]) == 0
    detected = capsys.readouterr()
    result = json.loads(detected.out)
    assert result["watermarked"] and result["z"] > 4 and result["scored"] > 50

    monkeypatch.setenv("GPT2_WATERMARK_KEY", SECRET)  # the variable, for outputs
    out = tmp_path / "outputs"
    assert main(["outputs", "-m", ck, "--device", "cpu", "--watermark", "--n", "3", "--max-new-tokens", "60",
                 "--seed", "1", "--no-progress", "--out", str(out)]) == 0
    made = capsys.readouterr()
    manifest = json.loads(next(out.glob("*.manifest.json")).read_text())
    assert manifest["watermark"] == {"gamma": 0.25, "delta": 2.0, "context_width": 1, "seeding": "hmac-sha256"}
    assert main(["detect", "watermark", "-m", ck, "--jsonl", str(next(out.glob("*.train.jsonl")))]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and all(r["z"] > 2 for r in rows)
    # resuming without the watermark is another run, refused
    assert main(["outputs", "-m", ck, "--device", "cpu", "--n", "3", "--max-new-tokens", "60", "--seed", "1",
                 "--no-progress", "--out", str(out)]) == 2
    refused = capsys.readouterr()
    assert "watermark" in refused.err

    shown = [marked.out, marked.err, detected.out, detected.err, made.out, made.err, refused.err, caplog.text]
    assert not any(SECRET in s for s in shown)
    for path in written_files(out):
        assert SECRET.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("args, message", [
    (["generate", "--watermark", "x"], "no watermark key: pass --watermark-key-file FILE or set $GPT2_WATERMARK_KEY"),
    (["generate", "--watermark-key-file", "{missing}", "x"], "watermark key file {missing}: not found"),
    (["generate", "--watermark-key-file", "{empty}", "x"], "watermark key file {empty}: empty"),
    (["generate", "--watermark-key-file", "{short}", "x"], "watermark key must hold at least 8 bytes"),
    (["generate", "--watermark-key-file", "{key}", "--watermark-gamma", "1", "x"], "gamma must be in (0, 1)"),
    (["generate", "--watermark-key-file", "{key}", "--watermark-delta", "-2", "x"], "delta must be"),
    (["generate", "--watermark-key-file", "{key}", "--watermark-context", "0", "x"], "context width"),
    (["outputs", "-m", "{ck}", "--watermark", "--n", "1", "--out", "{out}"], "no watermark key"),
    (["detect", "watermark", "-m", "{ck}", "x"], "no watermark key"),
    (["detect", "watermark", "-m", "{ck}", "--watermark-key-file", "{key}"], "give a text"),
])
def test_bad_keys_and_arguments_give_one_line(tmp_path, checkpoint, monkeypatch, capsys, args, message):
    monkeypatch.delenv("GPT2_WATERMARK_KEY", raising=False)
    (tmp_path / "empty").write_text("  \n")
    (tmp_path / "short").write_text("abc\n")
    (tmp_path / "key").write_text(SECRET)
    paths = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "short": tmp_path / "short",
             "key": tmp_path / "key", "ck": checkpoint, "out": tmp_path / "out"}
    args = [a.format(**paths) for a in args]
    if args[0] == "generate":
        args[1:1] = ["-m", str(checkpoint), "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(**paths) in err and SECRET not in err
