"""`gpt2 tokenizer train|export`: train a byte-level BPE vocabulary, or write one as Hugging Face files."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

TRAIN_EPILOG = """\
inputs: text files, directories (searched recursively for *.txt and *.jsonl), glob patterns, and
.jsonl files whose lines are {"text": ...} objects.

example:
  gpt2 tokenizer train --vocab-size 8192 --out tok/ data/*.txt
  gpt2 tokenize --tokenizer tok/ "Hello world"

The vocabulary is GPT-2's kind: byte-level BPE with GPT-2's pre-tokenizer regex, all 256 bytes as the
first tokens and <|endoftext|> as the last id. The files (vocab.json, merges.txt, tokenizer.json,
tokenizer_config.json, special_tokens_map.json) load in transformers' GPT2Tokenizer as well."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tokenizer",
        help="train a BPE vocabulary, or export one as Hugging Face files",
        description="Train or export byte-level BPE vocabularies.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    train = actions.add_parser(
        "train",
        help="train a new vocabulary on text files",
        description="Train a GPT-2 style byte-level BPE vocabulary (with Hugging Face tokenizers).",
        epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("inputs", nargs="+", metavar="INPUT", help="text / .jsonl files, directories, globs")
    train.add_argument(
        "--vocab-size", type=int, required=True, metavar="N", help="ids in all, <|endoftext|> included"
    )
    train.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory for the files")
    train.add_argument(
        "--min-frequency", type=int, default=2, metavar="K", help="merge only pairs seen K times (default 2)"
    )
    train.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    train.set_defaults(func=run_train)

    export = actions.add_parser(
        "export",
        help="write a vocabulary (e.g. gpt2) as Hugging Face tokenizer files",
        description="Load a vocabulary (a name like gpt2, or any supported files) and write it in the "
        "Hugging Face layout: vocab.json, merges.txt, tokenizer.json, tokenizer_config.json, "
        "special_tokens_map.json.",
    )
    export.add_argument("tokenizer", metavar="NAME_OR_DIR", help="gpt2, or a directory / file to convert")
    export.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory for the files")
    export.set_defaults(func=run_export)


def run_train(args: argparse.Namespace) -> int:
    from gpt2.data import expand_inputs, read_documents
    from gpt2.tokenizer import Tokenizer

    files = expand_inputs(args.inputs)
    size = sum(f.stat().st_size for f in files)
    log = (lambda *a: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    log(f"training a {args.vocab_size}-token BPE on {len(files)} file(s), {size / 1e6:.1f} MB")
    start = time.perf_counter()
    texts = (doc for f in files for doc in read_documents(f))
    tok = Tokenizer.train(
        texts,
        args.vocab_size,
        min_frequency=args.min_frequency,
        show_progress=not args.quiet and sys.stderr.isatty(),
        name=str(args.out),
    )
    tok.save_pretrained(args.out)
    note = "" if tok.vocab_size == args.vocab_size else " (the text has no more pairs to merge)"
    log(f"trained {tok.vocab_size} tokens{note} in {time.perf_counter() - start:.1f} s")
    print(f"wrote {args.out} (vocab_size {tok.vocab_size}, <|endoftext|> = {tok.eot_token_id})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from gpt2.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(args.tokenizer)
    tok.save_pretrained(args.out)
    print(f"wrote {args.out} (vocab_size {tok.vocab_size}, <|endoftext|> = {tok.eot_token_id})")
    return 0
