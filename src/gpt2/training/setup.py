"""Building a run: its checkpoint (if resuming), tokenizer, model, context length, validation data,
random seeds, precision and DDP wrapper, and putting a resumed run back where its checkpoint left it."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from gpt2.checkpoint import load_tokenizer
from gpt2.config import GPTConfig
from gpt2.data import BatchLoader, TokenDataset
from gpt2.errors import GPT2Error
from gpt2.hardware import resolve_dtype
from gpt2.model import GPT
from gpt2.tokenizer import Tokenizer
from gpt2.training import checkpointing
from gpt2.training.config import MODEL_OVERRIDES, TrainConfig
from gpt2.training.distributed import Distributed
from gpt2.training.optim import Optimizers
from gpt2.training.schedule import Schedule

# Encoded by both tokenizers when fine-tuning: if they disagree here, the data was made with another one.
_TOKENIZER_PROBE = "Hello, world! The quick brown fox: 1234 caf\u00e9 \u65e5\u672c \U0001f600\n\n  end."


class TrainingError(GPT2Error):
    """A run cannot start or continue (run directory state, incompatible data, diverged loss)."""


def find_checkpoint(run_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run; either way the run directory must agree."""
    checkpoint = checkpointing.latest_checkpoint(run_dir)
    if resume and checkpoint is None:
        raise TrainingError(f"{run_dir}: no checkpoint to resume from")
    if not resume and checkpoint is not None:
        raise TrainingError(f"{run_dir} already holds a checkpoint; pass --resume to continue that run, "
                            "or choose another --out")
    return checkpoint


def tokenizer_for(config: TrainConfig, train_data: TokenDataset, checkpoint: Path | None) -> Tokenizer:
    """The data's tokenizer; when fine-tuning (or resuming), the checkpoint's, which must encode as it."""
    data_tok = Tokenizer.from_pretrained(train_data.tokenizer_dir)
    if checkpoint is None and config.init_from is None:
        return data_tok
    source = checkpoint or config.init_from  # fine-tuning keeps the checkpoint's tokenizer
    tok = load_tokenizer(source)
    if tok.encode(_TOKENIZER_PROBE) != data_tok.encode(_TOKENIZER_PROBE) or \
            tok.eot_token_id != data_tok.eot_token_id:
        raise TrainingError(
            f"{config.data} was tokenized with {train_data.manifest['tokenizer']['name']}, which encodes "
            f"text differently from the tokenizer of {source}; prepare the data again with "
            f"`gpt2 prepare ... --tokenizer {source}`"
        )
    return tok


def model_for(config: TrainConfig, train_data: TokenDataset, tokenizer: Tokenizer,
              checkpoint: Path | None) -> GPT:
    """The weights to train, in float32: the checkpoint's (resuming, fine-tuning) or a fresh preset's."""
    source = checkpoint or config.init_from
    if source is not None:
        model = GPT.from_pretrained(source, dtype=torch.float32)
        set_dropout(model, config.dropout)
        data_vocab = train_data.manifest["tokenizer"]["vocab_size"]
        if model.config.vocab_size < data_vocab:
            raise TrainingError(f"{source}: vocab_size {model.config.vocab_size} is smaller than the data's "
                                f"tokenizer's {data_vocab}")
        return model
    overrides = {k: getattr(config, k) for k in MODEL_OVERRIDES if getattr(config, k) is not None}
    eot, p = tokenizer.eot_token_id, config.dropout
    gpt_config = GPTConfig.from_preset(
        config.model_size, **overrides, vocab_size=tokenizer.vocab_size, bos_token_id=eot, eos_token_id=eot,
        resid_pdrop=p, embd_pdrop=p, attn_pdrop=p,
    )
    torch.manual_seed(config.seed)  # the same initial weights on every rank and every rerun
    return GPT(gpt_config)


def set_dropout(model: GPT, p: float) -> None:
    """Apply `p` to a loaded model (its config.json's dropout is the pretraining run's, not this one's)."""
    model.config = dataclasses.replace(model.config, resid_pdrop=p, embd_pdrop=p, attn_pdrop=p)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = p
        if hasattr(module, "attn_dropout"):
            module.attn_dropout = p


def seq_len_for(config: TrainConfig, model: GPT) -> int:
    seq_len = config.seq_len or model.config.n_positions
    if seq_len > model.config.n_positions:
        raise TrainingError(f"seq_len {seq_len} exceeds the model's context length "
                            f"{model.config.n_positions} (n_positions)")
    return seq_len


def val_data_for(config: TrainConfig, seq_len: int) -> TokenDataset | None:
    val = TokenDataset(config.data, "val")
    return val if len(val) > seq_len else None  # at least one window of seq_len + 1 tokens


def seed_rngs(seed: int, rank: int) -> None:
    # Different dropout masks per rank; everything else draws from seeded generators of its own.
    torch.manual_seed(seed + rank)
    np.random.seed((seed + rank) % 2**32)
    random.seed(seed + rank)


def use_bf16(dtype: str, device: torch.device) -> bool:
    """bf16 autocast where asked, or with `auto` where this device multiplies bf16 natively; fp32 matmuls
    run on TF32 tensor cores on CUDA, as nanoGPT's."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    return resolve_dtype(dtype, device) == torch.bfloat16


def wrap_ddp(model: torch.nn.Module, dist: Distributed) -> torch.nn.Module:
    if not dist.enabled:
        return model
    return DistributedDataParallel(model, device_ids=[dist.device.index] if dist.device.type == "cuda" else None)


def restore(checkpoint: Path, optimizer: torch.optim.Optimizer | Optimizers, loader: BatchLoader,
            schedule: Schedule, dist: Distributed, log: Callable[[str], None]) -> dict[str, Any]:
    """Put a resumed run's optimizer, loader position, schedule and random streams back as they were at
    `checkpoint`; returns the checkpoint's step, tokens and val_loss."""
    state = checkpointing.load_state(checkpoint)
    optimizer.load_state_dict(state["optimizer"])
    loader.load_state_dict(state["loader"])
    schedule.load_state_dict(state)
    rng = state["rng"]
    if len(rng) == dist.world_size:
        checkpointing.restore_rng(rng[dist.rank])
    else:
        log(f"note: checkpoint was written by {len(rng)} processes, now {dist.world_size}; random streams "
            "(dropout) restart from the seed")
    return {"step": state["step"], "tokens": state["tokens"], "val_loss": state.get("val_loss")}
