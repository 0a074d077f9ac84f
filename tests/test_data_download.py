"""gpt2.data.download end to end against a loopback HTTP server: cache, resume, checksum, offline."""

from __future__ import annotations

import hashlib

import pytest

from conftest import FileServer, free_port
from gpt2.data.download import DownloadError, cache_path, download, mirrored

URL = "https://openaipublic.azureedge.net/gpt-2/detector-models/v1/detector-base.pt"
DATA = bytes(range(256)) * 4096  # 1 MiB


def served(server: FileServer, data: bytes = DATA) -> str:
    path = server.root / "gpt-2/detector-models/v1/detector-base.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def test_first_call_downloads_and_verifies_the_second_does_not(file_server):
    sha = served(file_server)
    dest = cache_path("detector-models", "detector-base.pt")
    assert str(dest).startswith(str(file_server.root.parent / "cache"))
    assert download(URL, dest, sha256=sha, progress=False) == dest and dest.read_bytes() == DATA
    assert file_server.requests == [("GET", "/gpt-2/detector-models/v1/detector-base.pt", None)]
    download(URL, dest, sha256=sha, progress=False)
    assert len(file_server.requests) == 1  # cached: no second request
    assert not dest.with_name(dest.name + ".part").exists()


def test_an_interrupted_download_resumes_where_it_stopped(file_server, tmp_path):
    sha = served(file_server)
    dest = tmp_path / "out" / "detector-base.pt"
    dest.parent.mkdir()
    dest.with_name(dest.name + ".part").write_bytes(DATA[:300_000])  # what a killed run left
    download(URL, dest, sha256=sha, progress=False)
    assert dest.read_bytes() == DATA
    assert file_server.requests == [("GET", "/gpt-2/detector-models/v1/detector-base.pt", "bytes=300000-")]


def test_a_host_without_ranges_sends_everything_and_the_file_is_still_whole(tmp_path, monkeypatch):
    server = FileServer(tmp_path, ranges=False)
    try:
        monkeypatch.setenv("GPT2_DOWNLOAD_MIRROR", server.url)
        sha = served(server)
        dest = tmp_path / "d.pt"
        dest.with_name("d.pt.part").write_bytes(b"garbage that is not a prefix")
        download(URL, dest, sha256=sha, progress=False)
        assert dest.read_bytes() == DATA
    finally:
        server.close()


def test_a_corrupted_file_fails_the_checksum_naming_both_hashes(file_server, tmp_path):
    served(file_server, DATA[:-1] + b"\x00")
    expected = hashlib.sha256(DATA).hexdigest()
    dest = tmp_path / "d.pt"
    with pytest.raises(DownloadError) as info:
        download(URL, dest, sha256=expected, progress=False)
    message = str(info.value)
    assert expected in message and hashlib.sha256(DATA[:-1] + b"\x00").hexdigest() in message
    assert "d.pt" in message and not dest.exists() and not (tmp_path / "d.pt.part").exists()


def test_offline_is_one_line_naming_the_url_and_where_to_put_the_file(tmp_path, monkeypatch):
    port = free_port()  # nothing listens there: offline
    monkeypatch.setenv("GPT2_DOWNLOAD_MIRROR", f"http://127.0.0.1:{port}")
    dest = tmp_path / "detector-base.pt"
    with pytest.raises(DownloadError) as info:
        download(URL, dest, progress=False)
    message = str(info.value)
    assert "\n" not in message and f"127.0.0.1:{port}/gpt-2/detector-models/v1/detector-base.pt" in message
    assert f"put it at {dest}" in message


def test_the_mirror_keeps_the_path_and_query(monkeypatch):
    monkeypatch.delenv("GPT2_DOWNLOAD_MIRROR", raising=False)
    assert mirrored(URL) == URL
    monkeypatch.setenv("GPT2_DOWNLOAD_MIRROR", "http://127.0.0.1:9/")
    assert mirrored("https://host.example/a/b.json?x=1") == "http://127.0.0.1:9/a/b.json?x=1"


def test_a_stale_part_longer_than_the_file_is_fetched_again_whole(file_server, tmp_path):
    sha = served(file_server)
    dest = tmp_path / "d.pt"
    dest.with_name("d.pt.part").write_bytes(DATA + b"left over from another version")
    download(URL, dest, sha256=sha, progress=False)  # the host answers 416 to the Range: start over
    assert dest.read_bytes() == DATA and [r for *_, r in file_server.requests] == [f"bytes={len(DATA) + 30}-", None]
