"""`gpt2 demo`: the whole pipeline on a corpus every machine has, in a few minutes on a CPU.

corpus (Python's standard library) -> BPE vocabulary -> token shards -> a small GPT-2 trained for a fixed
time -> samples with top-k 40 -> validation loss beside a unigram baseline. Everything lands in one
directory: the checkpoint (HF layout), samples, metrics, loss curve and a summary.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gpt2.corpus import stdlib_documents, write_jsonl
from gpt2.io import atomic_write_text

PROMPTS = [
    "def fibonacci(n):\n",
    "import os\nimport sys\n\n\ndef main():\n",
    "The list data type has some more methods.",
    "class Stack:\n    \"\"\"",
]


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    time_budget_s: float = 360.0  # training time; the other steps add about a minute
    corpus_bytes: int = 4_000_000
    vocab_size: int = 4096
    model_size: str = "micro"
    n_layer: int | None = 4
    n_head: int | None = 4
    n_embd: int | None = 256
    seq_len: int = 256
    batch_size: int = 16
    lr: float = 2e-3
    max_new_tokens: int = 80
    seed: int = 0


def run_demo(cfg: DemoConfig, progress: bool = True, log=print) -> dict[str, Any]:
    """Run every step; return the summary that is also written to `<out>/summary.json`."""
    from gpt2.checkpoint import load_pretrained, load_tokenizer
    from gpt2.data import TokenDataset, prepare
    from gpt2.sampling import generate_text
    from gpt2.tokenizer import Tokenizer
    from gpt2.training import TrainConfig, Trainer

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    t = time.monotonic()
    corpus = out / "corpus" / "stdlib.jsonl"
    n_docs, n_bytes = write_jsonl(stdlib_documents(cfg.corpus_bytes), corpus)
    log(f"[1/5] corpus: {n_docs} documents, {n_bytes / 1e6:.1f} MB of Python source and docs -> {corpus}")
    timings["corpus_s"] = time.monotonic() - t

    t = time.monotonic()
    texts = (json.loads(line)["text"] for line in corpus.open(encoding="utf-8"))
    tokenizer = Tokenizer.train(texts, cfg.vocab_size, show_progress=False)
    tokenizer.save_pretrained(out / "tokenizer")
    log(f"[2/5] BPE vocabulary: {tokenizer.vocab_size} tokens -> {out / 'tokenizer'}")
    timings["tokenizer_s"] = time.monotonic() - t

    t = time.monotonic()
    manifest = prepare([corpus], out / "tokenizer", out / "data", val_fraction=0.05, seed=cfg.seed,
                       overwrite=True, progress=progress)
    train_tokens, val_tokens = TokenDataset(out / "data", "train"), TokenDataset(out / "data", "val")
    log(f"[3/5] token shards: {len(train_tokens):,} train / {len(val_tokens):,} val tokens -> {out / 'data'}")
    timings["prepare_s"] = time.monotonic() - t

    t = time.monotonic()
    run_dir = out / "run"
    train_config = TrainConfig(
        data=str(out / "data"), out=str(run_dir), model_size=cfg.model_size, n_layer=cfg.n_layer,
        n_head=cfg.n_head, n_embd=cfg.n_embd, n_positions=cfg.seq_len, seq_len=cfg.seq_len,
        batch_size=cfg.batch_size, lr=cfg.lr, time_budget_s=cfg.time_budget_s,
        # the schedule needs a length: a generous token count that the time budget cuts short
        max_tokens=None, eval_interval=100, eval_tokens=65_536, seed=cfg.seed, dtype="auto",
    )
    if run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)  # a demo starts over; real runs use `gpt2 train --resume`
    result = Trainer(train_config, progress=progress).train()
    log(f"[4/5] trained {result['step']} steps ({result['tokens']:,} tokens), "
        f"validation loss {result['val_loss']:.3f} -> {run_dir}")
    timings["train_s"] = time.monotonic() - t

    t = time.monotonic()
    checkpoint = Path(result["checkpoint"])
    model, tokenizer = load_pretrained(checkpoint), load_tokenizer(checkpoint)
    samples = generate_text(model, tokenizer, PROMPTS, max_new_tokens=cfg.max_new_tokens, top_k=40,
                            seed=cfg.seed)
    write_samples(samples, PROMPTS, out / "samples.md")
    log(f"[5/5] {len(samples)} samples (top-k 40) -> {out / 'samples.md'}")
    timings["sample_s"] = time.monotonic() - t

    unigram = unigram_cross_entropy(train_tokens.read(0, len(train_tokens)),
                                    val_tokens.read(0, len(val_tokens)), tokenizer.vocab_size)
    summary = {
        "out": str(out),
        "checkpoint": str(checkpoint),
        "corpus": {"documents": n_docs, "bytes": n_bytes, "source": "Python standard library + pydoc topics"},
        "vocab_size": tokenizer.vocab_size,
        "tokens": {"train": len(train_tokens), "val": len(val_tokens)},
        "parameters": model.num_parameters(),
        "steps": result["step"],
        "trained_tokens": result["tokens"],
        "val_loss": result["val_loss"],
        "unigram_val_loss": unigram,
        "val_perplexity": math.exp(result["val_loss"]),
        "unigram_val_perplexity": math.exp(unigram),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "manifest_inputs": manifest.get("inputs"),
        "samples": [{"prompt": PROMPTS[s.prompt_index], "text": s.text} for s in samples],
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


def unigram_cross_entropy(train: np.ndarray, val: np.ndarray, vocab_size: int) -> float:
    """Cross-entropy (nats/token) of `val` under the add-one-smoothed unigram distribution of `train`:
    the loss of a model that ignores context, which training must beat to have learned anything."""
    counts = np.bincount(train.astype(np.int64), minlength=vocab_size).astype(np.float64) + 1.0
    log_probs = np.log(counts / counts.sum())
    return float(-log_probs[val.astype(np.int64)].mean())


def write_samples(samples, prompts: list[str], path: Path) -> None:
    parts = ["# Samples (top-k 40)\n"]
    for i, s in enumerate(samples):
        parts.append(f"## Sample {i + 1}\n\n```\n{prompts[s.prompt_index]}{s.text}\n```\n")
    atomic_write_text(path, "\n".join(parts))
