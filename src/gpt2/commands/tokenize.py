"""`gpt2 tokenize`: text -> token ids, ids -> text (--decode), or one token per line (--show)."""

from __future__ import annotations

import argparse
import re
import sys

from gpt2.errors import TokenizerError

EPILOG = """\
examples:
  gpt2 tokenize "Hello world"                 15496 995
  gpt2 tokenize --decode "15496 995"          Hello world
  gpt2 tokenize --show "Hello world"          one token per line: id, then the token's text
                                              (b'...' for a token holding part of a character)
  gpt2 tokenize --count < book.txt            number of tokens in a file
  gpt2 tokenize < in.txt | gpt2 tokenize --decode > out.txt    gives back in.txt exactly

Text from stdin is tokenized exactly as read, trailing newline included (use `printf` or `echo -n`
to leave it out). <|endoftext|> in the text is ordinary text unless --allow-special is given."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "tokenize",
        help="text -> token ids, or ids -> text with --decode",
        description="Tokenize text with GPT-2's byte-level BPE (or another vocabulary), or decode ids.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("text", nargs="?", metavar="TEXT", help="the text (or ids, with --decode); default: stdin")
    p.add_argument(
        "--tokenizer",
        "-t",
        default="gpt2",
        metavar="NAME_OR_DIR",
        help="gpt2 (GPT-2's vocabulary, the default; all sizes share it) or a directory with tokenizer "
        "files (tokenizer.json, vocab.json + merges.txt, encoder.json + vocab.bpe or *.tiktoken)",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--decode", "-d", action="store_true", help="read token ids, print the text they make")
    mode.add_argument("--show", "-s", action="store_true", help="print each token's id and text, one a line")
    mode.add_argument("--count", "-c", action="store_true", help="print only the number of tokens")
    p.add_argument(
        "--allow-special",
        action="store_true",
        help="encode <|endoftext|> in the text as the special end-of-text id (default: as plain text)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpt2.tokenizer import Tokenizer

    tok = Tokenizer.from_pretrained(args.tokenizer)
    text = args.text if args.text is not None else _read_stdin()
    if args.decode:
        sys.stdout.write(tok.decode(parse_ids(text)))
        sys.stdout.flush()
        return 0
    ids = tok.encode(text, allowed_special="all" if args.allow_special else "none")
    if args.count:
        print(len(ids))
    elif args.show:
        width = len(str(tok.vocab_size - 1))
        for i in ids:
            print(f"{i:>{width}}  {_show(tok.token_bytes(i))}")
    else:
        print(" ".join(map(str, ids)))
    return 0


def parse_ids(text: str) -> list[int]:
    """Ids separated by spaces or commas, optionally in [brackets] (a pasted Python list)."""
    pieces = [p for p in re.split(r"[\s,\[\]]+", text) if p]
    try:
        return [int(p) for p in pieces]
    except ValueError:
        bad = next(p for p in pieces if not p.lstrip("-").isdigit())
        raise TokenizerError(
            f"--decode: {bad!r} is not a token id; expected integers separated by spaces or commas"
        ) from None


def _show(token: bytes) -> str:
    """A token as a Python literal: 'text', or b'...' for a piece of a multi-byte character."""
    try:
        return repr(token.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(token)


def _read_stdin() -> str:
    # Bytes, decoded as UTF-8, so the locale cannot change what gets tokenized.
    stream = getattr(sys.stdin, "buffer", None)
    return stream.read().decode("utf-8", errors="replace") if stream is not None else sys.stdin.read()
