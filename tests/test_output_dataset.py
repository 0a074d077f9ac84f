"""The output dataset: option parsing, the jsonl schema, equality with `sampling.generate`, resuming after an
exception and after SIGKILL (byte-identical to an uninterrupted run), shards + merge, the human side and
the CLI. Models are tiny random-weight GPT-2s over a 300-token vocabulary trained in the test; the final
LayerNorm's bias is nudged towards <|endoftext|> so that some samples end before max_new_tokens."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gpt2 import output_dataset as outputs
from gpt2.checkpoint import save_pretrained
from gpt2.cli import main
from gpt2.config import GPTConfig
from gpt2.errors import DataError
from gpt2.model import GPT
from gpt2.sampling import generate

MAX_NEW = 12
SPLITS = "6:3:3"
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: threads cost more than they give


@pytest.fixture(scope="module")
def tokenizer():
    from gpt2.tokenizer import Tokenizer

    text = "the cat sat on the mat. a dog ran in the park; the sun is warm, and so is the sand. " * 30
    return Tokenizer.train([text], vocab_size=300)


NUDGE = 1.5  # the final LayerNorm's bias adds this to the <|endoftext|> logit: some samples end early


def build_model(vocab_size: int, eot: int) -> GPT:
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset("nano", vocab_size=vocab_size, n_positions=64)).eval()
    with torch.no_grad():
        e = model.transformer.wte.weight[eot]
        model.transformer.ln_f.bias.copy_(NUDGE * e / e.square().sum())
    return model


@pytest.fixture(scope="module")
def model(tokenizer):
    return build_model(tokenizer.vocab_size, tokenizer.eot_token_id)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer, model) -> Path:
    directory = tmp_path_factory.mktemp("nano")
    save_pretrained(model, directory, tokenizer=tokenizer)
    return directory


def spec(seed: int = 1, splits: str = SPLITS, sampling: str = "topk:40", max_new: int = MAX_NEW):
    return outputs.OutputSpec(name="nano", sampling=outputs.parse_sampling(sampling),
                              splits=outputs.parse_splits(splits), max_new_tokens=max_new, seed=seed)


def files(directory: Path, dataset: str = "nano-k40") -> dict[str, bytes]:
    return {s: (directory / f"{dataset}.{s}.jsonl").read_bytes() for s in outputs.SPLITS}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, model, tokenizer) -> dict[str, bytes]:
    """An uninterrupted single run, batch size 4."""
    out = tmp_path_factory.mktemp("reference")
    outputs.generate_outputs(model, tokenizer, spec(), out, batch_size=4)
    return files(out)


# ---- options ----

@pytest.mark.parametrize("text,suffix,k,p", [("pure", "", None, None), ("topk:40", "-k40", 40, None),
                                             ("topp:0.9", "-p0.9", None, 0.9)])
def test_parse_sampling(text, suffix, k, p):
    s = outputs.parse_sampling(text)
    assert (outputs.sampling_suffix(s), s.top_k, s.top_p, outputs.sampling_name(s)) == (suffix, k, p, text)


@pytest.mark.parametrize("bad", ["topk", "topk:0", "topp:1.5", "greedy", "pure:1", "topk:x"])
def test_parse_sampling_errors(bad):
    with pytest.raises(DataError, match="expected 'pure'"):
        outputs.parse_sampling(bad)


def test_parse_splits():
    assert outputs.parse_splits("250000:5000:5000") == {"train": 250000, "valid": 5000, "test": 5000}
    assert outputs.parse_splits("0.9:0.05:0.05", 101) == {"train": 91, "valid": 5, "test": 5}
    assert sum(outputs.parse_splits("0.34:0.33:0.33", 10).values()) == 10
    assert outputs.parse_splits("1", 7) == {"train": 7}
    for bad, n, message in [("0.5:0.4", 10, "sum to 1"), ("0.5:0.5", None, "--n"), ("10:5:5", 30, "adds up"),
                            ("a:b", None, "numbers"), ("1:2:3:4", None, "1 to 3")]:
        with pytest.raises(DataError, match=message):
            outputs.parse_splits(bad, n)


def test_parse_shard():
    assert outputs.parse_shard("2/4", env={}) == (2, 4)
    assert outputs.parse_shard(None, env={}) == (0, 1)
    assert outputs.parse_shard(None, env={"RANK": "1", "WORLD_SIZE": "3"}) == (1, 3)
    for bad in ("4/4", "1", "-1/2", "a/b"):
        with pytest.raises(DataError, match="i/n"):
            outputs.parse_shard(bad, env={})


def test_shard_ids_cover_every_id_once():
    s = spec(splits="10:7:0")
    for n in (1, 2, 3, 5):
        for split in ("train", "valid"):
            ids = [i for k in range(n) for i in s.shard_ids(split, (k, n))]
            assert ids == list(s.id_range(split))


# ---- the files ----

def test_schema_and_names(reference, tokenizer):
    rows = [json.loads(line) for s in outputs.SPLITS for line in reference[s].decode().splitlines()]
    assert [r["id"] for r in rows] == list(range(12))  # train 0-5, valid 6-8, test 9-11
    for r in rows:
        assert list(r) == ["id", "ended", "length", "text"]
        assert isinstance(r["ended"], bool) and isinstance(r["length"], int) and isinstance(r["text"], str)
        assert r["length"] < MAX_NEW if r["ended"] else r["length"] == MAX_NEW
    assert {r["ended"] for r in rows} == {True, False}  # the nudged model ends some samples
    assert [len(reference[s].decode().splitlines()) for s in outputs.SPLITS] == [6, 3, 3]


def test_samples_equal_generate(reference, model, tokenizer):
    """Sample id k is sample k of `generate` from <|endoftext|> with the same seed and filters."""
    rows = [json.loads(line) for s in outputs.SPLITS for line in reference[s].decode().splitlines()]
    samples = generate(model, [tokenizer.eot_token_id], max_new_tokens=MAX_NEW, top_k=40, num_samples=12,
                       seed=1, tokenizer=tokenizer)
    assert [r["text"] for r in rows] == [s.text for s in samples]
    assert [r["length"] for r in rows] == [len(s.tokens) for s in samples]
    assert [r["ended"] for r in rows] == [s.finish_reason == "eos" for s in samples]


def test_file_names(tmp_path, model, tokenizer):
    for sampling, name in [("pure", "nano"), ("topp:0.9", "nano-p0.9")]:
        outputs.generate_outputs(model, tokenizer, spec(splits="2", sampling=sampling, max_new=4), tmp_path)
        assert (tmp_path / f"{name}.train.jsonl").is_file()
        assert (tmp_path / f"{name}.manifest.json").is_file()
    assert not (tmp_path / "nano.valid.jsonl").exists()  # empty splits are not written


# ---- resuming ----

class Stop(Exception):
    pass


def interrupt_after(k: int):
    count = 0

    def hook(split, ids):
        nonlocal count
        count += 1
        if count == k:
            raise Stop

    return hook


@pytest.mark.parametrize("k", [1, 2, 3])
def test_resume_after_exception_is_identical(tmp_path, model, tokenizer, reference, k):
    with pytest.raises(Stop):
        outputs.generate_outputs(model, tokenizer, spec(), tmp_path, batch_size=4,
                                 on_batch=interrupt_after(k))
    partial = sum(len(b.splitlines()) for b in files(tmp_path).values())
    assert 0 < partial < 12
    result = outputs.generate_outputs(model, tokenizer, spec(), tmp_path, batch_size=3)  # other batches
    assert sum(result.existing.values()) == partial
    assert sum(result.written.values()) == 12 - partial
    assert files(tmp_path) == reference
    again = outputs.generate_outputs(model, tokenizer, spec(), tmp_path)  # complete: nothing to do
    assert sum(again.written.values()) == 0 and files(tmp_path) == reference


def test_auto_batch_size_fits_the_kv_cache_in_the_budget(tmp_path, model, tokenizer, reference, monkeypatch):
    c = model.config
    per_sample = 2 * c.n_layer * c.n_embd * (MAX_NEW + 1) * 4  # keys + values, float32
    assert outputs.auto_batch_size(model, MAX_NEW, budget_bytes=6 * per_sample - 1) == 5
    assert outputs.auto_batch_size(model, MAX_NEW, budget_bytes=per_sample // 2) == 1
    assert outputs.auto_batch_size(model, MAX_NEW, budget_bytes=10**15) == outputs.MAX_AUTO_BATCH
    with torch.device("meta"):  # shapes only
        big = GPT(GPTConfig.from_preset("124M"))  # 75.5 MB of float32 cache per 1,024-position sample
    assert outputs.auto_batch_size(big, 1023) == 2 * 2**30 // (75_497_472) == 28  # the fixed CPU budget
    monkeypatch.setattr("gpt2.output_dataset.generation.AUTO_CACHE_BUDGET", 3 * per_sample)  # where it is read
    result = outputs.generate_outputs(model, tokenizer, spec(), tmp_path)  # batch_size=None: chosen
    assert result.batch_size == 3
    assert files(tmp_path) == reference  # made with batch 4: samples do not depend on the batch


def test_resume_cuts_a_partial_last_line(tmp_path, model, tokenizer, reference):
    with pytest.raises(Stop):
        outputs.generate_outputs(model, tokenizer, spec(), tmp_path, batch_size=4,
                                 on_batch=interrupt_after(1))
    path = tmp_path / "nano-k40.train.jsonl"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 7])  # killed while writing the 4th line
    assert len(path.read_bytes().splitlines()) == 4
    outputs.generate_outputs(model, tokenizer, spec(), tmp_path, batch_size=4)
    assert files(tmp_path) == reference


def test_resume_after_sigkill_is_identical(tmp_path, checkpoint, model, tokenizer, reference):
    """A real kill -9 between (or during) batch writes, then a rerun."""
    script = (
        "import sys, time, torch\n"
        "torch.set_num_threads(1)\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_output_dataset import build_model\n"
        "from gpt2 import output_dataset as outputs\n"
        "from gpt2.checkpoint import load_tokenizer\n"
        "t = load_tokenizer(sys.argv[1])\n"
        "m = build_model(t.vocab_size, t.eot_token_id)\n"
        f"s = outputs.OutputSpec(name='nano', sampling=outputs.parse_sampling('topk:40'), "
        f"splits=outputs.parse_splits('{SPLITS}'), max_new_tokens={MAX_NEW}, seed=1)\n"
        "outputs.generate_outputs(m, t, s, sys.argv[2], batch_size=2, on_batch=lambda *a: time.sleep(30))\n"
    )
    victim = subprocess.Popen([sys.executable, "-c", script, str(checkpoint), str(tmp_path)],
                              stderr=subprocess.PIPE)
    path = tmp_path / "nano-k40.train.jsonl"
    deadline = time.monotonic() + 60
    while not (path.exists() and path.read_bytes().count(b"\n") >= 2) and time.monotonic() < deadline:
        assert victim.poll() is None, victim.stderr.read().decode()
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert path.read_bytes().count(b"\n") == 2  # the first batch, then killed while sleeping
    outputs.generate_outputs(model, tokenizer, spec(), tmp_path, batch_size=5)
    assert files(tmp_path) == reference


def test_resume_needs_the_same_options(tmp_path, model, tokenizer):
    outputs.generate_outputs(model, tokenizer, spec(splits="2", max_new=4), tmp_path)
    assert outputs.existing_seed(tmp_path, "nano-k40") == 1
    with pytest.raises(DataError, match=r"different run of nano-k40 \(seed: 1 there, 2 now\)"):
        outputs.generate_outputs(model, tokenizer, spec(seed=2, splits="2", max_new=4), tmp_path)
    bf16 = copy.deepcopy(model).to(torch.bfloat16)  # bf16 samples differ: a resume must not mix them in
    with pytest.raises(DataError, match=r"dtype: 'fp32' there, 'bf16' now"):
        outputs.generate_outputs(bf16, tokenizer, spec(splits="2", max_new=4), tmp_path)


def test_corrupt_line_is_an_error_naming_the_line(tmp_path, model, tokenizer):
    outputs.generate_outputs(model, tokenizer, spec(splits="3", max_new=4), tmp_path)
    path = tmp_path / "nano-k40.train.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b'{"id": 1, "text": 3}\n' + lines[2])
    with pytest.raises(DataError, match=r"nano-k40.train.jsonl:2: field 'ended' is missing"):
        outputs.generate_outputs(model, tokenizer, spec(splits="3", max_new=4), tmp_path)
    path.write_bytes(lines[0] + b"not json\n")
    with pytest.raises(DataError, match=r"train.jsonl:2: not valid JSON"):
        outputs.read_samples(path)


# ---- shards ----

@pytest.mark.parametrize("n", [2, 3])
def test_shards_then_merge_equal_a_single_run(tmp_path, model, tokenizer, reference, n):
    for i in range(n):
        outputs.generate_outputs(model, tokenizer, spec(), tmp_path, batch_size=2, shard=(i, n))
    assert (tmp_path / f"nano-k40.train.shard-0-of-{n}.jsonl").is_file()
    merged = outputs.merge_shards(tmp_path, "nano-k40")
    assert set(merged) == set(outputs.SPLITS)
    assert files(tmp_path) == reference
    assert not list(tmp_path.glob("*.shard-*"))
    again = outputs.generate_outputs(model, tokenizer, spec(), tmp_path, shard=(0, n))  # rerun after merge
    assert sum(again.written.values()) == 0 and not list(tmp_path.glob("*.shard-*"))


def test_merge_refuses_incomplete_shards(tmp_path, model, tokenizer):
    outputs.generate_outputs(model, tokenizer, spec(), tmp_path, shard=(0, 2))
    with pytest.raises(DataError, match=r"shard-1-of-2.jsonl: missing; run shard 1/2"):
        outputs.merge_shards(tmp_path, "nano-k40")
    with pytest.raises(Stop):
        outputs.generate_outputs(model, tokenizer, spec(), tmp_path, batch_size=1, shard=(1, 2),
                                 on_batch=interrupt_after(1))
    with pytest.raises(DataError, match=r"has 1 of its 3 samples"):
        outputs.merge_shards(tmp_path, "nano-k40")
    with pytest.raises(DataError, match="manifest.json: not found"):
        outputs.merge_shards(tmp_path, "nano")


# ---- the human side ----

def test_human_side(tmp_path, tokenizer):
    docs = [f"document {i}: " + "the cat sat on the mat. " * (1 + 3 * i) for i in range(8)]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    counts = outputs.write_human_side([corpus], tokenizer, {"train": 4, "valid": 2, "test": 2},
                                      tmp_path / "out", max_tokens=20)
    assert counts == {"train": 4, "valid": 2, "test": 2}
    rows = [json.loads(line) for s in outputs.SPLITS
            for line in (tmp_path / "out" / f"webtext.{s}.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(8))
    for r, doc in zip(rows, docs, strict=True):
        assert list(r) == ["id", "ended", "length", "text"]
        assert doc.startswith(r["text"]) and r["length"] == len(tokenizer.encode(r["text"])) <= 20
        assert r["ended"] == (r["text"] == doc)
    assert rows[0]["ended"] and not rows[-1]["ended"]
    pieces = list(outputs.human_chunks(docs[-1:], tokenizer, 20, mode="all"))
    assert "".join(p[0] for p in pieces) == docs[-1] and [p[2] for p in pieces][-2:] == [False, True]
    small = outputs.write_human_side([corpus], tokenizer, {"train": 6, "valid": 6}, tmp_path / "o2",
                                     max_tokens=8)
    assert small == {"train": 6, "valid": 2}


# ---- the CLI ----

def test_cli_outputs_shards_merge_and_human(tmp_path, checkpoint, reference, monkeypatch, capsys):
    corpus = tmp_path / "docs.txt"
    corpus.write_text("the sun is warm, and so is the sand.\n\nthe cat sat on the mat.\n\n" * 10)
    out = tmp_path / "out"
    base = ["outputs", "-m", str(checkpoint), "--name", "nano", "--split", SPLITS, "--max-new-tokens",
            str(MAX_NEW), "--out", str(out), "--no-progress", "-b", "5", "--dtype", "fp32"]  # as `reference`
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([*base, "--seed", "1"]) == 0  # shard 1/2 from torchrun's variables
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert main([*base, "--shard", "0/2", "--human-corpus", str(corpus), "--human-txt-split",
                 "paragraph"]) == 0  # no --seed: read back from the manifest
    text = capsys.readouterr().out
    assert "seed 1" in text and "gpt2 outputs --merge" in text and "human side" in text
    assert main(["outputs", "--merge", "--out", str(out)]) == 0
    assert files(out) == reference
    assert len((out / "webtext.valid.jsonl").read_text().splitlines()) == 3
    assert main(["outputs", "-m", str(checkpoint), "--split", "0.5:0.5", "--out", str(out)]) == 2
    assert "give the total number of samples (--n)" in capsys.readouterr().err


def test_human_chunk_boundaries_do_not_cut_characters(tokenizer):
    doc = "é" * 40  # two bytes a character, single-byte tokens in this vocabulary
    for text, length, _ in outputs.human_chunks([doc], tokenizer, 7, mode="all"):
        assert "\ufffd" not in text and length <= 7
