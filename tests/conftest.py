"""Shared test fixtures. The reference data and GPT-2's vocabulary live outside the project, in ../shared
(see its READMEs); tests that need them skip with the reason when it is absent, and never download."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# GPT2_TEST_SHARED=/nonexistent runs the suite as on a machine without ../shared (what .ci/run also does).
SHARED = Path(os.environ.get("GPT2_TEST_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
GPT2_VOCAB_FILE = SHARED / "vocab" / "r50k_base.tiktoken"
# tiktoken caches r50k_base.tiktoken under the sha1 of its download URL.
R50K_CACHE_NAME = "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4"


def shared_data(*parts: str) -> Path:
    """Path under ../shared/data, or skip the calling test when it is not there."""
    path = SHARED.joinpath("data", *parts)
    if not path.exists():
        pytest.skip(f"reference data {path} is absent (it lives outside the project, in ../shared/data)")
    return path


def real_text(max_bytes: int = 1_100_000) -> str:
    """Tiny Shakespeare (1.1 MB) when ../shared has it; else as much real text that every machine has: the
    running Python's documentation and standard library (gpt2.data.stdlib_corpus, what `gpt2 demo` trains on)."""
    path = SHARED / "data" / "tinyshakespeare" / "input.txt"
    if path.is_file():
        return path.read_text(encoding="utf-8")[:max_bytes]
    from gpt2.data.stdlib_corpus import stdlib_documents

    return "\n\n".join(stdlib_documents(max_bytes))[:max_bytes]


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module (`pytestmark = pytest.mark.usefixtures("one_thread")`): tiny models
    gain nothing from threads, and on a busy 2-core machine threads cost 10x."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent (reference data and vocab live outside the project)")
    return SHARED


@pytest.fixture(scope="session")
def gpt2_vocab_file() -> Path:
    if not GPT2_VOCAB_FILE.is_file():
        pytest.skip(f"GPT-2's vocabulary {GPT2_VOCAB_FILE} is absent (see ../shared/vocab/README.md)")
    return GPT2_VOCAB_FILE


@pytest.fixture(scope="session")
def gpt2_tokenizer(tmp_path_factory, gpt2_vocab_file):
    """GPT-2's tokenizer, loaded offline: tiktoken's cache is seeded with ../shared/vocab/r50k_base.tiktoken.
    TIKTOKEN_CACHE_DIR stays set for the session, so `Tokenizer.from_pretrained("gpt2")` works in tests."""
    from gpt2.tokenizer import Tokenizer

    cache = tmp_path_factory.mktemp("tiktoken-cache")
    shutil.copyfile(gpt2_vocab_file, cache / R50K_CACHE_NAME)
    patch = pytest.MonkeyPatch()
    patch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    patch.delenv("GPT2_VOCAB_FILE", raising=False)
    try:
        yield Tokenizer.from_pretrained("gpt2")
    finally:
        patch.undo()


def free_port() -> int:
    """A loopback port nothing listens on (now): for a server to start on, or to stand for being offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Run an ASGI app under uvicorn on a free loopback port in a daemon thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


class FileServer:
    """A loopback HTTP server for the files under `root` (a URL's path is the file's path below it), with
    Range requests as real hosts answer them. `requests` records (method, path, Range header) of every
    request; `ranges=False` makes it ignore Range (a host that always sends the whole file).

    It also answers as the Hugging Face Hub does for the dataset files under `root/hub/<owner>/<name>/`
    (HF_ENDPOINT pointed here; other revisions than main under `root/hub/<owner>/<name>@<revision>/`, with
    "/" in the revision as "_"): `HEAD|GET /datasets/<repo>/resolve/<revision>/<path>` with the headers
    huggingface_hub reads (X-Repo-Commit, an ETag that is the file's sha256, as for LFS files) and
    `GET /api/datasets/<repo>/tree/<revision>/<folder>` listing the files below a folder. `etags` maps
    a repo path ("owner/name/path") to the ETag to announce instead (a file that does not match it); `cut`
    maps a repo path (or a URL path) to a byte count after which the next transfer of it breaks off."""

    def __init__(self, root: Path, ranges: bool = True) -> None:
        import http.server

        self.root, self.ranges, self.requests, self.etags, self.cut = Path(root), ranges, [], {}, {}
        self.commits: dict[str, str] = {}  # commit -> the revision (branch) it was announced for
        self.rate: float | None = None  # bytes per second a transfer is held to (None: as fast as loopback)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):  # noqa: N802 (http.server's names)
                self._answer(body=False)

            def do_GET(self):  # noqa: N802
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                server.requests.append((self.command, self.path, self.headers.get("Range")))
                url = urllib.parse.urlsplit(self.path)
                parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/")]
                if parts[:2] == ["api", "datasets"] and len(parts) >= 6 and parts[4] == "tree":
                    return self._tree(server.repo_dir("/".join(parts[2:4]), parts[5]), "/".join(parts[6:]))
                hub = parts[:1] == ["datasets"] and len(parts) >= 6 and parts[3] == "resolve"
                repo_path = None
                if hub:
                    repo = server.repo_dir("/".join(parts[1:3]), parts[4]).relative_to(server.root / "hub")
                    repo_path = "/".join([str(repo), *parts[5:]])
                path = server.root / ("hub/" + repo_path if hub else url.path.lstrip("/"))
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                spec = self.headers.get("Range", "")
                if server.ranges and spec.startswith("bytes="):
                    start = int(spec.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                if hub:
                    etag = server.etags.get(repo_path) or hashlib.sha256(data).hexdigest()
                    self.send_header("X-Repo-Commit", server.commit(parts[4]))
                    self.send_header("ETag", f'"{etag}"')
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                cut = server.cut.pop(repo_path or url.path, None) if body else None
                if cut is not None:  # the connection drops after `cut` bytes, once
                    self.wfile.write(data[start:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if body and server.rate:  # a link of `rate` bytes/s, not loopback's
                    for at in range(start, len(data), 1 << 16):
                        self.wfile.write(data[at : at + (1 << 16)])
                        time.sleep(min(1 << 16, len(data) - at) / server.rate)
                elif body:
                    self.wfile.write(data[start:])

            def _tree(self, base: Path, folder: str) -> None:
                found = sorted(p for p in (base / folder).rglob("*") if p.is_file()) if folder else []
                entries = [{"type": "file", "path": str(p.relative_to(base)), "size": p.stat().st_size,
                            "oid": hashlib.sha1(p.read_bytes()).hexdigest(),
                            "lfs": {"oid": hashlib.sha256(p.read_bytes()).hexdigest(), "size": p.stat().st_size,
                                    "pointerSize": 134}} for p in found]
                if not (base / folder).is_dir():
                    self.send_error(404)
                    return
                data = json.dumps(entries).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def commit(self, revision: str) -> str:
        """The commit `revision` is at: one per branch (the sha1 of its name); a commit is its own."""
        if revision not in self.commits:
            self.commits[hashlib.sha1(revision.encode()).hexdigest()] = revision
        return revision if revision in self.commits else hashlib.sha1(revision.encode()).hexdigest()

    def repo_dir(self, repo: str, revision: str = "main") -> Path:
        """Where the files of Hub dataset `repo` at `revision` (a branch, or the commit it announced) are:
        hub/<repo> for main, else hub/<repo>@<revision>."""
        revision = self.commits.get(revision, revision)
        return self.root / "hub" / (repo if revision == "main" else f"{repo}@{revision.replace('/', '_')}")

    def hub_file(self, repo: str, path: str, revision: str = "main") -> Path:
        """Where to put file `path` of Hub dataset `repo` (at `revision`) for this server to serve it."""
        dest = self.repo_dir(repo, revision) / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        return dest

    def gets(self, fragment: str = "") -> list[str]:
        """The paths of the GET requests so far whose path contains `fragment`."""
        return [path for method, path, _ in self.requests if method == "GET" and fragment in path]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def file_server(tmp_path) -> Iterator[FileServer]:
    """Files under tmp_path/served, at FileServer.url; GPT2_DOWNLOAD_MIRROR and HF_ENDPOINT point there, and
    the download cache is tmp_path/cache."""
    (tmp_path / "served").mkdir()
    server = FileServer(tmp_path / "served")
    patch = pytest.MonkeyPatch()
    patch.setenv("GPT2_DOWNLOAD_MIRROR", server.url)
    patch.setenv("HF_ENDPOINT", server.url)
    patch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no user token or cache of the real Hub read or touched
    patch.setenv("GPT2_DATA_DIR", str(tmp_path / "cache"))
    try:
        yield server
    finally:
        patch.undo()
        server.close()
