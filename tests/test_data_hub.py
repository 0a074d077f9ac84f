"""Data from the Hugging Face Hub, end to end with no network: huggingface_hub itself talks to the loopback
server of conftest.FileServer (HF_ENDPOINT), which answers as the Hub does (resolve, ETag = sha256, tree
listing). The benchmarks kept there become the prompted tasks' jsonl; the corpora stream into token shards
equal to those `gpt2 prepare` makes from the same documents, and a stopped run resumes."""

from __future__ import annotations

import json
import random
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import free_port
from gpt2.cli import main
from gpt2.data import MANIFEST, TokenDataset, prepare, prepare_corpus
from gpt2.data import sources as datasets
from gpt2.data.download import DownloadError
from gpt2.data.shards import PROGRESS
from gpt2.errors import DataError
from gpt2.evaluation.tasks import resolve_data_path
from gpt2.tokenizer import Tokenizer

WORDS = "the river stone light night crown sword under over said never always king queen castle".split()


def sentences(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 40))).capitalize() + "." for _ in range(n)]


def write_parquet(path, columns: dict[str, list], row_group_size: int = 16) -> None:
    pq.write_table(pa.table(columns), path, row_group_size=row_group_size)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    tok = Tokenizer.train(sentences(300, 99), vocab_size=280)
    return tok.save_pretrained(tmp_path_factory.mktemp("tok"))


# ---- benchmark files kept on the Hub ----

def test_cnn_dailymail_comes_from_the_hub_as_the_summarize_tasks_jsonl(file_server, capsys):
    hub = datasets.SOURCES["cnn-dailymail"].hub
    rows = {"article": ["A storm hit the coast. Roads closed.", "The vote passed."],
            "highlights": ["Storm hits coast .", "Vote passes ."], "id": ["a1", "b2"]}
    write_parquet(file_server.hub_file(hub.repo, hub.filename), rows)
    assert main(["data", "get", "cnn-dailymail", "--no-progress"]) == 0
    path = datasets.SOURCES["cnn-dailymail"].local()
    assert str(path) in capsys.readouterr().out
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [{"article": a, "highlights": h, "id": i} for a, h, i in zip(*rows.values(), strict=True)]
    # fetched at the commit main was at when asked (a push in between cannot mix two versions)
    assert file_server.gets(".parquet") == [
        f"/datasets/abisee/cnn_dailymail/resolve/{file_server.commit('main')}/3.0.0/test-00000-of-00001.parquet"]
    assert resolve_data_path("summarize") == path  # `gpt2 eval --task summarize` reads it, no second fetch
    assert main(["data", "get", "cnn-dailymail", "--no-progress"]) == 0
    assert len(file_server.gets(".parquet")) == 1


def test_wmt14_rows_become_source_and_target_in_each_direction(file_server):
    hub = datasets.SOURCES["wmt14-fr-en"].hub
    pairs = [{"en": "The cat sleeps.", "fr": "Le chat dort."}, {"en": "It rains.", "fr": "Il pleut."}]
    write_parquet(file_server.hub_file(hub.repo, hub.filename), {"translation": pairs})
    fr_en = [json.loads(line) for line in resolve_data_path("translate").read_text().splitlines()]
    assert fr_en == [{"source": p["fr"], "target": p["en"]} for p in pairs]
    en_fr = [json.loads(line) for line in datasets.fetch("wmt14-en-fr", progress=False).read_text().splitlines()]
    assert en_fr == [{"source": p["en"], "target": p["fr"]} for p in pairs]
    assert len(file_server.gets(".parquet")) == 1  # both directions from the one parquet file, fetched once


def test_a_split_the_hub_only_has_as_the_viewers_conversion_is_fetched_from_there(file_server):
    hub = datasets.SOURCES["wmt14-fr-en"].hub
    write_parquet(file_server.hub_file(hub.repo, "fr-en/test/0000.parquet", datasets.CONVERTED),
                  {"translation": [{"en": "Yes.", "fr": "Oui."}]})
    assert json.loads(resolve_data_path("translate").read_text()) == {"source": "Oui.", "target": "Yes."}
    commit = file_server.commit(datasets.CONVERTED)
    assert file_server.gets(".parquet") == [f"/datasets/wmt/wmt14/resolve/{commit}/fr-en/test/0000.parquet"]


def test_natural_questions_keep_every_accepted_answer(file_server):
    hub = datasets.SOURCES["nq-open"].hub
    write_parquet(file_server.hub_file(hub.repo, hub.filename),
                  {"question": ["who wrote hamlet"], "answer": [["Shakespeare", "William Shakespeare"]]})
    rows = [json.loads(line) for line in resolve_data_path("qa").read_text().splitlines()]
    assert rows == [{"question": "who wrote hamlet", "answer": ["Shakespeare", "William Shakespeare"]}]


def test_a_hub_transfer_that_breaks_off_resumes_where_it_stopped(file_server):
    hub = datasets.SOURCES["cnn-dailymail"].hub
    path = file_server.hub_file(hub.repo, hub.filename)
    # huggingface_hub writes in 10 MiB chunks: the file must be larger for a break-off to leave a part behind
    articles = [random.Random(i).randbytes(6000).hex() for i in range(1000)]
    pq.write_table(pa.table({"article": articles, "highlights": ["."] * 1000}), path, compression="none")
    cut = 10 * 2**20 + 12345
    assert path.stat().st_size > cut
    file_server.cut[f"{hub.repo}/{hub.filename}"] = cut
    rows = datasets.fetch("cnn-dailymail", progress=False).read_text().splitlines()
    assert [json.loads(r)["article"] for r in rows] == articles
    ranges = [r for method, p, r in file_server.requests if method == "GET" and p.endswith(".parquet")]
    assert len(ranges) == 2 and ranges[0] is None  # the second request asks only for what is missing:
    assert 0 < int(ranges[1].removeprefix("bytes=").rstrip("-")) <= cut


def test_a_hub_file_that_does_not_match_its_sha256_is_removed_with_both_hashes(file_server):
    hub = datasets.SOURCES["nq-open"].hub
    write_parquet(file_server.hub_file(hub.repo, hub.filename), {"question": ["q"], "answer": [["a"]]})
    file_server.etags[f"{hub.repo}/{hub.filename}"] = "ab" * 32
    with pytest.raises(DownloadError, match=f"sha256 is [0-9a-f]{{64}}, expected {'ab' * 32}"):
        datasets.fetch("nq-open", progress=False)
    assert not datasets.SOURCES["nq-open"].local().exists()
    assert not list((datasets.SOURCES["nq-open"].local().parents[1] / "hub").rglob("*.parquet"))


def test_offline_the_hub_is_one_line_naming_the_url_and_the_place(tmp_path, monkeypatch, capsys):
    port = free_port()  # nothing listens there: offline
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GPT2_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    started = time.monotonic()
    assert main(["data", "get", "wmt14-fr-en", "--no-progress"]) == 2
    assert time.monotonic() - started < 10, "offline must fail at once, not after huggingface_hub's retries"
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"http://127.0.0.1:{port}/datasets/wmt/wmt14/resolve/main/fr-en/test-00000-of-00001.parquet" in err
    assert f"put it at {tmp_path / 'hub' / 'wmt' / 'wmt14' / 'fr-en' / 'test-00000-of-00001.parquet'}" in err


def test_a_corpus_is_prepared_not_fetched(capsys):
    assert main(["data", "get", "fineweb-edu"]) == 2
    assert "gpt2 prepare --dataset fineweb-edu" in capsys.readouterr().err
    assert main(["data", "list"]) == 0
    assert any(line.startswith("openwebtext ") and " prep " in line for line in capsys.readouterr().out.splitlines())


# ---- corpora streamed into token shards ----

CORPUS = datasets.CORPORA["fineweb-edu"]
FOLDER = CORPUS.locations[0][1]


@pytest.fixture()
def fineweb(file_server):
    """Three parquet files of FineWeb-Edu's layout (text plus other columns, empty rows among them)."""
    docs = []
    for i in range(3):
        texts = sentences(40, i) + [""]
        docs += [t for t in texts if t]
        write_parquet(file_server.hub_file(CORPUS.repo, f"{FOLDER}/{i:03d}_00000.parquet"),
                      {"text": texts, "id": [f"{i}-{j}" for j in range(len(texts))], "score": [3.1] * len(texts)})
    file_server.hub_file(CORPUS.repo, "sample/100BT/000_00000.parquet").write_bytes(b"another sample: not read")
    return docs


def all_tokens(directory) -> dict[str, np.ndarray]:
    return {split: np.concatenate([TokenDataset(directory, split).shards[i][:] for i in
                                   range(len(TokenDataset(directory, split).shards))])
            for split in ("train", "val")}


def test_a_streamed_corpus_equals_prepare_on_the_same_documents(fineweb, file_server, tmp_path, tokenizer_dir):
    out = tmp_path / "fw"
    manifest = prepare_corpus("fineweb-edu", tokenizer_dir, out, val_fraction=0.1, shard_tokens=300,
                              progress=False)
    jsonl = tmp_path / "same.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in fineweb))
    reference = prepare([jsonl], tokenizer_dir, tmp_path / "ref", val_fraction=0.1, shard_tokens=300,
                        progress=False)
    ours, theirs = all_tokens(out), all_tokens(tmp_path / "ref")
    assert all(np.array_equal(ours[s], theirs[s]) for s in ("train", "val"))
    assert {s: manifest["splits"][s]["documents"] for s in ("train", "val")} == \
        {s: reference["splits"][s]["documents"] for s in ("train", "val")}
    assert manifest["splits"]["val"]["documents"] > 0
    assert manifest["dataset"]["files_used"] == 3 and len(manifest["inputs"]) == 3
    commit = file_server.commit("main")
    assert manifest["dataset"]["commit"] == commit and not manifest["dataset"]["partial"]
    assert manifest["inputs"][0]["path"] == f"hf://datasets/{CORPUS.repo}@{commit}/{FOLDER}/000_00000.parquet"
    assert not (out / ".download").exists() and not (out / PROGRESS).exists()  # raw files deleted once read
    assert len(file_server.gets(".parquet")) == 3 and not file_server.gets("100BT")


def test_the_next_file_downloads_while_the_current_one_is_tokenized(fineweb, file_server, tmp_path,
                                                                    tokenizer_dir, monkeypatch):
    from gpt2.data import corpora

    real, seen = corpora._tokenize_file, []

    def tokenize(local, *args, **kwargs):
        name = local.name
        following = f"{int(name[:3]) + 1:03d}_00000.parquet"
        deadline = time.monotonic() + 10
        while name != "002_00000.parquet" and not file_server.gets(following) and time.monotonic() < deadline:
            time.sleep(0.01)  # the next file's request comes while this one is still being tokenized
        seen.append((name, bool(file_server.gets(following))))
        return real(local, *args, **kwargs)

    monkeypatch.setattr(corpora, "_tokenize_file", tokenize)
    prepare_corpus("fineweb-edu", tokenizer_dir, tmp_path / "fw", val_fraction=0.1, progress=False)
    assert seen == [("000_00000.parquet", True), ("001_00000.parquet", True), ("002_00000.parquet", False)]


def test_a_stopped_corpus_resumes_after_the_last_whole_file(fineweb, file_server, tmp_path, tokenizer_dir):
    reference = tmp_path / "whole"
    prepare_corpus("fineweb-edu", tokenizer_dir, reference, val_fraction=0.1, shard_tokens=300, progress=False)
    file_server.requests.clear()
    out = tmp_path / "fw"
    third = f"{CORPUS.repo}/{FOLDER}/002_00000.parquet"
    file_server.etags[third] = "cd" * 32  # the third file arrives corrupted: the run stops there
    with pytest.raises(DownloadError, match="002_00000.parquet"):
        prepare_corpus("fineweb-edu", tokenizer_dir, out, val_fraction=0.1, shard_tokens=300, progress=False)
    state = json.loads((out / PROGRESS).read_text())
    assert [f["path"].rsplit("/", 1)[1] for f in state["files"]] == ["000_00000.parquet", "001_00000.parquet"]
    assert not (out / MANIFEST).exists()
    (out / "train_000099.bin").write_bytes(b"\0\0")  # a shard the interrupted file had begun
    with pytest.raises(DataError, match="other settings \\(val_fraction was 0.1, now 0.2\\)"):
        prepare_corpus("fineweb-edu", tokenizer_dir, out, val_fraction=0.2, shard_tokens=300, progress=False)
    del file_server.etags[third]
    prepare_corpus("fineweb-edu", tokenizer_dir, out, val_fraction=0.1, shard_tokens=300, progress=False)
    fetched = [len(file_server.gets(f"{i:03d}_00000.parquet")) for i in range(3)]
    assert fetched == [1, 1, 2]  # the first two files were not fetched again; the third, again
    assert not (out / "train_000099.bin").exists()
    ours, whole = all_tokens(out), all_tokens(reference)
    assert all(np.array_equal(ours[s], whole[s]) for s in ("train", "val"))
    splits = [json.loads((d / MANIFEST).read_text())["splits"] for d in (out, reference)]
    assert splits[0] == splits[1]


def test_ctrl_c_mid_file_resumes_to_the_same_shards_at_the_same_commit(fineweb, file_server, tmp_path,
                                                                      tokenizer_dir, monkeypatch):
    """Stopped in the middle of the second file, after some of its shards were complete; meanwhile the Hub
    gains a file. The resumed run reads the files and commit it started with, and its shards are those of
    a run never stopped."""
    from gpt2.data.shards import ShardSink

    reference = tmp_path / "whole"
    prepare_corpus("fineweb-edu", tokenizer_dir, reference, val_fraction=0.1, shard_tokens=100, progress=False)
    file_server.requests.clear()
    real_add, added = ShardSink.add, [0]

    def add(self, ids):
        added[0] += 1
        if added[0] == 60:  # the 20th document of the second file
            raise KeyboardInterrupt
        return real_add(self, ids)

    monkeypatch.setattr(ShardSink, "add", add)
    out = tmp_path / "fw"
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus("fineweb-edu", tokenizer_dir, out, val_fraction=0.1, shard_tokens=100, progress=False)
    assert len(json.loads((out / PROGRESS).read_text())["files"]) == 1
    monkeypatch.setattr(ShardSink, "add", real_add)
    write_parquet(file_server.hub_file(CORPUS.repo, f"{FOLDER}/003_00000.parquet"), {"text": sentences(5, 9)})
    manifest = prepare_corpus("fineweb-edu", tokenizer_dir, out, val_fraction=0.1, shard_tokens=100,
                              progress=False)
    assert manifest["dataset"]["files_in_corpus"] == 3 and not file_server.gets("003_00000")
    ours, whole = all_tokens(out), all_tokens(reference)
    assert all(np.array_equal(ours[s], whole[s]) for s in ("train", "val"))


def test_a_run_stopped_in_its_first_file_keeps_the_download(fineweb, file_server, tmp_path, tokenizer_dir,
                                                           monkeypatch):
    from gpt2.data import corpora

    real = corpora._tokenize_file

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(corpora, "_tokenize_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        prepare_corpus("fineweb-edu", tokenizer_dir, tmp_path / "fw", val_fraction=0.1, progress=False)
    assert json.loads((tmp_path / "fw" / PROGRESS).read_text())["files"] == []  # nothing finished yet
    monkeypatch.setattr(corpora, "_tokenize_file", real)
    prepare_corpus("fineweb-edu", tokenizer_dir, tmp_path / "fw", val_fraction=0.1, progress=False)
    assert [len(file_server.gets(f"{i:03d}_00000.parquet")) for i in range(3)] == [1, 1, 1]


def test_openwebtext_is_read_from_the_viewers_conversion_when_main_has_no_parquet(file_server, tmp_path,
                                                                                  tokenizer_dir):
    corpus = datasets.CORPORA["openwebtext"]
    file_server.hub_file(corpus.repo, "subsets/urlsf_subset00.tar").write_bytes(b"the original tarballs")
    texts = sentences(12, 5)
    write_parquet(file_server.hub_file(corpus.repo, "plain_text/partial-train/0000.parquet", datasets.CONVERTED),
                  {"text": texts})
    with pytest.warns(UserWarning, match="holds only part of it"):  # the viewer converts the first GBs only
        manifest = prepare_corpus("openwebtext", tokenizer_dir, tmp_path / "owt", val_fraction=0, progress=False)
    assert manifest["splits"]["train"]["documents"] == 12 and manifest["dataset"]["revision"] == datasets.CONVERTED
    assert manifest["dataset"]["partial"]
    assert TokenDataset(tmp_path / "owt", "train").shards[0][1:8].tolist() == \
        Tokenizer.from_pretrained(tokenizer_dir).encode(texts[0])[:7]


def test_max_tokens_stops_early_and_the_cli_trains_on_it(fineweb, file_server, tmp_path, tokenizer_dir, capsys):
    out = tmp_path / "fw"
    assert main(["prepare", "--dataset", "fineweb-edu", "--tokenizer", str(tokenizer_dir), "--out", str(out),
                 "--max-tokens", "5e2", "--val-fraction", "0", "-q"]) == 0
    manifest = json.loads((out / MANIFEST).read_text())
    assert 500 <= manifest["splits"]["train"]["tokens"] < 600  # stops at the first document past the budget
    assert manifest["dataset"]["files_used"] == 1 and len(file_server.gets(".parquet")) == 1
    assert "train: " in capsys.readouterr().out
    x = TokenDataset(out, "train")
    assert len(x) == manifest["splits"]["train"]["tokens"]
    assert main(["prepare", "in.txt", "--dataset", "fineweb-edu", "--tokenizer", "gpt2", "--out", "x"]) == 2
    assert "one of the two" in capsys.readouterr().err


def test_cli_ctrl_c_says_the_run_continues(fineweb, file_server, tmp_path, tokenizer_dir, monkeypatch, capsys):
    from gpt2.data.shards import ShardSink

    def add(self, ids):
        raise KeyboardInterrupt

    monkeypatch.setattr(ShardSink, "add", add)
    out = tmp_path / "fw"
    assert main(["prepare", "--dataset", "fineweb-edu", "--tokenizer", str(tokenizer_dir), "--out", str(out),
                 "-q"]) == 130
    err = capsys.readouterr().err
    assert f"kept ({out / PROGRESS}); run the same command again to continue" in err and "interrupted" in err
    with pytest.raises(SystemExit):  # a count that is no count is argparse's usage error
        main(["prepare", "--dataset", "fineweb-edu", "--tokenizer", "gpt2", "--out", "x", "--max-tokens", "inf"])
