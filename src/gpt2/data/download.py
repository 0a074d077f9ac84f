"""Downloads a user can trust: a cache directory, resume of interrupted transfers, checksums, progress bars,
and, offline, one line that names the URL and where to put the file by hand.

    path = download("https://openaipublic.azureedge.net/gpt-2/detector-models/v1/detector-base.pt",
                    cache_path("detector-models", "detector-base.pt"))

A transfer goes to `<file>.part` and is renamed into place only when complete (and verified, when a sha256
is given), so a file at its final path is always whole. A `.part` left by an interrupted run is continued
with an HTTP Range request. `GPT2_DOWNLOAD_MIRROR=http://host:port` fetches every URL's path from that host
instead (a mirror, or the local server the tests run).
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from gpt2.errors import GPT2Error
from gpt2.files import file_sha256, fsync_dir

CACHE_ENV = "GPT2_DATA_DIR"
MIRROR_ENV = "GPT2_DOWNLOAD_MIRROR"
CHUNK = 1 << 20
T = TypeVar("T")


class DownloadError(GPT2Error):
    """A file could not be fetched, or what arrived is not the file expected."""


class NotOnHub(DownloadError):
    """The Hub answered, and has no such file, folder or revision (404)."""


def cache_path(*parts: str) -> Path:
    """Where downloads live: $GPT2_DATA_DIR, else ~/.cache/gpt2 (XDG_CACHE_HOME respected)."""
    root = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gpt2"
    return Path(root).joinpath(*parts)


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, progress: bool = True) -> Path:
    """`dest`, fetched from `url` unless it is already there (and matches `sha256`, when given)."""
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or file_sha256(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    source = mirrored(url)
    try:
        _fetch(source, part, progress)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", None) or e
        kept = " (what arrived is kept: run again to resume)" if part.is_file() and part.stat().st_size else ""
        raise DownloadError(f"could not download {source} ({reason}){kept}; offline, fetch it elsewhere and put it "
                            f"at {dest}") from None
    if sha256 is not None:
        actual = file_sha256(part)
        if actual != sha256:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{dest.name} from {source}: sha256 is {actual}, expected {sha256}; the download "
                                "was corrupted or the file has changed upstream (removed; run again to retry)")
    os.replace(part, dest)
    fsync_dir(dest.parent)
    return dest


def mirrored(url: str) -> str:
    """`url` with its scheme and host replaced by $GPT2_DOWNLOAD_MIRROR's, when that is set."""
    mirror = os.environ.get(MIRROR_ENV)
    if not mirror:
        return url
    path = urllib.parse.urlsplit(url)
    return mirror.rstrip("/") + path.path + (f"?{path.query}" if path.query else "")


def _fetch(url: str, part: Path, progress: bool) -> None:
    """Fetch `url` into `part`, continuing what is there (Range request) when the server allows it."""
    from tqdm.auto import tqdm

    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:
            raise
        # 416: the part is as long as the file, or longer (a stale part of another version): fetch it whole
        part.unlink()
        return _fetch(url, part, progress)
    with response:
        resumed = have and response.status == 206
        if not resumed:
            have = 0  # the server sent the whole file: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with open(part, "ab" if resumed else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=part.name.removesuffix(".part"),
                disable=not progress) as bar:
            while chunk := response.read(CHUNK):
                f.write(chunk)
                bar.update(len(chunk))
            f.flush()
            os.fsync(f.fileno())
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"{url}: the transfer stopped at {part.stat().st_size:,} of {total:,} bytes; run "
                            "again to continue it")


# ---- the Hugging Face Hub (datasets stored as parquet files there) ----

HUB_ENDPOINT = "https://huggingface.co"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def hub_endpoint() -> str:
    """$HF_ENDPOINT (a mirror, or the tests' local server), else the Hub; read at each call, not at import."""
    return os.environ.get("HF_ENDPOINT", HUB_ENDPOINT).rstrip("/")


def hub_url(repo: str, filename: str, revision: str = "main") -> str:
    return f"{hub_endpoint()}/datasets/{repo}/resolve/{urllib.parse.quote(revision, safe='')}/{filename}"


def hub_download(repo: str, filename: str, dest_dir: str | os.PathLike, *, revision: str = "main",
                 progress: bool = True) -> Path:
    """`dest_dir/filename`, a file of dataset `repo` on the Hub, fetched by huggingface_hub (resumable, and
    not fetched again while the Hub's ETag is unchanged), then checked against its sha256 when the Hub
    names one (files stored with LFS, i.e. every parquet file: their ETag is the content's sha256).

    Offline, a file already at `dest_dir/filename` is used as it is; without one, one line says what to
    fetch and where to put it."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    local = Path(dest_dir) / filename
    url = hub_url(repo, filename, revision)
    silence = not progress and not are_progress_bars_disabled()
    try:
        meta = get_hf_file_metadata(url)  # one quick request, no retries: offline fails here, not after 30 s
        if silence:
            disable_progress_bars()
        # the commit the metadata came from: a push in between cannot pair this ETag with other bytes
        path = Path(hf_hub_download(repo, filename, repo_type="dataset", revision=meta.commit_hash or revision,
                                    local_dir=dest_dir, endpoint=hub_endpoint()))
    except _hub_errors() as e:
        if local.is_file() and _status(e) is None:
            return local
        raise _hub_failure(e, url, f"offline, fetch it elsewhere and put it at {local}") from None
    finally:
        if silence:
            enable_progress_bars()
    etag = meta.etag or ""
    if _SHA256.fullmatch(etag):
        actual = file_sha256(path)
        if actual != etag:
            path.unlink()
            raise DownloadError(f"{filename} from {url}: sha256 is {actual}, expected {etag} (the Hub's ETag); "
                                "removed, run again to retry")
    return path


def hub_commit(repo: str, filename: str, revision: str = "main") -> str:
    """The commit `revision` of dataset `repo` is at now (as the Hub says for one of its files): downloads
    pinned to it read one version of the dataset however long they take."""
    from huggingface_hub import get_hf_file_metadata

    url = hub_url(repo, filename, revision)
    try:
        return get_hf_file_metadata(url).commit_hash or revision
    except _hub_errors() as e:
        raise _hub_failure(e, url, "the data needs the network (or HF_ENDPOINT, a mirror)") from None


def hub_list(repo: str, folder: str, *, revision: str = "main",
             suffix: str = ".parquet") -> list[tuple[str, int, str | None]]:
    """(path, size, sha256 if stored with LFS) of the files under `folder` of dataset `repo` whose name ends
    with `suffix`, sorted by path."""
    from huggingface_hub import HfApi

    where = f"{hub_endpoint()}/datasets/{repo}/tree/{revision}/{folder}"
    try:
        entries = HfApi(endpoint=hub_endpoint()).list_repo_tree(repo, folder, repo_type="dataset",
                                                                  revision=revision, recursive=True)
        files = sorted((e.path, e.size, e.lfs.sha256 if getattr(e, "lfs", None) else None) for e in entries
                       if e.path.endswith(suffix) and hasattr(e, "size"))
    except _hub_errors() as e:
        raise _hub_failure(e, where, "the data needs the network (or HF_ENDPOINT, a mirror)") from None
    if not files:
        raise NotOnHub(f"{where}: no {suffix} files there")
    return files


def first_on_hub(attempts: Sequence[Callable[[], T]]) -> T:
    """The result of the first attempt that finds its file or folder on the Hub; a DataError naming every
    place tried when none does. Other failures (offline, checksum) stop at once."""
    missing = []
    for attempt in attempts:
        try:
            return attempt()
        except NotOnHub as e:
            missing.append(str(e))
    raise DownloadError("; ".join(missing))


def _hub_errors() -> tuple[type[BaseException], ...]:
    """What a failed Hub request raises, whichever HTTP library this huggingface_hub version uses; not
    local OSErrors (a full disk, a permission) that are no network failure."""
    import importlib

    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    errors: list[type[BaseException]] = [HfHubHTTPError, LocalEntryNotFoundError, ConnectionError, TimeoutError]
    for module, name in (("httpx2", "HTTPError"), ("httpx", "HTTPError"), ("requests", "RequestException")):
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


def _hub_failure(e: BaseException, where: str, offline: str) -> DownloadError:
    """The one-line error for a failed Hub request: not there (404), refused (401/403), or unreachable."""
    status = _status(e)
    if status == 404:
        return NotOnHub(f"{where}: not on the Hub (404)")
    if status in (401, 403):
        return DownloadError(f"{where}: the Hub refused access ({status}); a gated or private dataset needs "
                             "`hf auth login` or HF_TOKEN (or the name is wrong)")
    return DownloadError(f"could not reach {where} ({_reason(e)}); {offline}")


def _status(e: BaseException) -> int | None:
    return getattr(getattr(e, "response", None), "status_code", None)


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return text if len(text) < 200 else text[:200] + "..."
