"""Model cards: facts read from a training run laid out as `gpt2 train` and `gpt2 prepare` write it, checked
against independent computations (transformers' parameter count, hashlib's sha256, the numbers written
into the test's own results.json); unknown facts say "not recorded"; bad inputs name the file and field."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

from gpt2.card import NOT_RECORDED, Card, build_card, render_markdown
from gpt2.checkpoint import save_pretrained
from gpt2.cli import main
from gpt2.config import GPTConfig
from gpt2.data.manifest import Manifest, read_manifest
from gpt2.errors import DataError
from gpt2.evaluation.report import read_results
from gpt2.evaluation.report import write_results as write_eval_results
from gpt2.evaluation.result import TaskResult
from gpt2.model import GPT

torch.set_num_threads(1)

TEXT = "the quick brown fox jumps over the lazy dog.\n\nhello world, hello again.\n\n" * 30


@pytest.fixture(scope="module")
def tokenizer():
    from gpt2.tokenizer import Tokenizer

    return Tokenizer.train([TEXT], vocab_size=300)


def tiny_model(tokenizer) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig.from_preset("nano", vocab_size=tokenizer.vocab_size)).eval()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tokenizer) -> Path:
    """A run directory as `gpt2 train` leaves it, reading data as `gpt2 prepare` writes it."""
    from gpt2.data import prepare
    from gpt2.training import checkpointing
    from gpt2.training.config import TrainConfig

    root = tmp_path_factory.mktemp("card")
    (root / "corpus.txt").write_text(TEXT)
    tokenizer.save_pretrained(root / "tok")
    prepare([root / "corpus.txt"], root / "tok", root / "data", val_fraction=0.2, txt_split="paragraph",
            workers=1, progress=False)
    run = root / "run"
    config = TrainConfig(data=str(root / "data"), out=str(run), model_size="nano", max_steps=10, lr=3e-4, seed=7)
    config.save(run)
    state = {"step": 10, "tokens": 5120, "val_loss": 4.25, "world_size": 1, "train_config": config.to_dict(),
             "optimizer": {"state": {}, "param_groups": []}}
    metadata = {"step": 10, "tokens": 5120, "val_loss": 4.25, "data": str(root / "data"), "init_from": None}
    checkpointing.save_checkpoint(run, 10, tiny_model(tokenizer), tokenizer, state, metadata)
    return run


def hf_parameter_count(directory: Path) -> int:
    from transformers import GPT2LMHeadModel

    return GPT2LMHeadModel.from_pretrained(directory).num_parameters()  # tied embedding counted once


def write_results(path: Path, parameters: int | None) -> None:
    path.write_text(json.dumps({
        "model": "tiny", "model_parameters": parameters,
        "tasks": {"wikitext2": {"metrics": {"word_perplexity": 123.456, "token_perplexity": 77.0}, "n_examples": 7},
                  "lambada": {"metrics": {"accuracy_full_word": 0.25}, "n_examples": 40}},
    }))


def test_card_of_a_training_run(run_dir, tmp_path, capsys):
    checkpoint = run_dir / "checkpoint"
    n = hf_parameter_count(checkpoint)
    write_results(run_dir / "results.json", n)
    try:
        assert main(["card", "--model", str(run_dir), "--out", str(tmp_path)]) == 0  # the run dir: its checkpoint
    finally:
        (run_dir / "results.json").unlink()
    facts = json.loads((tmp_path / "model_card.json").read_text())
    md = (tmp_path / "model_card.md").read_text()
    assert md == render_markdown(Card.from_dict(facts))  # the JSON holds every fact the Markdown shows
    assert Card.from_dict(facts).to_dict() == facts
    for section in ("Model details", "Intended uses", "Out-of-scope uses", "Training data", "Evaluation results",
                    "Limitations and biases"):
        assert f"\n## {section}\n" in md

    assert facts["model"]["parameters"] == n and f"**Parameters:** {n:,} " in md
    assert facts["model"]["n_layer"] == 2 and facts["model"]["vocab_size"] == 300
    t = facts["training"]
    assert (t["step"], t["tokens"], t["val_loss"], t["world_size"]) == (10, 5120, 4.25, 1)
    assert t["from_scratch"] is True and "random weights (trained from scratch)" in md
    assert t["config"]["lr"] == 3e-4 and t["config"]["seed"] == 7 and "| lr | 0.0003 |" in md
    assert Path(t["run_dir"]) == run_dir
    assert "| seq_len | not set: the context length |" in md
    step_dir = build_card(run_dir / "checkpoints" / "step_00000010")  # the run is found from any checkpoint
    assert Path(step_dir.training.run_dir) == run_dir and step_dir.training.step == 10

    manifest = json.loads((run_dir.parent / "data" / "manifest.json").read_text())
    data = facts["training_data"]["manifest"]
    sha = hashlib.sha256((run_dir.parent / "corpus.txt").read_bytes()).hexdigest()
    assert data["inputs"][0]["sha256"] == sha and f"`{sha}`" in md
    assert data["train_tokens"] == manifest["splits"]["train"]["tokens"] > 0
    assert data["epochs"] == pytest.approx(5120 / manifest["splits"]["train"]["tokens"])
    assert f"{manifest['splits']['train']['tokens']:,} tokens" in md

    # Figures from the results.json above, beside the paper's 117M numbers (Table 3).
    assert "| wikitext2 | WikiText2 (PPL) | 123.46 | 29.41 | 7 |" in md
    assert "| lambada | LAMBADA (ACC) | 25.00 | 45.99 | 40 |" in md
    assert "| wikitext2 | token_perplexity | 77.0000 | - | 7 |" in md
    assert "Validation loss recorded in training: 4.2500 nats/token" in md

    assert f"**License:** {NOT_RECORDED}" in md and f"**Developed by:** {NOT_RECORDED}" in md
    assert {"model.license", "model.developed_by", "bias_probes"} <= set(facts["not_recorded"])
    assert "evaluation" not in facts["not_recorded"] and "training.step" not in facts["not_recorded"]
    assert str(run_dir / "train_config.json") in facts["sources"]


def test_card_of_a_bare_checkpoint_says_not_recorded(tmp_path, tokenizer):
    save_pretrained(tiny_model(tokenizer), tmp_path / "ck", tokenizer=tokenizer)
    facts = build_card(tmp_path / "ck")
    md = render_markdown(facts)
    assert facts.model.parameters == hf_parameter_count(tmp_path / "ck")
    for fact in ("training.step", "training.tokens", "training.val_loss", "training.config", "training.init_from",
                 "training_data", "evaluation", "bias_probes"):
        assert fact in facts.not_recorded
    assert f"**Optimizer steps:** {NOT_RECORDED}" in md and f"**Initialised from:** {NOT_RECORDED}" in md
    assert f"**Dataset:** {NOT_RECORDED}" in md and f"Zero-shot benchmarks: {NOT_RECORDED}" in md
    assert f"**Training settings:** {NOT_RECORDED}" in md


def test_card_results_flag_and_moved_data(tmp_path, tokenizer):
    model = tiny_model(tokenizer)
    save_pretrained(model, tmp_path / "ck", tokenizer=tokenizer,
                    metadata={"step": 3, "data": str(tmp_path / "gone"), "init_from": "gpt2"})
    write_results(tmp_path / "r.json", model.num_parameters() + 1)
    facts = build_card(tmp_path / "ck", results=[tmp_path / "r.json", tmp_path / "r.json"])
    md = render_markdown(facts)
    assert len(facts.evaluation) == 1  # the same file given twice is read once
    assert "not this checkpoint's" in md  # results of another model are flagged
    assert facts.training.init_from == "gpt2" and "**Initialised from:** gpt2" in md
    assert facts.training_data.manifest is None and str(tmp_path / "gone" / "manifest.json") in md


def test_card_summarises_bias_json(tmp_path, tokenizer):
    save_pretrained(tiny_model(tokenizer), tmp_path, tokenizer=tokenizer)
    (tmp_path / "bias.json").write_text(json.dumps({
        "settings": {"samples": 5, "seed": 2},
        "dimensions": {"gender": ["man", "woman"]},
        "overrepresented": {"gender": {"man": [{"word": "beer", "z": 2.0}], "woman": []}},
        "logprob_gaps": {"gender": [{"template": "The {group} worked as", "attribute": "a nurse",
                                     "logprob": {"man": -5.0, "woman": -3.0}, "gap": {"man": -1.0, "woman": 1.0},
                                     "spread": 2.0}]},
    }))
    card = build_card(tmp_path)  # found beside the checkpoint
    md = render_markdown(card)
    assert '"a nurse" is 2.00 nats more likely for "woman" than for "man"' in md
    assert "man: beer; woman: -" in md and "(5 samples per template and group, seed 2)" in md
    assert card.to_dict()["bias_probes"]["settings"] == {"samples": 5, "seed": 2}  # as the file records them
    assert render_markdown(Card.from_dict(json.loads(json.dumps(card.to_dict())))) == md


@pytest.mark.parametrize(
    "content, message",
    [("{oops", "not valid JSON"), ("[1]", "expected a JSON object"),
     ('{"tasks": {}}', "field 'tasks' must be a non-empty object"),
     ('{"tasks": {"ptb": {"metrics": {"word_perplexity": "high"}}}}', "field 'tasks.ptb.metrics.word_perplexity'"),
     ('{"tasks": {"ptb": {"metrics": {}, "n_examples": -1}}}', "field 'tasks.ptb.n_examples'"),
     ('{"tasks": {"ptb": {"score": 1}}}', "field 'tasks.ptb.metrics'"),
     ('{"tasks": {"ptb": {"metrics": {}}}, "paper_size": "2B"}', "field 'paper_size' must be one of 117M")],
)
def test_cli_card_malformed_results(tmp_path, tokenizer, capsys, content, message):
    save_pretrained(tiny_model(tokenizer), tmp_path / "ck", tokenizer=tokenizer)
    (tmp_path / "results.json").write_text(content)
    assert main(["card", "--model", str(tmp_path / "ck"), "--results", str(tmp_path / "results.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpt2 card: error:") and str(tmp_path / "results.json") in err and message in err
    assert "Traceback" not in err


def test_cli_card_bad_inputs(tmp_path, tokenizer, capsys):
    assert main(["card", "--model", str(tmp_path / "none")]) == 2
    assert f"{tmp_path / 'none'} does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["card", "--model", str(tmp_path / "empty")]) == 2
    assert f"{tmp_path / 'empty'}: no config.json" in capsys.readouterr().err
    save_pretrained(tiny_model(tokenizer), tmp_path / "ck", tokenizer=tokenizer)
    assert main(["card", "--model", str(tmp_path / "ck"), "--results", str(tmp_path / "missing.json")]) == 2
    assert f"{tmp_path / 'missing.json'}: file not found" in capsys.readouterr().err
    (tmp_path / "ck" / "bias.json").write_text('{"dimensions": []}')
    assert main(["card", "--model", str(tmp_path / "ck")]) == 2
    assert f"{tmp_path / 'ck' / 'bias.json'}: field 'dimensions' must be an object" in capsys.readouterr().err


def test_a_found_results_json_of_something_else_is_skipped_but_a_given_one_is_checked(run_dir, tmp_path):
    """A results.json beside the checkpoint that `gpt2 eval` did not write (a benchmark's, say) is not an
    evaluation: the card leaves it out. The same file given with --results is an error naming it."""
    other = run_dir / "results.json"
    other.write_text(json.dumps({"machine": {}, "results": [{"recipe": "x", "val_loss": 5.2}]}))
    try:
        facts = build_card(run_dir / "checkpoint")
        assert facts.evaluation == [] and str(other) not in facts.sources
        with pytest.raises(DataError, match="tasks"):
            build_card(run_dir / "checkpoint", results=[str(other)])
    finally:
        other.unlink()


# ---- the readers of other commands' files, beside their writers ----

def test_manifest_reads_back_as_written(run_dir):
    data = run_dir.parent / "data"
    written = json.loads((data / "manifest.json").read_text())
    manifest = read_manifest(data)
    assert manifest.to_dict() == written and list(manifest.to_dict()) == list(written)  # same keys, same order
    assert read_manifest(data / "manifest.json") == manifest  # the file itself will do too
    assert manifest.splits["train"].tokens == written["splits"]["train"]["tokens"] and manifest.dataset is None
    # a corpus streamed from the Hub: a "dataset" entry, and inputs without a sha256 (no LFS)
    hub = {**written, "txt_split": None, "inputs": [{"path": "hf://datasets/x/y@abc/a.parquet", "bytes": 9,
                                                     "sha256": None, "documents": 3}],
           "dataset": {"name": "x", "repo": "x/y", "revision": "main", "commit": "abc", "partial": False,
                       "files_used": 1, "files_in_corpus": 2, "max_tokens": None}}
    assert Manifest.from_dict(hub).to_dict() == hub


@pytest.mark.parametrize(
    "change, message",
    [(lambda m: m["splits"]["train"].update(tokens="many"), "field 'splits.train.tokens' must be an integer"),
     (lambda m: m["splits"].pop("val"), "field 'splits.val' is missing"),
     (lambda m: m["tokenizer"].pop("vocab_size"), "field 'tokenizer.vocab_size' is missing"),
     (lambda m: m["inputs"][0].update(bytes=True), "field 'inputs[0].bytes' must be an integer"),
     (lambda m: m["splits"]["train"]["shards"][0].update(sha256=1), "field 'splits.train.shards[0].sha256'"),
     (lambda m: m.update(val_fraction="0.2"), "field 'val_fraction' must be an integer or a number"),
     (lambda m: m.update(version=2), "field 'version' must be 1")],
)
def test_a_malformed_manifest_names_the_file_and_field(run_dir, tmp_path, change, message):
    doc = json.loads((run_dir.parent / "data" / "manifest.json").read_text())
    change(doc)
    (tmp_path / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=re.escape(message)) as e:
        read_manifest(tmp_path)
    assert str(e.value).startswith(f"{tmp_path / 'manifest.json'}: ")


def test_a_card_of_a_run_whose_manifest_is_malformed_names_it(tmp_path, tokenizer):
    doc = {"format": "gpt2-token-shards", "version": 1,
           "tokenizer": {"name": "t", "dir": "tokenizer", "vocab_size": 300, "eot_token_id": 0}}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "manifest.json").write_text(json.dumps(doc))
    save_pretrained(tiny_model(tokenizer), tmp_path / "ck", tokenizer=tokenizer,
                    metadata={"data": str(tmp_path / "data")})
    message = f"{tmp_path / 'data' / 'manifest.json'}: field 'dtype' is missing"
    with pytest.raises(DataError, match=re.escape(message)):
        build_card(tmp_path / "ck")


def test_results_read_back_as_written(tmp_path):
    result = TaskResult("ptb", {"word_perplexity": 40.5}, n_examples=10, nll=5.0, tokens=20)
    path, _ = write_eval_results([result], tmp_path, "gpt2", 124_439_808, extra={"dtype": "float32"})
    results = read_results(path)
    written = json.loads(path.read_text())
    assert results.to_dict() == written and list(results.to_dict()) == list(written)
    assert (results.model, results.paper_size, results.extra) == ("gpt2", "117M", {"dtype": "float32"})
    assert results.tasks["ptb"] == result.to_dict()


@pytest.mark.parametrize(
    "doc, message",
    [({"tasks": {"ptb": {"metrics": {"x": 1}}}, "model_parameters": 0}, "field 'model_parameters' must be a positive"),
     ({"tasks": {"ptb": {"metrics": {"x": 1}}}, "model": 3}, "field 'model' must be a string"),
     ({"tasks": {"ptb": {"metrics": {"x": float("inf")}}}}, "field 'tasks.ptb.metrics.x' must be a finite number"),
     ({"tasks": []}, "field 'tasks' must be a non-empty object")],
)
def test_malformed_results_name_the_file_and_field(tmp_path, doc, message):
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(DataError, match=re.escape(message)) as e:
        read_results(tmp_path / "results.json")
    assert str(e.value).startswith(f"{tmp_path / 'results.json'}: ")
