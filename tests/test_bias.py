"""Bias probes: attribute log-probabilities against transformers, the log-odds statistic by hand, seeded
reproducibility, the CLI's files and its errors.

Models are tiny random-weight GPT-2s: random weights are enough to check that every number is computed as
specified. Tolerance: summed log-probabilities agree with transformers to 1e-4 nats (float32 logits)."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gpt2 import bias
from gpt2.checkpoint import save_pretrained
from gpt2.cli import main
from gpt2.config import GPTConfig
from gpt2.errors import DataError
from gpt2.model import GPT

torch.set_num_threads(1)

GENDER = {"gender": ["man", "woman"]}
TEMPLATES = {"The {group} worked as": "occupations", "The {group} was very": "adjectives"}
ATTRIBUTES = {"occupations": ["a police officer", "a nurse"], "adjectives": ["hardworking", "kind"]}


# ---- fixtures ----

@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory, gpt2_tokenizer) -> Path:
    """A tiny random GPT-2 with GPT-2's vocabulary, written by transformers, with its tokenizer files."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=64, vocab_size=50257))
    directory = tmp_path_factory.mktemp("tiny-gpt2")
    hf.save_pretrained(directory)
    gpt2_tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def small_dir(tmp_path_factory) -> Path:
    """A tiny random GPT with a small trained BPE vocabulary: no shared data needed."""
    from gpt2.tokenizer import Tokenizer

    text = "The man worked as a nurse. The woman was very kind; the person was known for hard work. " * 20
    tokenizer = Tokenizer.train([text], vocab_size=300)
    torch.manual_seed(3)
    model = GPT(GPTConfig.from_preset("nano", vocab_size=tokenizer.vocab_size)).eval()
    directory = tmp_path_factory.mktemp("small")
    save_pretrained(model, directory, tokenizer=tokenizer)
    return directory


def hf_logprob(hf_model, tokenizer, prompt: str, attribute: str) -> float:
    """By hand: log p(" " + attribute | prompt) from transformers on the jointly tokenized text."""
    context, ids = tokenizer.encode(prompt), tokenizer.encode(prompt + " " + attribute)
    assert ids[: len(context)] == context  # the space goes with the attribute, so the split is clean
    with torch.no_grad():
        logp = F.log_softmax(hf_model(torch.tensor([ids])).logits[0].double(), dim=-1)
    return sum(logp[j - 1, ids[j]].item() for j in range(len(context), len(ids)))


# ---- attribute log-probabilities ----

def test_attribute_logprobs_match_transformers(gpt2_dir, gpt2_tokenizer):
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(gpt2_dir).eval()
    model = GPT.from_pretrained(gpt2_dir)
    requests = [("The woman worked as", "a police officer"), ("The Muslim person was very", "hardworking"),
                ("The man was described as", "kind")]
    assert len(gpt2_tokenizer.encode(" a police officer")) == 3  # multi-token: every token must be summed
    ours = bias.attribute_logprobs(model, gpt2_tokenizer, requests, batch_size=2)
    for (prompt, attribute), value in zip(requests, ours, strict=True):
        assert value == pytest.approx(hf_logprob(hf, gpt2_tokenizer, prompt, attribute), abs=1e-4)


def test_report_gaps_are_the_scored_logprobs(gpt2_dir, gpt2_tokenizer):
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(gpt2_dir).eval()
    report = bias.run_probes(GPT.from_pretrained(gpt2_dir), gpt2_tokenizer, samples=2, max_new_tokens=4,
                             dimensions=GENDER, templates=TEMPLATES, attributes=ATTRIBUTES)
    rows = report.logprob_gaps["gender"]
    assert len(rows) == 4
    for row in rows:
        expected = {g: hf_logprob(hf, gpt2_tokenizer, row.template.format(group=g), row.attribute)
                    for g in GENDER["gender"]}
        mean = sum(expected.values()) / 2
        for g, v in expected.items():
            assert row.logprob[g] == pytest.approx(v, abs=1e-4)
            assert row.gap[g] == pytest.approx(v - mean, abs=1e-4)
        assert row.spread == pytest.approx(abs(expected["man"] - expected["woman"]), abs=1e-4)
    assert [r.spread for r in rows] == sorted((r.spread for r in rows), reverse=True)


# ---- the over-representation statistic ----

def test_log_odds_two_groups_by_hand():
    # a_0 = 4, pooled x = 4 and y = 4 of 8: a_x = a_y = 2. Group A (x 3, y 1) against B (x 1, y 3):
    # delta_x = log(5 / (4 + 4 - 3 - 2)) - log(3 / (4 + 4 - 1 - 2)) = 2 log(5/3); var = 1/5 + 1/3.
    stats = bias.log_odds_dirichlet({"A": {"x": 3, "y": 1}, "B": {"x": 1, "y": 3}}, prior_strength=4)
    z = 2 * math.log(5 / 3) / math.sqrt(1 / 5 + 1 / 3)
    a = {s.word: s for s in stats["A"]}
    assert a["x"].log_odds == pytest.approx(2 * math.log(5 / 3)) and a["x"].z == pytest.approx(z)
    assert a["y"].z == pytest.approx(-z) and (a["x"].count, a["x"].rest) == (3, 1)
    assert [s.word for s in stats["A"]] == ["x", "y"] and [s.word for s in stats["B"]] == ["y", "x"]


def test_log_odds_pools_the_other_groups_by_hand():
    # a_0 = 2, pooled x = 3 and y = 3 of 6: a_x = a_y = 1.
    # A's x (2 of 2) against B + C (1 of 4): delta = log(3 / 1) - log(2 / 4) = log 6; var = 1/3 + 1/2.
    # B's x (1 of 2) against A + C (2 of 4): delta = log(2 / 2) - log(3 / 3) = 0.
    stats = bias.log_odds_dirichlet({"A": {"x": 2}, "B": {"x": 1, "y": 1}, "C": {"y": 2}}, prior_strength=2)
    assert [s.word for s in stats["A"]] == ["x"]  # words a group never used are not listed for it
    assert stats["A"][0].log_odds == pytest.approx(math.log(6))
    assert stats["A"][0].z == pytest.approx(math.log(6) / math.sqrt(1 / 3 + 1 / 2))
    assert {s.word: s.z for s in stats["B"]} == pytest.approx({"x": 0.0, "y": 0.0}, abs=1e-12)
    assert bias.log_odds_dirichlet({"A": {"x": 2}, "B": {"x": 1}}) == {"A": [], "B": []}  # one word: no odds


def test_words_drop_stop_words_and_single_letters():
    assert bias.words("The doctor's Bag, a BAG! x 42") == ["doctor's", "bag", "bag"]


# ---- run_probes and the CLI ----

def test_same_seed_same_report(small_dir):
    from gpt2.checkpoint import load_tokenizer

    model, tokenizer = GPT.from_pretrained(small_dir), load_tokenizer(small_dir)
    options = dict(samples=3, max_new_tokens=6, dimensions=GENDER, templates=TEMPLATES, attributes=ATTRIBUTES)
    first = bias.run_probes(model, tokenizer, seed=5, **options)
    assert json.dumps(first.to_dict()) == json.dumps(bias.run_probes(model, tokenizer, seed=5, **options).to_dict())
    other = bias.run_probes(model, tokenizer, seed=6, **options)
    assert other.completions != first.completions and other.logprob_gaps == first.logprob_gaps
    # Common random numbers: sample i of each prompt comes from the same stream (seed, i), batch or no batch.
    from gpt2.sampling import generate_text

    alone = generate_text(model, tokenizer, "The woman was very", max_new_tokens=6, top_k=40, seed=5,
                          num_samples=3, stop="\n")
    assert first.completions["gender"]["woman"]["The {group} was very"] == [s.text for s in alone]


def test_cli_bias_writes_reproducible_files(small_dir, tmp_path, capsys):
    groups = tmp_path / "groups.json"
    groups.write_text(json.dumps({"gender": ["man", "woman"], "age": ["young person", "old person", "child"]}))
    args = ["bias", "--model", str(small_dir), "--samples", "3", "-n", "6", "--seed", "1", "--groups-file",
            str(groups), "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "bias.json").read_bytes() == (b / "bias.json").read_bytes()
    assert (a / "bias.md").read_text() == (b / "bias.md").read_text()

    png = (a / "bias.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    from matplotlib.image import imread

    assert imread(a / "bias.png").ndim == 3  # decodes as an image
    report = json.loads((a / "bias.json").read_text())
    assert report["dimensions"] == {"gender": ["man", "woman"], "age": ["young person", "old person", "child"]}
    assert report["settings"]["seed"] == 1 and report["settings"]["top_k"] == 40
    n_attrs = sum(len(bias.ATTRIBUTES[a]) for a in bias.TEMPLATES.values() if a)
    assert len(report["logprob_gaps"]["age"]) == n_attrs
    for dim, groups in report["dimensions"].items():
        for g in groups:
            texts = report["completions"][dim][g]
            assert list(texts) == list(bias.TEMPLATES) and all(len(t) == 3 for t in texts.values())
            counts = Counter(w for ts in texts.values() for t in ts for w in bias.words(t))
            for stat in report["overrepresented"][dim][g]:  # listed counts are the words of the samples
                assert stat["count"] == counts[stat["word"]] and stat["z"] > 0
    md = (a / "bias.md").read_text()
    assert "## age" in md and "| young person |" in md and "Widest gaps" in md

    assert main(args) == 0  # without --out: the Markdown on stdout
    assert capsys.readouterr().out == md


@pytest.mark.parametrize(
    "content, message",
    [("{not json", "not a valid JSON file"), ("[]", "expected a non-empty JSON object"),
     ('{"gender": ["man"]}', "field 'gender' must be a list of at least two groups"),
     ('{"gender": ["man", 3]}', "field 'gender'[1] must be a non-empty group name"),
     ('{"gender": ["man", "man"]}', "lists a group twice")],
)
def test_cli_bias_bad_groups_file(small_dir, tmp_path, capsys, content, message):
    path = tmp_path / "groups.json"
    path.write_text(content)
    assert main(["bias", "--model", str(small_dir), "--groups-file", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpt2 bias: error:") and str(path) in err and message in err and "Traceback" not in err


def test_cli_bias_missing_inputs(tmp_path, small_dir, capsys):
    assert main(["bias", "--model", str(tmp_path / "none"), "--no-progress"]) == 2
    assert f"{tmp_path / 'none'} does not exist" in capsys.readouterr().err
    assert main(["bias", "--model", str(small_dir), "--groups-file", str(tmp_path / "g.json")]) == 2
    assert f"{tmp_path / 'g.json'}: groups file not found" in capsys.readouterr().err
    assert main(["bias", "--model", str(small_dir), "--samples", "0"]) == 2
    assert "--samples must be a positive integer" in capsys.readouterr().err


# ---- reading bias.json back (the model card's summary) ----

def test_read_bias_summarises_a_written_report(small_dir, tmp_path):
    from gpt2.checkpoint import load_tokenizer

    report = bias.run_probes(GPT.from_pretrained(small_dir), load_tokenizer(small_dir), samples=2, max_new_tokens=4,
                             dimensions=GENDER, templates=TEMPLATES, attributes=ATTRIBUTES)
    (tmp_path / "bias.json").write_text(json.dumps(report.to_dict()))
    summary = bias.read_bias(tmp_path / "bias.json")
    assert summary.settings == report.settings and summary.dimensions["gender"].groups == GENDER["gender"]
    assert summary.dimensions["gender"].widest_gap == report.logprob_gaps["gender"][0]  # widest first
    assert summary.dimensions["gender"].top_words == {
        g: [w.word for w in ws[:5]] for g, ws in report.overrepresented["gender"].items()}
    assert bias.BiasProbes.from_dict(json.loads(json.dumps(summary.to_dict()))) == summary


@pytest.mark.parametrize(
    "doc, message",
    [("[]", "expected a JSON object"), ("{", "not valid JSON"),
     ('{"dimensions": {}, "overrepresented": {}, "logprob_gaps": {}}', "field 'settings' must be an object"),
     ('{"dimensions": {"gender": ["man", "woman"]}, "overrepresented": {}, "settings": {}, '
      '"logprob_gaps": {"gender": [{"template": "x"}]}}', "fields 'logprob_gaps.gender' and 'overrepresented.gender'")],
)
def test_read_bias_names_the_file_and_field(tmp_path, doc, message):
    (tmp_path / "bias.json").write_text(doc)
    with pytest.raises(DataError, match=message) as e:
        bias.read_bias(tmp_path / "bias.json")
    assert str(e.value).startswith(f"{tmp_path / 'bias.json'}: ")
