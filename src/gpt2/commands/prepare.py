"""`gpt2 prepare`: tokenize text files / jsonl, or a corpus streamed from the Hub, into train and val token
shards for `gpt2 train`."""

from __future__ import annotations

import argparse
import sys

from gpt2.commands._types import count

EPILOG = """\
examples:
  gpt2 prepare ../shared/data/tinyshakespeare/input.txt --txt-split paragraph --val-fraction 0.1 \\
      --tokenizer gpt2 --out data/shakespeare
  gpt2 prepare corpus/ 'extra/*.jsonl' --tokenizer runs/base/checkpoint --out data/corpus
  gpt2 prepare --dataset fineweb-edu --tokenizer gpt2 --out data/fineweb-edu        10B tokens, ~28 GB fetched
  gpt2 prepare --dataset openwebtext --tokenizer gpt2 --out data/owt --max-tokens 1000000000

Inputs: text files, directories (searched recursively for *.txt and *.jsonl), and glob patterns. A .jsonl
line {"text": ...} is one document. A text file is one document, unless --txt-split says to cut it into
blank-line-separated paragraphs or single lines. Each document is written as <|endoftext|> followed by
its tokens; whole documents go to train or val (a seeded hash of the document's index decides).
Output: DIR/train_000000.bin ... and DIR/val_000000.bin ... (raw uint16 token ids, uint32 when the
vocabulary exceeds 65,535), DIR/tokenizer/ and DIR/manifest.json, which is written last.

--dataset streams a corpus from the Hugging Face Hub (HF_ENDPOINT for a mirror): each parquet file is
fetched (the next while the current one is tokenized), tokenized and deleted, so at most two raw files are
on disk. Stopped (Ctrl-C, network, disk), the same command continues from the first file not yet done
(DIR/progress.json)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from gpt2.data import DEFAULT_SHARD_TOKENS, DEFAULT_VAL_FRACTION, TXT_SPLITS

    p = subparsers.add_parser(
        "prepare",
        help="tokenize a corpus into token shards for training",
        description="Tokenize text files and JSON lines into train/val token shards (numpy memmaps).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from gpt2.data.sources import CORPORA

    p.add_argument("inputs", nargs="*", metavar="INPUT", help="text/jsonl files, directories or globs")
    p.add_argument("--dataset", choices=list(CORPORA), metavar="NAME",
                   help=f"instead of INPUTs, a corpus streamed from the Hub: {', '.join(CORPORA)}")
    p.add_argument("--max-tokens", type=count, metavar="N",
                   help="with --dataset: stop after about N tokens, e.g. 1e9 (default: the whole corpus)")
    p.add_argument("--tokenizer", required=True, metavar="NAME_OR_DIR",
                   help="tokenizer: gpt2, or a directory with tokenizer files (e.g. a checkpoint)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory (new or empty)")
    p.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                   help=f"share of documents held out for validation (default: {DEFAULT_VAL_FRACTION})")
    p.add_argument("--txt-split", choices=TXT_SPLITS, default="file",
                   help="what a document is in a text file: the whole file, each blank-line-separated "
                        "paragraph, or each line (default: file)")
    p.add_argument("--shard-tokens", type=int, default=DEFAULT_SHARD_TOKENS,
                   help=f"tokens per shard file (default: {DEFAULT_SHARD_TOKENS:,})")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val assignment (default: 0)")
    p.add_argument("--workers", type=int, default=None,
                   help="tokenizer threads (default: one per CPU core)")
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already prepared in --out")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gpt2.data import prepare, prepare_corpus
    from gpt2.data.shards import PROGRESS
    from gpt2.errors import DataError, GPT2Error

    if bool(args.inputs) == bool(args.dataset):
        raise DataError("give INPUT files or --dataset NAME (one of the two)")
    if args.max_tokens is not None and not args.dataset:
        raise DataError("--max-tokens goes with --dataset")
    common = dict(val_fraction=args.val_fraction, shard_tokens=args.shard_tokens, seed=args.seed,
                  workers=args.workers, overwrite=args.overwrite, progress=not args.quiet)
    if args.dataset:
        try:
            manifest = prepare_corpus(args.dataset, args.tokenizer, args.out, max_tokens=args.max_tokens, **common)
        except (KeyboardInterrupt, OSError, GPT2Error):
            if (Path(args.out) / PROGRESS).is_file():
                print(f"gpt2 prepare: the files done so far are kept ({Path(args.out) / PROGRESS}); run the same "
                      "command again to continue", file=sys.stderr)
            raise
    else:
        manifest = prepare(args.inputs, args.tokenizer, args.out, txt_split=args.txt_split, **common)
    for split, info in manifest["splits"].items():
        print(f"{split}: {info['documents']:,} documents, {info['tokens']:,} tokens in "
              f"{len(info['shards'])} shard(s)")
    if manifest["splits"]["val"]["documents"] == 0 and args.val_fraction > 0:
        print(f"warning: no document went to val; with {manifest['splits']['train']['documents']} documents "
              "use a larger --val-fraction or --txt-split paragraph", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0
