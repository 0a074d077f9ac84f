"""The `--no-pack` option of the commands that run a model for inference (see gpt2.packing)."""

from __future__ import annotations

import argparse


def add_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-pack", action="store_true",
                   help="keep the weights in their plain layout on CPU (slower; saves a copy of the "
                   "vocabulary projection, see gpt2.packing)")


def apply(model, args: argparse.Namespace):
    """The model packed for faster CPU inference, unless --no-pack or it cannot be (GPU, fp16, no oneDNN)."""
    from gpt2.packing import pack_if_possible

    return model if args.no_pack else pack_if_possible(model)
