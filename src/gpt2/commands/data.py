"""`gpt2 data`: the public data files the project reads (gpt2.data.sources): list them, fetch them."""

from __future__ import annotations

import argparse
import json

EPILOG = """\
examples:
  gpt2 data list                               every source, its licence, and whether it is here already
  gpt2 data get lambada wikitext2 ptb          download (once; resumable, checksummed) into the data dir
  gpt2 data get gpt2-output/webtext.test gpt2-output/small-117M-k40.test
  gpt2 data get cnn-dailymail wmt14-fr-en nq-open   Hub parquet files, converted to the tasks' jsonl

Files go to $GPT2_DATA_DIR (default ~/.cache/gpt2) at the layout `gpt2 eval` reads, which fetches what a
task needs by itself; GPT2_DOWNLOAD_MIRROR=http://host fetches every URL's path from another host, and
HF_ENDPOINT=http://host the Hub's files. The corpora (openwebtext, fineweb-edu) are not kept but streamed
into token shards: gpt2 prepare --dataset fineweb-edu --tokenizer gpt2 --out data/fineweb-edu"""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("data", help="list and download the public data files (benchmarks, outputs)",
                              description="The public data files the project reads, and their download.",
                              epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="every source: name, here or not, licence, what it is")
    ls.add_argument("--json", action="store_true", help="one JSON object per source")
    ls.set_defaults(func=run_list)
    get = sub.add_parser("get", help="download sources into the data directory")
    get.add_argument("names", nargs="+", metavar="NAME")
    get.add_argument("--no-progress", action="store_true")
    get.set_defaults(func=run_get)


def run_list(args: argparse.Namespace) -> int:
    from gpt2.data.sources import status

    rows = status()
    if args.json:
        print("\n".join(json.dumps(r) for r in rows))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        where = "here" if r["present"] else "prep" if r["kind"] == "corpus" else "    "
        print(f"{r['name']:<{width}}  {where}  {r['description']} ({r['licence']})")
    print("\nhere: in the data directory; prep: a corpus, streamed by `gpt2 prepare --dataset NAME`")
    return 0


def run_get(args: argparse.Namespace) -> int:
    from gpt2.data.sources import SOURCES, fetch, unknown

    for name in args.names:
        if name not in SOURCES:
            raise unknown(name)
    for name in args.names:
        print(f"{name}: {fetch(name, progress=not args.no_progress)}")
    return 0
