"""`gpt2 info`: what a checkpoint holds, without loading its weights."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "info",
        help="describe a checkpoint: config, parameters, dtype, tokenizer, files",
        description="Describe a checkpoint directory (or hub name) without loading its weights.",
    )
    p.add_argument("model", metavar="DIR_OR_NAME", help="checkpoint directory or hub name")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    info = describe(args.model)
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


def describe(name_or_path: str) -> dict[str, Any]:
    """A checkpoint's config, parameter counts, stored dtypes, tokenizer, files and metadata."""
    import torch

    from gpt2.checkpoint import CONFIG_FILE, load_tokenizer, read_metadata, resolve
    from gpt2.config import GPTConfig
    from gpt2.errors import CheckpointError, ConfigError, GPT2Error
    from gpt2.model import GPT

    directory = resolve(name_or_path)
    try:
        config = GPTConfig.load(directory / CONFIG_FILE)
    except ConfigError as e:
        raise CheckpointError(str(e)) from None
    with torch.device("meta"):  # counts from shapes; nothing allocated
        model = GPT(config)
    try:
        tok = load_tokenizer(directory)
        tokenizer = {"type": type(tok).__name__, "name": tok.name, "vocab_size": tok.vocab_size}
    except GPT2Error as e:
        tokenizer = {"error": str(e)}
    return {
        "path": str(directory),
        "config": dataclasses.asdict(config),
        "parameters": model.num_parameters(),
        "non_embedding_parameters": model.num_parameters(exclude_embeddings=True),
        "dtypes": stored_dtypes(directory),
        "tokenizer": tokenizer,
        "files": {p.name: p.stat().st_size for p in sorted(directory.iterdir()) if p.is_file()},
        "metadata": read_metadata(directory),
    }


def stored_dtypes(directory: Path) -> list[str]:
    """The dtypes of the tensors in a directory's safetensors files (read from their headers)."""
    from safetensors import SafetensorError, safe_open

    from gpt2.errors import CheckpointError

    dtypes: set[str] = set()
    for path in sorted(directory.glob("*.safetensors")):
        try:
            with safe_open(path, framework="pt") as f:
                dtypes.update(f.get_slice(key).get_dtype() for key in f.keys())
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path}: corrupt or unreadable safetensors file ({e})") from None
    return sorted(dtypes)


def human_count(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
