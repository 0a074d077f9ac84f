"""`gpt2 info`: what a checkpoint holds, without loading its weights."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="describe a checkpoint (config, parameters, dtype, tokenizer, files) or this machine",
        description="Describe a checkpoint directory (or hub name) without loading its weights; with --machine, "
        "what this machine computes fast and what --dtype auto and --device auto pick here.",
    )
    p.add_argument("model", nargs="?", metavar="DIR_OR_NAME", help="checkpoint directory or hub name")
    p.add_argument("--machine", action="store_true",
                   help="CPU class (AMX, AVX512-BF16, AVX-512, AVX2), GPU, packed layouts, the auto choices")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpt2.checkpoint import describe, human_count
    from gpt2.errors import GPT2Error
    from gpt2.model import GPT

    if args.machine:
        from gpt2.hardware import report, summary

        print(json.dumps(summary(), indent=2) if args.json else report())
        return 0
    if args.model is None:
        raise GPT2Error("give a checkpoint directory or hub name, or --machine")
    info = describe(args.model, GPT)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"checkpoint   {info['path']}")
    print(f"parameters   {info['parameters']:,} ({human_count(info['parameters'])}); "
          f"{info['non_embedding_parameters']:,} without embeddings")
    print(f"dtype        {', '.join(info['dtypes']) or 'unknown'}")
    tok = info["tokenizer"]
    print(f"tokenizer    {tok['type']} {tok['name']}, vocab size {tok['vocab_size']:,}" if "error" not in tok
          else f"tokenizer    unavailable: {tok['error']}")
    print("config")
    for key, value in info["config"].items():
        print(f"  {key:<20} {value}")
    print("files")
    for name, size in info["files"].items():
        print(f"  {name:<32} {human_bytes(size):>10}")
    if info["metadata"]:
        print("metadata")
        for key, value in info["metadata"].items():
            print(f"  {key:<20} {json.dumps(value) if isinstance(value, dict | list) else value}")
    return 0


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
