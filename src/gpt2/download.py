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
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from gpt2.errors import GPT2Error
from gpt2.io import file_sha256, fsync_dir

CACHE_ENV = "GPT2_DATA_DIR"
MIRROR_ENV = "GPT2_DOWNLOAD_MIRROR"
CHUNK = 1 << 20


class DownloadError(GPT2Error):
    """A file could not be fetched, or what arrived is not the file expected."""


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
