"""`gpt2 prepare` and the batch loader: shards decode back to the input documents, the split is by whole
document and stable, bad inputs raise a DataError naming the file (and line), and the loader is a
deterministic function of (seed, position, rank) that partitions each step's data between ranks."""

from __future__ import annotations

import hashlib
import json
import random

import numpy as np
import pytest

from gpt2.cli import main
from gpt2.data import (
    MANIFEST,
    BatchLoader,
    TokenDataset,
    eval_batches,
    expand_inputs,
    is_validation,
    load_manifest,
    prepare,
    read_documents,
    token_dtype,
)
from gpt2.errors import DataError
from gpt2.tokenizer import Tokenizer

WORDS = ("the king queen castle river stone light night sword crown of and to in a is was he she they "
         "said would could never always under over").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 12))]
        out.append(" ".join(words).capitalize() + rng.choice(".!?"))
    return out


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """A small BPE (about 300 ids) trained on the test corpus's own kind of text, as a directory."""
    tok = Tokenizer.train(sentences(400) + ["caf\u00e9 \u65e5\u672c \U0001f600 \t\n"], vocab_size=300)
    return tok.save_pretrained(tmp_path_factory.mktemp("tok"))


@pytest.fixture()
def corpus(tmp_path):
    """Text files (a nested directory) and a jsonl file with unicode, blank lines and an empty row."""
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("\n\n".join(sentences(30, 1)) + "\n", encoding="utf-8")
    (root / "sub" / "b.txt").write_text("\n \n\n".join(sentences(20, 2)), encoding="utf-8")
    (root / "notes.md").write_text("not picked up from a directory")
    rows = [{"text": t} for t in sentences(25, 3)]
    rows += [{"text": "caf\u00e9 \U0001f600\n<|endoftext|> x"}, {"text": ""}]
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n", encoding="utf-8")
    return root, jsonl


def test_shards_decode_back_to_the_input_documents(tmp_path, corpus, tokenizer_dir):
    root, jsonl = corpus
    out = tmp_path / "data"
    manifest = prepare([root, jsonl], tokenizer_dir, out, val_fraction=0.3, shard_tokens=500,
                       txt_split="paragraph", seed=5, workers=2, progress=False)
    files = expand_inputs([root, jsonl])
    assert [p.name for p in files] == ["a.txt", "b.txt", "c.jsonl"]
    docs = [d for p in files for d in read_documents(p, "paragraph")]
    assert len(docs) == 30 + 20 + 26  # the empty jsonl row and blank lines are not documents
    expected = {"train": [], "val": []}
    for i, doc in enumerate(docs):
        expected["val" if is_validation(i, 5, 0.3) else "train"].append(doc)
    tok = Tokenizer.from_pretrained(out / "tokenizer")
    for split in ("train", "val"):
        data = TokenDataset(out, split)
        decoded = [tok.decode(d) for d in data.documents()]
        assert decoded == expected[split]
        info = manifest["splits"][split]
        assert info["documents"] == len(expected[split]) and info["tokens"] == len(data)
        assert sum(s["tokens"] for s in info["shards"]) == len(data)
    assert len(manifest["splits"]["train"]["shards"]) > 1  # documents run across shard boundaries
    assert 10 <= len(expected["val"]) <= 35
    assert manifest["dtype"] == "uint16" and manifest["tokenizer"]["vocab_size"] == tok.vocab_size
    for entry, path in zip(manifest["inputs"], files, strict=True):
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_manifest(out) == manifest
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_gpt2_vocabulary_shards_equal_tiktoken_ids(tmp_path, gpt2_tokenizer):
    """With GPT-2's own vocabulary (offline, from ../shared/vocab), each document is 50256 followed by
    exactly tiktoken r50k_base's ids for it; text that looks like <|endoftext|> stays ordinary text."""
    import tiktoken

    docs = ["Hello world", " leading space and caf\u00e9 \U0001f600", "a <|endoftext|> inside", "x" * 3000]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    manifest = prepare([path], "gpt2", tmp_path / "d", val_fraction=0.0, progress=False)
    assert manifest["dtype"] == "uint16" and manifest["tokenizer"]["vocab_size"] == 50257
    enc = tiktoken.get_encoding("r50k_base")
    expected = [t for d in docs for t in [50256, *enc.encode_ordinary(d)]]
    data = TokenDataset(tmp_path / "d")
    assert data.read(0, len(data)).tolist() == expected


def test_every_document_starts_with_endoftext(tmp_path, corpus, tokenizer_dir):
    root, _ = corpus
    prepare([root / "a.txt"], tokenizer_dir, tmp_path / "d", val_fraction=0.0, progress=False)
    data = TokenDataset(tmp_path / "d")
    tokens = data.read(0, len(data))
    eot = Tokenizer.from_pretrained(tokenizer_dir).eot_token_id
    assert tokens[0] == eot and (tokens == eot).sum() == 1  # one file = one document by default


def test_txt_split_modes(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffone\r\ntwo\n\n  \t\r\n  three\u2028x\n\n\nlast".encode())
    assert list(read_documents(path, "file")) == ["one\r\ntwo\n\n  \t\r\n  three\u2028x\n\n\nlast"]  # no BOM
    assert list(read_documents(path, "paragraph")) == ["one\r\ntwo", "  three\u2028x", "last"]
    assert list(read_documents(path, "line")) == ["one", "two", "  three\u2028x", "last"]


def test_the_split_is_stable_and_close_to_the_fraction():
    picks = [is_validation(i, 0, 0.1) for i in range(20000)]
    assert picks == [is_validation(i, 0, 0.1) for i in range(20000)]
    assert 0.09 < sum(picks) / len(picks) < 0.11
    assert picks != [is_validation(i, 1, 0.1) for i in range(20000)]
    assert not any(is_validation(i, 0, 0.0) for i in range(1000))


def test_token_dtype_widens_past_65536_ids():
    assert [token_dtype(v) for v in (512, 50257, 65536)] == [np.uint16] * 3
    assert [token_dtype(v) for v in (65537, 100277)] == [np.uint32] * 2


def test_uint32_shards_round_trip(tmp_path, corpus, tokenizer_dir, monkeypatch):
    import gpt2.data.shards as shards

    monkeypatch.setattr(shards, "token_dtype", lambda vocab_size: np.dtype(np.uint32))
    root, _ = corpus
    prepare([root / "a.txt"], tokenizer_dir, tmp_path / "d", val_fraction=0.0, txt_split="paragraph",
            progress=False)
    data = TokenDataset(tmp_path / "d")
    assert data.manifest["dtype"] == "uint32" and data.shards[0].dtype == np.uint32
    tok = Tokenizer.from_pretrained(tokenizer_dir)
    assert [tok.decode(d) for d in data.documents()] == list(read_documents(root / "a.txt", "paragraph"))


# ---- errors name the file (and line) and say what was expected ----

JSONL_ERRORS = [
    ('{"text": "ok"}\n{"text": "fine"}\n{not json\n', r"bad\.jsonl:3: not valid JSON"),
    ('{"text": "ok"}\n{"body": "x"}\n', r"bad\.jsonl:2: expected a JSON object with a \"text\" field, got an "
                                        r"object with fields \['body'\]"),
    ('{"text": 3}\n', r"bad\.jsonl:1: field \"text\" must be a string, got int"),
    ('["text"]\n', r"bad\.jsonl:1: expected a JSON object .* got a JSON list"),
]


@pytest.mark.parametrize("content, message", JSONL_ERRORS)
def test_malformed_jsonl_names_file_and_line(tmp_path, tokenizer_dir, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    with pytest.raises(DataError, match=message):
        prepare([bad], tokenizer_dir, tmp_path / "out", progress=False)


def test_binary_file(tmp_path, tokenizer_dir):
    binary = tmp_path / "image.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(DataError, match=r"image\.txt: NUL byte at offset 8; this looks like a binary file"):
        prepare([binary], tokenizer_dir, tmp_path / "out", progress=False)
    binary.write_bytes(b"GIF89a\n\x01\x02\x00\x00;")
    with pytest.raises(DataError, match=r"image\.txt:2: NUL byte at byte 3 of the line; this looks like"):
        prepare([binary], tokenizer_dir, tmp_path / "out", txt_split="paragraph", progress=False)


def test_non_utf8_text_names_the_line(tmp_path, tokenizer_dir):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("first line\ncaf\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.txt:2: not valid UTF-8 \(byte 0xe9 at offset 14\).*iconv"):
        prepare([latin], tokenizer_dir, tmp_path / "out", progress=False)
    jsonl = tmp_path / "latin1.jsonl"
    jsonl.write_bytes(b'{"text": "a"}\n' + '{"text": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.jsonl:2: not valid UTF-8 \(byte 0xe9 at byte 14 of"):
        prepare([jsonl], tokenizer_dir, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match=r"latin1\.txt:2: not valid UTF-8 \(byte 0xe9 at byte 4 of the line"):
        list(read_documents(latin, "line"))


def test_empty_inputs(tmp_path, tokenizer_dir):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    blank = tmp_path / "blank.jsonl"
    blank.write_text('\n{"text": ""}\n')
    with pytest.raises(DataError, match=r"no documents in the inputs \(.*empty\.txt, .*blank\.jsonl\)"):
        prepare([empty, blank], tokenizer_dir, tmp_path / "out", progress=False)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match=r"nothing: directory holds no \.txt or \.jsonl files"):
        prepare([tmp_path / "nothing"], tokenizer_dir, tmp_path / "out2", progress=False)


def test_missing_inputs(tmp_path, tokenizer_dir):
    with pytest.raises(DataError, match=r"missing\.txt: no such file or directory"):
        prepare([tmp_path / "missing.txt"], tokenizer_dir, tmp_path / "out", progress=False)
    with pytest.raises(DataError, match=r"\*\.jsonl: pattern matches no files"):
        prepare([str(tmp_path / "*.jsonl")], tokenizer_dir, tmp_path / "out", progress=False)


def test_output_directory_rules(tmp_path, corpus, tokenizer_dir):
    root, _ = corpus
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(DataError, match="holds files that `gpt2 prepare` did not write"):
        prepare([root], tokenizer_dir, out, overwrite=True, progress=False)
    assert (out / "precious.txt").exists()
    data = tmp_path / "d"
    prepare([root], tokenizer_dir, data, shard_tokens=100, val_fraction=0.0, progress=False)
    with pytest.raises(DataError, match="holds a prepared dataset already; pass --overwrite"):
        prepare([root], tokenizer_dir, data, progress=False)
    prepare([root / "a.txt"], tokenizer_dir, data, overwrite=True, val_fraction=0.0, progress=False)
    shards = load_manifest(data)["splits"]["train"]["shards"]
    assert sorted(p.name for p in data.glob("*.bin")) == [s["file"] for s in shards]  # old shards gone


def test_a_failed_prepare_can_be_rerun(tmp_path, corpus, tokenizer_dir):
    root, jsonl = corpus
    bad = tmp_path / "bad.jsonl"
    bad.write_text(jsonl.read_text() + "{oops\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:\d+: not valid JSON"):
        prepare([root, bad], tokenizer_dir, tmp_path / "d", shard_tokens=100, progress=False)
    assert not (tmp_path / "d").exists()  # nothing half-written is left: the directory it made is gone
    (tmp_path / "e").mkdir()
    with pytest.raises(DataError, match=r"bad\.jsonl:\d+: not valid JSON"):
        prepare([root, bad], tokenizer_dir, tmp_path / "e", shard_tokens=100, progress=False)
    assert list((tmp_path / "e").iterdir()) == []  # a directory that was there stays, empty again
    prepare([root, jsonl], tokenizer_dir, tmp_path / "d", shard_tokens=100, progress=False)
    assert (tmp_path / "d" / MANIFEST).is_file()


def test_truncated_shard_and_missing_manifest(tmp_path, corpus, tokenizer_dir):
    root, _ = corpus
    prepare([root], tokenizer_dir, tmp_path / "d", val_fraction=0.0, progress=False)
    shard = tmp_path / "d" / "train_000000.bin"
    shard.write_bytes(shard.read_bytes()[:-2])
    with pytest.raises(DataError, match=r"train_000000\.bin: .* bytes, manifest\.json says .*truncated"):
        TokenDataset(tmp_path / "d")
    with pytest.raises(DataError, match=r"no manifest\.json; prepare the data first"):
        TokenDataset(tmp_path)


def test_cli_prepare(tmp_path, corpus, tokenizer_dir, capsys):
    root, jsonl = corpus
    out = tmp_path / "data"
    code = main(["prepare", str(root), str(jsonl), "--tokenizer", str(tokenizer_dir), "--out", str(out),
                 "--txt-split", "paragraph", "--val-fraction", "0.2", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "train: " in printed and "val: " in printed and (out / MANIFEST).is_file()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{oops}\n')
    code = main(["prepare", str(bad), "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / "o"), "-q"])
    assert code == 2
    assert f"gpt2 prepare: error: {bad}:2: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


# ---- the loader ----

def synthetic(tmp_path, n_tokens: int, shard_tokens: int, name: str = "syn") -> TokenDataset:
    """A prepared directory whose train stream is 0, 1, 2, ... so a window's first token is its start."""
    directory = tmp_path / name
    directory.mkdir()
    tokens = np.arange(n_tokens, dtype=np.uint32)
    shards = []
    for i, start in enumerate(range(0, n_tokens, shard_tokens)):
        piece = tokens[start : start + shard_tokens]
        piece.tofile(directory / f"train_{i:06d}.bin")
        shards.append({"file": f"train_{i:06d}.bin", "tokens": int(piece.size)})
    splits = {"train": {"documents": 1, "tokens": n_tokens, "shards": shards},
              "val": {"documents": 0, "tokens": 0, "shards": []}}
    manifest = {"format": "gpt2-token-shards", "version": 1, "dtype": "uint32", "splits": splits,
                "tokenizer": {"name": "none", "dir": "tokenizer", "vocab_size": n_tokens, "eot_token_id": 0}}
    (directory / MANIFEST).write_text(json.dumps(manifest))
    return TokenDataset(directory)


def test_reads_cross_shard_boundaries(tmp_path):
    data = synthetic(tmp_path, 1000, 97)
    assert len(data) == 1000
    for start, length in [(0, 1000), (90, 20), (96, 1), (97, 97), (500, 333), (999, 1)]:
        np.testing.assert_array_equal(data.read(start, length), np.arange(start, start + length))


def test_an_epoch_visits_every_window_once_in_a_seeded_order(tmp_path):
    data = synthetic(tmp_path, 1000, 128)
    seq_len = 16
    loader = BatchLoader(data, batch_size=2, seq_len=seq_len, seed=3)
    n = loader.windows_per_epoch
    assert n == (1000 - 1) // seq_len == 62
    starts = []
    for _ in range(n // 2):
        x, y = loader.next_batch()
        assert x.shape == y.shape == (2, seq_len) and x.dtype == np.int64
        np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # targets are the inputs shifted by one
        np.testing.assert_array_equal(x + 1, y)
        starts += x[:, 0].tolist()
    phase = min(starts) % seq_len
    assert sorted(starts) == [phase + k * seq_len for k in range(len(starts))]  # no window twice
    assert starts != sorted(starts)  # shuffled
    assert loader.next_batch()[0][:, 0].tolist() != starts[:2]  # the next epoch has its own order
    other = BatchLoader(data, batch_size=2, seq_len=seq_len, seed=4)
    assert other.next_batch()[0][:, 0].tolist() != starts[:2]


def test_state_dict_restores_the_exact_sequence(tmp_path):
    data = synthetic(tmp_path, 5000, 1000)
    a = BatchLoader(data, batch_size=3, seq_len=32, seed=1, grad_accum=2)
    for _ in range(2 * 70):  # past the end of an epoch (52 windows), into the next
        a.next_batch()
    state = a.state_dict()
    assert state["position"] == 70 * 6 and json.loads(json.dumps(state)) == state  # small, plain
    b = BatchLoader(data, batch_size=3, seq_len=32, seed=999, grad_accum=2)
    b.load_state_dict(state)
    for _ in range(20):
        np.testing.assert_array_equal(a.next_batch()[0], b.next_batch()[0])
    a.next_batch()
    with pytest.raises(RuntimeError, match="between optimizer steps"):
        a.state_dict()
    with pytest.raises(DataError, match="Resume with the same data and --seq-len"):
        BatchLoader(data, batch_size=3, seq_len=16).load_state_dict(state)


def test_ranks_split_each_step_like_accumulation_does(tmp_path):
    """World size 2 with one micro-batch each sees exactly what one process sees in two micro-batches."""
    data = synthetic(tmp_path, 3000, 700)
    single = BatchLoader(data, batch_size=2, seq_len=8, seed=0, grad_accum=2)
    ranks = [BatchLoader(data, batch_size=2, seq_len=8, seed=0, rank=r, world_size=2) for r in range(2)]
    for _ in range(30):
        mine = [r.next_batch()[0] for r in ranks]
        assert not set(mine[0][:, 0]) & set(mine[1][:, 0])  # disjoint
        expected = np.concatenate([single.next_batch()[0], single.next_batch()[0]])
        np.testing.assert_array_equal(np.concatenate(mine), expected)


def test_eval_batches_are_fixed_and_dealt_to_ranks(tmp_path):
    data = synthetic(tmp_path, 2000, 300)
    every = np.concatenate([x for x, _ in eval_batches(data, 4, 10, max_tokens=300)])
    assert every[:, 0].tolist() == list(range(0, 300, 10))
    parts = [np.concatenate([x for x, _ in eval_batches(data, 4, 10, 300, rank=r, world_size=2)])
             for r in range(2)]
    assert sorted(np.concatenate(parts)[:, 0].tolist()) == every[:, 0].tolist()


def test_a_split_shorter_than_one_window(tmp_path):
    data = synthetic(tmp_path, 50, 50)
    with pytest.raises(DataError, match=r"syn: the train split has 50 tokens, fewer than seq_len \+ 1 = 65"):
        BatchLoader(data, batch_size=1, seq_len=64)


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, corpus, tokenizer_dir, monkeypatch, capsys):
    import errno

    from gpt2.data import shards

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out" / ".train_000000.bin.tmp"))

    monkeypatch.setattr(shards.ShardWriter, "write", full)
    assert main(["prepare", str(corpus[1]), "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / "out"),
                 "-q"]) == 1
    err = capsys.readouterr().err
    assert err == f"gpt2 prepare: error: {tmp_path / 'out' / '.train_000000.bin.tmp'}: No space left on device\n"
    assert not (tmp_path / "out").exists()  # what the failed prepare wrote is gone
