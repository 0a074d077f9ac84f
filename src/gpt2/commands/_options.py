"""The options of every command that runs a model for inference: --model, --dtype, --device, --no-pack.

Imported by the commands at parse time, so it imports only the light core (checkpoint, hardware, inference:
no training, evaluation or detection) to keep `gpt2 --help` fast."""

from __future__ import annotations

import argparse

from gpt2.checkpoint import check_name
from gpt2.hardware import DTYPE_CHOICES
from gpt2.inference import load_for_inference


def add_options(p: argparse.ArgumentParser, *, model: str | None = "gpt2", int8: bool = False) -> None:
    """Add the options; `model` is --model's default (None: required by the command at run time)."""
    p.add_argument("--model", "-m", default=model, metavar="DIR_OR_NAME",
                   help="checkpoint directory or hub name: gpt2, gpt2-medium, ..."
                   + (f" (default: {model})" if model else ""))
    add_compute_options(p, int8=int8)


def add_compute_options(p: argparse.ArgumentParser, *, int8: bool = False) -> None:
    """--dtype, --device and --no-pack alone (for commands whose --model means something else)."""
    choices = [*DTYPE_CHOICES, *(["int8"] if int8 else [])]
    p.add_argument("--dtype", choices=choices, default="auto",
                   help="weights' precision (default: auto = bf16 where the device multiplies it natively: "
                   "CUDA compute capability >= 8.0, AMX or AVX512-BF16 CPUs; else fp32)"
                   + ("; int8: int8 weights, CPU only (int8 activations where bf16 is emulated)" if int8 else ""))
    p.add_argument("--device", default="auto",
                   help="auto, cpu, cuda, cuda:N, ... (default: auto = cuda if available, else cpu)")
    p.add_argument("--no-pack", action="store_true",
                   help="keep the weights in their plain layout on CPU (slower; saves a copy of the "
                   "vocabulary projection, see gpt2.packing)")


def check(args: argparse.Namespace) -> None:
    """--model names a checkpoint (checked without loading it), so a command fails before its slow work."""
    check_name(args.model)


def load(args: argparse.Namespace):
    """(model, tokenizer) as the options say (gpt2.inference.load_for_inference)."""
    return load_for_inference(args.model, device=args.device, dtype=args.dtype, pack=not args.no_pack)
