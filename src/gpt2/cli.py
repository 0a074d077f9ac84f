"""The `gpt2` command: a thin argparse front over the library. Each subcommand lives in `gpt2.commands.<name>`
with `register(subparsers)`, which adds its parser and sets `func` to a function taking the parsed args."""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
import warnings

from gpt2.errors import GPT2Error

# Subcommand modules, in the order `gpt2 --help` lists them.
COMMANDS = [
    "demo", "generate", "info", "tokenize", "tokenizer", "data", "prepare", "train", "eval", "bias", "card",
    "outputs", "detect", "serve", "study",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpt2", description="GPT-2: sample, train, tokenize and inspect models."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"gpt2.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(args.command, warnings.showwarning)
            return args.func(args) or 0
    except GPT2Error as e:
        print(f"gpt2 {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"gpt2 {args.command}: interrupted", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno not in _ENVIRONMENT_ERRNOS:
            raise
        # the machine, not the program: a full disk, a read-only or forbidden path; one line naming it
        where = f"{e.filename}: " if e.filename else ""
        print(f"gpt2 {args.command}: error: {where}{e.strerror}", file=sys.stderr)
        return 1


_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM}


def _one_line_warnings(command: str, default):
    """The project's own warnings as `gpt2 CMD: warning: ...` lines; other libraries' as they print them."""

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("gpt2") or "/gpt2/" in filename.replace("\\", "/"):
            print(f"gpt2 {command}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


if __name__ == "__main__":
    sys.exit(main())
