"""The data registry end to end against a loopback HTTP server standing in for the real hosts
(GPT2_DOWNLOAD_MIRROR): plain files, files inside zip and tar archives, checksums, the cache, offline."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from conftest import SHARED, free_port
from gpt2.cli import main
from gpt2.data import sources as datasets
from gpt2.data.download import DownloadError
from gpt2.errors import DataError
from gpt2.evaluation.tasks import TASKS, resolve_data_path

FIXTURES = Path(__file__).parent / "fixtures" / "eval"


def serve(server, url: str, data: bytes) -> None:
    """Put `data` where the mirror serves `url`'s path."""
    path = server.root / url.split("/", 3)[3]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def pin(monkeypatch, name: str, data: bytes) -> None:
    """Make source `name`'s checksum that of `data` (the test serves a small stand-in for the real file)."""
    source = dataclasses.replace(datasets.SOURCES[name], sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    monkeypatch.setitem(datasets.SOURCES, name, source)


def test_every_task_with_a_standard_file_has_a_source_at_that_path():
    for task in TASKS.values():
        if task.default_path is not None:
            source = datasets.source_for(task.default_path)
            assert source is not None and source.url.startswith("http"), task.name
    names = [s.name for s in datasets.SOURCES.values()]
    assert len(names) == len(set(names)) and "gpt2-output/xl-1542M-k40.test" in names and "hellaswag" in names


def test_reference_copies_match_the_pinned_checksums():
    """The sha256 pinned in the registry are those of the real files (the project's reference copies)."""
    checked = 0
    for name, rel in (("lambada", "lambada/lambada_test.jsonl"), ("ptb", "ptb/ptb.test.txt"),
                      ("wikitext2", "wikitext2/wiki.test.tokens"), ("wsc", "wsc/WSCollection.xml")):
        path = SHARED / "data" / rel
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == datasets.SOURCES[name].sha256, name
            assert path.stat().st_size == datasets.SOURCES[name].size
            checked += 1
    if not checked:
        pytest.skip(f"the reference copies in {SHARED / 'data'} are absent")


def test_get_downloads_verifies_and_caches(file_server, monkeypatch, capsys):
    data = (FIXTURES / "lambada_sample.jsonl").read_bytes()
    pin(monkeypatch, "lambada", data)
    serve(file_server, datasets.SOURCES["lambada"].url, data)
    assert main(["data", "get", "lambada", "--no-progress"]) == 0
    path = datasets.SOURCES["lambada"].local()
    assert path.read_bytes() == data and str(path) in capsys.readouterr().out
    assert resolve_data_path("lambada") == path  # eval finds it without downloading again
    assert main(["data", "get", "lambada", "--no-progress"]) == 0
    assert len(file_server.requests) == 1
    assert main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    assert any(line.startswith("lambada ") and "here" in line for line in listing.splitlines())


def test_a_corrupted_download_fails_its_checksum(file_server, monkeypatch):
    data = (FIXTURES / "lambada_sample.jsonl").read_bytes()
    pin(monkeypatch, "lambada", data)
    serve(file_server, datasets.SOURCES["lambada"].url, data.replace(b"the", b"teh"))
    with pytest.raises(DownloadError, match=f"expected {datasets.SOURCES['lambada'].sha256}"):
        datasets.fetch("lambada", progress=False)
    assert not datasets.SOURCES["lambada"].local().exists()


def test_eval_fetches_a_file_from_inside_a_zip(file_server, monkeypatch):
    tokens = (FIXTURES / "wiki_sample.tokens").read_bytes()
    pin(monkeypatch, "wikitext2", tokens)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("wikitext-2/wiki.train.tokens", b"not this one")
        z.writestr("wikitext-2/wiki.test.tokens", tokens)
    serve(file_server, datasets.SOURCES["wikitext2"].url, archive.getvalue())
    path = resolve_data_path("wikitext2")
    assert path.read_bytes() == tokens and path == datasets.SOURCES["wikitext2"].local()
    assert (path.parent.parent / "archives" / "wikitext-2-v1.zip").is_file()  # kept: the valid split is inside
    pin(monkeypatch, "wikitext2-valid", b"valid\n")
    archive2 = io.BytesIO()
    with zipfile.ZipFile(archive2, "w") as z:
        z.writestr("wikitext-2/wiki.valid.tokens", b"valid\n")
    serve(file_server, datasets.SOURCES["wikitext2"].url, archive2.getvalue())
    with pytest.raises(DataError, match="cannot read wikitext-2/wiki.valid.tokens"):
        datasets.fetch("wikitext2-valid", progress=False)  # the kept archive is the first one: no such member


def test_eval_fetches_a_file_from_inside_a_tarball(file_server):
    text = (FIXTURES / "cbt_cn_sample.txt").read_bytes()
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        info = tarfile.TarInfo("CBTest/data/cbtest_CN_test_2500ex.txt")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    serve(file_server, datasets.SOURCES["cbt-cn"].url, archive.getvalue())
    assert resolve_data_path("cbt-cn").read_bytes() == text
    recorded = datasets.SOURCES["cbt-cn"].local().with_name("cbtest_CN_test_2500ex.txt.sha256").read_text()
    assert recorded.strip() == hashlib.sha256(text).hexdigest()  # no pinned hash: the one that arrived


def test_offline_eval_is_one_line_naming_the_url_and_the_place(tmp_path, monkeypatch, capsys):
    port = free_port()  # nothing listens there: offline
    monkeypatch.setenv("GPT2_DOWNLOAD_MIRROR", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("GPT2_DATA_DIR", str(tmp_path))
    model = tmp_path / "model"  # a checkpoint that passes the up-front check: the data is what fails
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_layer": 1, "n_embd": 8, "n_head": 1}))
    assert main(["eval", "--task", "wsc", "-m", str(model)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "WinogradSchemas/WSCollection.xml" in err
    assert f"put it at {tmp_path / 'wsc' / 'WSCollection.xml'}" in err


def test_the_output_dataset_is_in_the_registry_under_its_file_names():
    source = datasets.SOURCES["gpt2-output/small-117M-k40.train"]
    assert source.url == "https://openaipublic.azureedge.net/gpt-2/output-dataset/v1/small-117M-k40.train.jsonl"
    assert source.path == "gpt2-output/small-117M-k40.train.jsonl"
    assert json.dumps(datasets.status()[0])  # the listing is JSON-able


def test_detect_benchmark_fetches_openais_output_dataset(file_server, tmp_path, capsys):
    """`gpt2 detect benchmark --dataset openai`: the six files it needs come through the registry, then
    TF-IDF trains on train, picks C on valid and is tested on test, as OpenAI's baseline."""
    for split, n in (("train", 30), ("valid", 12), ("test", 12)):
        for name, words in (("webtext", "river stone light bread"), ("small-117M-k40", "kernel module function")):
            rows = [{"id": i, "ended": True, "length": 9, "text": f"{words} {i} " * 5} for i in range(n)]
            source = datasets.SOURCES[f"gpt2-output/{name}.{split}"]
            serve(file_server, source.url, "".join(json.dumps(r) + "\n" for r in rows).encode())
    assert main(["detect", "benchmark", "--dataset", "openai", "--detectors", "tfidf", "--limit", "20",
                 "--out", str(tmp_path / "report"), "--no-progress"]) == 0
    assert len(file_server.requests) == 6
    md = capsys.readouterr().out
    assert "| tfidf | 100.00% | 1.0000 |" in md and "train 20 + 20, valid 12 + 12, test 12 + 12" in md
    assert main(["detect", "benchmark", "--out", str(tmp_path / "x")]) == 2  # neither --data-dir nor --dataset


def test_detect_matrix_fetches_the_output_dataset_it_needs(file_server, tmp_path, capsys):
    """`gpt2 detect matrix --dataset openai`: the transfer table from OpenAI's files, fetched through the
    registry: trained on each source, tested on each; the easy source's detector fails on the other."""
    vocab = {"webtext": "river stone light bread", "small-117M-k40": "kernel module function",
             "xl-1542M-nucleus": "river stone light comet"}  # all but one word as the human texts
    for split, n in (("train", 30), ("valid", 12), ("test", 12)):
        for name, words in vocab.items():
            rows = [{"id": i, "ended": True, "length": 9, "text": f"{words} {i} " * 5} for i in range(n)]
            serve(file_server, datasets.SOURCES[f"gpt2-output/{name}.{split}"].url,
                  "".join(json.dumps(r) + "\n" for r in rows).encode())
    assert main(["detect", "matrix", "--dataset", "openai", "--sources", "small-117M-k40", "xl-1542M-nucleus",
                 "--detector", "tfidf", "--limit-train", "20", "--out", str(tmp_path / "m"), "--no-progress"]) == 0
    assert len(file_server.gets()) == 9
    cells = json.loads((tmp_path / "m" / "matrix.json").read_text())["cells"]
    assert cells["small-117M-k40"]["small-117M-k40"]["accuracy"] == 1.0
    assert cells["xl-1542M-nucleus"]["xl-1542M-nucleus"]["accuracy"] == 1.0
    assert cells["small-117M-k40"]["xl-1542M-nucleus"]["accuracy"] < 0.75  # trained on the other: no transfer
    assert main(["detect", "matrix", "--dataset", "openai", "--sources", "gpt-3", "--out", "x"]) == 2
    assert "not in OpenAI's output dataset: gpt-3" in capsys.readouterr().err
