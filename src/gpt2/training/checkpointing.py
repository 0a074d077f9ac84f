"""Run checkpoints that survive `kill -9` at any instant, and the RNG states that make resume exact.

Layout of a run directory:
    checkpoint -> checkpoints/step_00001000    a symlink: the latest complete checkpoint
    checkpoints/step_00001000/                 config.json, model.safetensors, tokenizer files (HF layout,
                                               loadable by transformers and `gpt2 generate`) and
                                               training_state.pt (optimizer, loader position, RNG states)
A checkpoint is written whole into a temporary directory, fsynced, renamed to its final name, and only
then does `checkpoint` switch to it, with a rename of a fresh symlink over the old one, which POSIX makes
atomic. At every instant `checkpoint` therefore names a complete checkpoint (or nothing, before the first).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gpt2.checkpoint import save_pretrained
from gpt2.files import atomic_write, current_umask, fsync_dir

LINK = "checkpoint"
DIRECTORY = "checkpoints"
STATE_FILE = "training_state.pt"


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The run's current checkpoint directory, or None if it has none yet."""
    link = run_dir / LINK
    if link.is_dir() and (link / STATE_FILE).is_file():
        return link
    return None


def save_checkpoint(run_dir: Path, step: int, model: torch.nn.Module, tokenizer: Any,
                    state: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Write checkpoint `step` and make it the run's `checkpoint`; older ones are then deleted."""
    parent = run_dir / DIRECTORY
    parent.mkdir(parents=True, exist_ok=True)
    name = f"step_{step:08d}"
    final = parent / name
    current = run_dir / LINK
    if current.is_symlink() and os.readlink(current) == f"{DIRECTORY}/{name}":
        return final  # this step is already the checkpoint
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=parent))
    tmp.chmod(0o777 & ~current_umask())  # mkdtemp makes it private; a checkpoint is as readable as other dirs
    try:
        save_pretrained(model, tmp, tokenizer=tokenizer, metadata=metadata)
        atomic_write(tmp / STATE_FILE, lambda path: torch.save(state, path))
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)  # left by a run that died between renaming it and switching the link
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(parent)
    _switch_link(run_dir, f"{DIRECTORY}/{name}")
    _remove_others(parent, keep=name)
    return final


def _switch_link(run_dir: Path, target: str) -> None:
    tmp = run_dir / f".{LINK}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(target, tmp)
    os.replace(tmp, run_dir / LINK)
    fsync_dir(run_dir)


def _remove_others(parent: Path, keep: str) -> None:
    """Delete superseded checkpoints and temporaries that killed runs left behind."""
    for path in parent.iterdir():
        if path.name == keep:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fsync_dir(directory)


def load_state(checkpoint: Path, mmap: bool = False) -> dict[str, Any]:
    """The training state beside a checkpoint. mmap: tensors are mapped, not read (for readers that use
    only the small entries, not the optimizer's tensors)."""
    # weights_only: the file holds tensors, numbers, strings and containers only, so nothing executes.
    return torch.load(checkpoint / STATE_FILE, map_location="cpu", weights_only=True, mmap=mmap)


# ---- RNG states ----

def capture_rng() -> dict[str, Any]:
    """Every generator training may draw from (dropout, any Python/numpy randomness), in a form that
    `torch.load(weights_only=True)` accepts (numpy's state as plain lists)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, keys.tolist(), pos, has_gauss, cached],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    random.setstate(_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x: Any) -> Any:
    """random.setstate wants the nested tuples back that serialization may have turned into lists."""
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x
