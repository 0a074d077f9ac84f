"""Loading a model for inference: checkpoint, tokenizer, device, dtype and weight layout, in one place.

Every command that runs a model without training it (generate, eval, bias, outputs, serve, the detectors'
scoring models) loads it here, so `auto` means the same everywhere (gpt2.hardware) and the CPU layout
(gpt2.packing) is chosen once.
"""

from __future__ import annotations

import os

import torch

from gpt2.checkpoint import load_tokenizer
from gpt2.errors import ConfigError
from gpt2.hardware import resolve_device, resolve_dtype
from gpt2.model import GPT
from gpt2.packing import pack_if_possible
from gpt2.quantize import quantize_int8
from gpt2.tokenizer import Tokenizer

INT8 = "int8"  # int8 weights, int8 or bf16 activations by CPU class, CPU only (gpt2.quantize)


def load_for_inference(name: str | os.PathLike, device: str | torch.device | None = "auto",
                       dtype: str | torch.dtype | None = "auto", pack: bool = True) -> tuple[GPT, Tokenizer]:
    """(model in eval mode, its tokenizer) for a checkpoint directory or hub name.

    device: `auto` (CUDA if present, else CPU) or a torch device. dtype: `auto` (bf16 where the device
    multiplies it natively, else fp32), `fp32`, `bf16`, `fp16`, or `int8` (CPU). pack: on CPU, prepack the
    weights in oneDNN's layout where this machine can (gpt2.packing), else keep the plain layout.
    """
    tokenizer = load_tokenizer(name)  # first: it is quick, and its errors need no model load
    device = resolve_device("cpu" if dtype == INT8 and device in (None, "auto") else device)
    if dtype == INT8:
        if device.type != "cpu":
            raise ConfigError(f"--dtype int8 runs on the CPU only; got --device {device}")
        model = quantize_int8(GPT.from_pretrained(name, device=device, dtype=torch.float32))
    else:
        model = GPT.from_pretrained(name, device=device, dtype=resolve_dtype(dtype, device))
    if pack:
        model = pack_if_possible(model)
    return model, tokenizer
