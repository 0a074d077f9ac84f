"""Detection under misuse: every attack is deterministic for a seed and does what it says, the bootstrap
intervals hold the point estimate, and `gpt2 detect robustness` runs end to end on a tiny random model
(fine-tune on a topic slice of the embedded corpus, sampler shifts, edits, length) with the watermark
beside the content detectors, its key in no output or file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gpt2.cli import main
from gpt2.detection import DetectorError
from gpt2.detection.attacks import (
    ATTACKS,
    FineTuned,
    Homoglyph,
    LengthBucket,
    Paraphrase,
    SamplerShift,
    SentenceShuffle,
    TextAttack,
    Truncation,
    Whitespace,
    WordDeletion,
    WordSwap,
    default_attacks,
    make_attack,
)
from gpt2.detection.robustness import bootstrap

pytestmark = pytest.mark.usefixtures("one_thread")
SECRET = "robustness-run-secret-key-5521"
TEXT = ("The quick brown fox jumps over the lazy dog. A second sentence follows here! Is this the third one? "
        "Yes, and a fourth sentence closes the paragraph.\nThen a new line opens another idea.")
CORPUS = ["the cat sat on the mat. a dog ran in the park; the sun is warm, and so is the sand. ",
          "ships sail at dawn; the harbour is quiet. gulls cry over the water and the nets dry. ",
          "def add(a, b):\n    return a + b\n\nclass Stack:\n    def push(self, x):\n        self.items.append(x)\n"]


@pytest.fixture(scope="module")
def tokenizer():
    from gpt2.tokenizer import Tokenizer

    return Tokenizer.train([t * 20 for t in CORPUS], vocab_size=300)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer) -> Path:
    from gpt2 import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, n_positions=64, vocab_size=tokenizer.vocab_size,
                          bos_token_id=tokenizer.eot_token_id, eos_token_id=tokenizer.eot_token_id))
    with torch.no_grad():
        model.transformer.wte.weight.mul_(3)
    directory = tmp_path_factory.mktemp("robust-ck")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


EDITS = [WordDeletion(0.05), WordDeletion(0.2), WordSwap(0.1), WordSwap(0.2), SentenceShuffle(), Truncation(16),
         Homoglyph(0.3), Whitespace(0.2), LengthBucket(8, 16)]


@pytest.mark.parametrize("attack", EDITS, ids=lambda a: a.label)
def test_every_attack_is_deterministic_for_a_seed(attack, tokenizer):
    texts = [TEXT, TEXT.upper(), CORPUS[0] * 3]
    assert len(attack.apply(["a b c d e f g h i j", "", " "], seed=1, tokenizer=tokenizer)) == 3  # no crash
    once = attack.apply(texts, seed=7, tokenizer=tokenizer)
    assert once == attack.apply(texts, seed=7, tokenizer=tokenizer)
    assert once[:1] == attack.apply(texts[:1], seed=7, tokenizer=tokenizer)  # text i: its own stream
    assert once[0] != TEXT
    if not isinstance(attack, Truncation):  # truncation draws nothing
        assert once != attack.apply(texts, seed=8, tokenizer=tokenizer)


def test_attacks_do_what_they_say(tokenizer):
    words = TEXT.split()
    deleted = WordDeletion(0.2).apply([TEXT], 0)[0]
    assert len(deleted.split()) == len(words) - round(0.2 * len(words))
    swapped = WordSwap(0.2).apply([TEXT], 0)[0]
    assert sorted(swapped.split()) == sorted(words) and swapped != TEXT
    shuffled = SentenceShuffle().apply([TEXT], 0)[0]
    assert sorted(shuffled.split()) == sorted(words)
    assert len(tokenizer.encode(Truncation(16).apply([TEXT], 0, tokenizer)[0])) <= 16
    glyphs = Homoglyph(1.0).apply(["peace"], 0)[0]
    assert glyphs == "\u0440\u0435\u0430\u0441\u0435" and glyphs != "peace"
    spaced = Whitespace(0.5).apply([TEXT], 0)[0]
    assert spaced.replace("\u200b", "").split() == words and "  " in spaced
    short = LengthBucket(8, 16).apply([TEXT] * 5, 0, tokenizer)
    assert all(8 <= len(tokenizer.encode(t)) <= 16 for t in short)
    assert LengthBucket.sides == ("human", "machine") and WordDeletion.sides == ("machine",)


def test_registry_and_specs(checkpoint, tokenizer):
    assert {"delete", "swap", "shuffle", "truncate", "homoglyph", "whitespace", "paraphrase", "length",
            "finetune", "sampler"} <= set(ATTACKS)
    assert make_attack("delete:0.2").label == "delete-20%"
    assert make_attack("sampler:topk:40->pure").label == "sampler topk:40 -> pure"
    assert make_attack("length:16-32").label == "length-16-32"
    assert isinstance(make_attack("finetune:5"), FineTuned) and make_attack("finetune:5").steps == 5
    with pytest.raises(DetectorError, match="unknown attack 'nope'; choose one of"):
        make_attack("nope")
    with pytest.raises(DetectorError, match="cannot read 'x'"):
        make_attack("delete:x")
    labels = [a.label for a in default_attacks(tokens=128)]
    assert {"delete-5%", "delete-10%", "delete-20%", "swap-5%", "swap-20%", "shuffle", "truncate-64",
            "homoglyph-10%", "whitespace-20%", "sampler topk:40 -> topp:0.95", "sampler topk:40 -> pure",
            "sampler topp:0.95 -> topk:40", "length-64-128"} <= set(labels)
    assert isinstance(default_attacks(tokens=128)[1], SamplerShift)

    class Reverse(TextAttack):  # a new attack is one small class
        name = "reverse-test"

        def edit(self, text, rng, tokenizer):
            return text[::-1]

    assert ATTACKS["reverse-test"] is Reverse and Reverse().apply(["abc"], 0) == ["cba"]
    del ATTACKS["reverse-test"]
    para = Paraphrase(str(checkpoint), device="cpu")
    once = para.apply([CORPUS[0]], 3, tokenizer)
    assert once == para.apply([CORPUS[0]], 3, tokenizer) and once[0] != CORPUS[0]


def test_bootstrap_intervals():
    rng = np.random.default_rng(0)
    labels = np.r_[np.zeros(50), np.ones(50)].astype(np.int64)
    scores = rng.normal(labels * 1.5, 1.0)
    out = bootstrap(labels, scores, 0.75, 200, seed=0)
    for name in ("accuracy", "auroc", "tpr_at_1pct_fpr"):
        lo, hi = out[f"{name}_ci"]
        assert lo <= out[name] <= hi and hi - lo < 0.5
    assert out == bootstrap(labels, scores, 0.75, 200, seed=0)
    assert 0.8 < out["auroc"] < 0.95


def test_robustness_command_end_to_end(tmp_path, checkpoint, monkeypatch, capsys):
    human = tmp_path / "human"
    human.mkdir()
    for i, text in enumerate(CORPUS):
        (human / f"{i}.txt").write_text(text * 30)
    key = tmp_path / "key.txt"
    key.write_text(SECRET)
    out = tmp_path / "report"
    attacks = ["finetune", "sampler:topk:40->pure", "sampler:topp:0.95->topk:40", "delete:0.1", "swap:0.2",
               "shuffle", "truncate:16", "homoglyph", "whitespace", "length:8-16"]
    args = ["detect", "robustness", "-m", str(checkpoint), "--detectors", "tfidf", "loglik", "--human",
            str(human), "--topic", "json", "--finetune-steps", "2", "--train-pairs", "20", "--test-pairs", "12",
            "--tokens", "32", "--prompt-tokens", "8", "--bootstrap", "20", "--device", "cpu",
            "--watermark-key-file", str(key), "--attacks", *attacks, "--out", str(out), "--no-progress"]
    assert main(args) == 0
    shown = capsys.readouterr()
    result = json.loads((out / "results.json").read_text())
    shifts = list(dict.fromkeys(r["shift"] for r in result["rows"]))
    assert shifts[0] == "none (topk:40, unedited)" and len(shifts) == 1 + len(attacks)
    assert "fine-tuned generator (2 steps)" in shifts
    assert {r["detector"] for r in result["rows"]} == {"tfidf", "loglik", "watermark"}
    for row in result["rows"]:
        assert row["n"] == 24 and row["auroc_ci"][0] <= row["auroc"] <= row["auroc_ci"][1]
    rows = {(r["shift"], r["detector"]): r for r in result["rows"]}
    assert rows[("none (topk:40, unedited)", "watermark")]["auroc"] > 0.95  # 32 tokens, broad distributions
    assert rows[("sampler topp:0.95 -> topk:40", "tfidf")]["trained_on"] == "topp:0.95"
    assert (out / "robustness.png").stat().st_size > 1000
    assert "| shift | tfidf | loglik | watermark |" in (out / "results.md").read_text()
    assert "| shift | tfidf | loglik | watermark |" in shown.out
    assert SECRET not in shown.out + shown.err
    for path in out.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_robustness_bad_arguments_give_one_line(tmp_path, checkpoint, capsys):
    base = ["detect", "robustness", "-m", str(checkpoint), "--out", str(tmp_path / "o"), "--device", "cpu"]
    for extra, message in ((["--attacks", "nope"], "unknown attack 'nope'"),
                           (["--tokens", "60"], "do not fit the generator's 64-token context"),
                           (["--watermark-key-file", str(tmp_path / "missing")], "not found"),
                           (["--topic", "no_such_package", "--attacks", "finetune", "--tokens", "32",
                             "--prompt-tokens", "8"], "no Python files")):
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err
