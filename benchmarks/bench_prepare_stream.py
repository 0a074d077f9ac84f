"""What fetching the next parquet file while tokenizing the current one gains in `gpt2 prepare --dataset`.

    python benchmarks/bench_prepare_stream.py [--files 4] [--copies 6] [--rate-mb 8] [--repeats 2]

No Hub is reachable here, so the tests' loopback Hub (tests/conftest.FileServer, HF_ENDPOINT pointed at it)
serves FineWeb-Edu's layout, holding the transfers to --rate-mb MB/s so that the network costs something:
--files parquet files of the shared WebText subset repeated --copies times (real text; ../shared/data
needed). Each repeat runs prepare_corpus with and without prefetching, alternating, into fresh directories,
and checks that both wrote the same shards. Prints the times and their ratio; with prefetching, a file's
download overlaps the previous file's tokenization, so the best case is max(network, tokenizer) instead of
their sum.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the loopback Hub the tests use

from _machine import machine_details  # noqa: E402

from conftest import FileServer  # noqa: E402

WEBTEXT = ROOT.parent / "shared" / "data" / "gpt2-output" / "webtext.subset.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--copies", type=int, default=6, help="times the WebText subset is repeated per file")
    parser.add_argument("--rate-mb", type=float, default=8.0, help="the link's speed, MB/s")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not WEBTEXT.is_file():
        raise SystemExit(f"{WEBTEXT} is absent (it lives outside the project, in ../shared/data)")
    os.environ.setdefault("GPT2_VOCAB_FILE", str(ROOT.parent / "shared" / "vocab" / "r50k_base.tiktoken"))

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from gpt2.data import TokenDataset, prepare_corpus
    from gpt2.data.sources import CORPORA

    print(machine_details(["torch", "tiktoken", "pyarrow", "huggingface_hub"]))
    corpus = CORPORA["fineweb-edu"]
    docs = [json.loads(line)["text"] for line in WEBTEXT.read_text().splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        server = FileServer(Path(tmp) / "served")
        os.environ["HF_ENDPOINT"] = server.url
        os.environ["HF_HOME"] = str(Path(tmp) / "hf-home")
        revision, folder = corpus.locations[0]
        for i in range(args.files):
            path = server.hub_file(corpus.repo, f"{folder}/{i:03d}_00000.parquet")
            pq.write_table(pa.table({"text": [f"{i}.{c} {d}" for c in range(args.copies) for d in docs]}), path)
        size = sum(p.stat().st_size for p in (server.root / "hub").rglob("*.parquet"))
        server.rate = args.rate_mb * 1e6
        print(f"{args.files} files, {size / 1e6:.1f} MB of parquet, link {args.rate_mb} MB/s "
              f"(network alone: {size / server.rate:.1f} s)")
        times: dict[bool, list[float]] = {True: [], False: []}
        for r in range(args.repeats):
            for prefetch in (False, True):
                out = Path(tmp) / f"out-{r}-{prefetch}"
                start = time.perf_counter()
                manifest = prepare_corpus("fineweb-edu", "gpt2", out, progress=False, prefetch=prefetch)
                times[prefetch].append(time.perf_counter() - start)
            shards = [np.concatenate([s[:] for s in TokenDataset(Path(tmp) / f"out-{r}-{p}", "train").shards])
                      for p in (False, True)]
            assert np.array_equal(*shards), "prefetching changed the shards"
        server.close()
    tokens = manifest["splits"]["train"]["tokens"] + manifest["splits"]["val"]["tokens"]
    best = {p: min(t) for p, t in times.items()}
    print(f"{tokens:,} tokens; best of {args.repeats}: without prefetch {best[False]:.2f} s, with "
          f"{best[True]:.2f} s; ratio {best[False] / best[True]:.2f}x (all: {times})")


if __name__ == "__main__":
    main()
