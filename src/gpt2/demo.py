"""`gpt2 demo`: the whole pipeline on a corpus every machine has, in a few minutes on a CPU.

corpus (Python's standard library) -> BPE vocabulary -> token shards -> a small GPT-2 trained for a fixed
time -> samples with top-k 40 -> validation loss beside a unigram baseline -> detectors telling the model's
continuations from the held-out text they continue. Everything lands in one directory: the checkpoint (HF
layout), samples, metrics, loss curve, detection report and a summary.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gpt2.data import TokenDataset, is_validation, prepare, read_documents
from gpt2.data.stdlib_corpus import stdlib_documents, write_jsonl
from gpt2.detection import make_detector
from gpt2.detection.data import Texts
from gpt2.detection.report import evaluate, write_report
from gpt2.errors import DataError
from gpt2.files import atomic_write_text
from gpt2.inference import load_for_inference
from gpt2.sampling import generate, generate_text
from gpt2.tokenizer import Tokenizer
from gpt2.training import TrainConfig, Trainer

DEMO_VAL_FRACTION = 0.05
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
    optimizer: str = "muon"  # the Tiny Shakespeare recipe's winner against real nanoGPT (docs/training.md)
    max_new_tokens: int = 80
    seed: int = 0
    # detection: pairs of (held-out continuation, model continuation) of the same held-out prompt
    detection_pairs: int = 160
    detection_prompt_tokens: int = 16
    detection_tokens: int = 96


def run_demo(cfg: DemoConfig, progress: bool = True, log=print) -> dict[str, Any]:
    """Run every step; return the summary that is also written to `<out>/summary.json`."""

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    with _timed(timings, "corpus_s"):
        corpus = out / "corpus" / "stdlib.jsonl"
        n_docs, n_bytes = write_jsonl(stdlib_documents(cfg.corpus_bytes), corpus)
        log(f"[1/6] corpus: {n_docs} documents, {n_bytes / 1e6:.1f} MB of Python source and docs -> {corpus}")
    with _timed(timings, "tokenizer_s"):
        vocab_size = train_tokenizer(corpus, cfg.vocab_size, out / "tokenizer")
        log(f"[2/6] BPE vocabulary: {vocab_size} tokens -> {out / 'tokenizer'}")
    with _timed(timings, "prepare_s"):
        manifest = prepare_shards(cfg, corpus, out, progress)
        train_tokens, val_tokens = TokenDataset(out / "data", "train"), TokenDataset(out / "data", "val")
        log(f"[3/6] token shards: {len(train_tokens):,} train / {len(val_tokens):,} val tokens -> {out / 'data'}")
    with _timed(timings, "train_s"):
        result = train_model(cfg, out, progress)
        log(f"[4/6] trained {result['step']} steps ({result['tokens']:,} tokens), "
            f"validation loss {result['val_loss']:.3f} -> {out / 'run'}")
    with _timed(timings, "sample_s"):
        checkpoint = Path(result["checkpoint"])
        model, tokenizer, samples = sample_prompts(cfg, checkpoint, out / "samples.md")
        log(f"[5/6] {len(samples)} samples (top-k 40) -> {out / 'samples.md'}")
    with _timed(timings, "detection_s"):
        detection = detection_step(cfg, corpus, checkpoint, model, tokenizer, out / "detection")
        best = max(detection["detectors"], key=lambda r: r["auroc"])
        log(f"[6/6] detection on {detection['test_pairs']} + {detection['test_pairs']} held-out texts: best "
            f"{best['detector']} (AUROC {best['auroc']:.3f}) -> {out / 'detection'}")

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
        "detection": detection,
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return summary


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    start = time.monotonic()
    yield
    timings[key] = time.monotonic() - start


def train_tokenizer(corpus: Path, vocab_size: int, out: Path) -> int:
    """A byte-level BPE vocabulary of the corpus, saved in `out`; returns its size."""

    texts = (json.loads(line)["text"] for line in corpus.open(encoding="utf-8"))
    tokenizer = Tokenizer.train(texts, vocab_size, show_progress=False)
    tokenizer.save_pretrained(out)
    return tokenizer.vocab_size


def prepare_shards(cfg: DemoConfig, corpus: Path, out: Path, progress: bool) -> dict[str, Any]:

    return prepare([corpus], out / "tokenizer", out / "data", val_fraction=DEMO_VAL_FRACTION, seed=cfg.seed,
                   overwrite=True, progress=progress)


def train_model(cfg: DemoConfig, out: Path, progress: bool) -> dict[str, Any]:
    """Train the demo model from scratch in `out/run` for the time budget, in the dtype `auto` picks."""

    run_dir = out / "run"
    train_config = TrainConfig(
        data=str(out / "data"), out=str(run_dir), model_size=cfg.model_size, n_layer=cfg.n_layer,
        n_head=cfg.n_head, n_embd=cfg.n_embd, n_positions=cfg.seq_len, seq_len=cfg.seq_len,
        batch_size=cfg.batch_size, lr=cfg.lr, time_budget_s=cfg.time_budget_s,
        # the schedule needs a length: a generous token count that the time budget cuts short
        max_tokens=None, eval_interval=100, eval_tokens=65_536, seed=cfg.seed, dtype="auto",
        optimizer=cfg.optimizer,
    )
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a demo starts over; real runs use `gpt2 train --resume`
    return Trainer(train_config, progress=progress).train()


def sample_prompts(cfg: DemoConfig, checkpoint: Path, path: Path):
    """(model, tokenizer, samples): the checkpoint loaded as inference commands load it, top-k 40 samples
    of PROMPTS written to `path`."""

    model, tokenizer = load_for_inference(checkpoint)  # the fastest correct dtype and layout here
    samples = generate_text(model, tokenizer, PROMPTS, max_new_tokens=cfg.max_new_tokens, top_k=40,
                            seed=cfg.seed)
    write_samples(samples, PROMPTS, path)
    return model, tokenizer, samples


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


# Detectors the demo runs: OpenAI's TF-IDF baseline, GLTR, and zero-shot scores from the demo model itself
# (the white-box setting of DetectGPT; Binoculars needs a second model, the classifier minutes of training).
DEMO_DETECTORS = ("tfidf", "gltr", "loglik", "logrank", "fast-detectgpt")


def heldout_pairs(corpus: Path, tokenizer, cfg: DemoConfig) -> list[tuple[list[int], list[int]]]:
    """(prompt, continuation) token windows cut from the validation documents, which training never saw:
    the same documents `prepare` put in the val split (its hash of the document index). Windows are taken
    round-robin over the documents (each one's first window, then each one's second, ...), so that long
    files do not crowd out the others."""

    size = cfg.detection_prompt_tokens + cfg.detection_tokens
    per_document: list[list[list[int]]] = []
    for index, doc in enumerate(read_documents(corpus)):
        if is_validation(index, cfg.seed, DEMO_VAL_FRACTION):
            ids = tokenizer.encode(doc)
            per_document.append([ids[i : i + size] for i in range(0, len(ids) - size + 1, size)])
    pairs: list[tuple[list[int], list[int]]] = []
    for rank in range(max((len(w) for w in per_document), default=0)):
        for windows in per_document:
            if rank < len(windows) and len(pairs) < cfg.detection_pairs:
                window = windows[rank]
                pairs.append((window[: cfg.detection_prompt_tokens], window[cfg.detection_prompt_tokens :]))
    return pairs


def detection_step(cfg: DemoConfig, corpus: Path, checkpoint: Path, model, tokenizer, out: Path
                   ) -> dict[str, Any]:
    """Human text = a held-out continuation; machine text = the model's top-k 40 continuation of the same
    prompt, equally long. Half the pairs train (TF-IDF, GLTR) or calibrate (zero-shot) the detectors, a
    sixth choose TF-IDF's C, the rest are the test set of the report (results.json/.md, roc.png)."""

    pairs = heldout_pairs(corpus, tokenizer, cfg)
    if len(pairs) < 12:
        raise DataError(f"{corpus}: its validation documents hold {len(pairs)} windows of "
                        f"{cfg.detection_prompt_tokens + cfg.detection_tokens} tokens; the detection step needs "
                        "at least 12 (a larger --corpus-mb gives more)")
    machine = generate(model, [p for p, _ in pairs], max_new_tokens=cfg.detection_tokens, top_k=40,
                       seed=cfg.seed + 1, eos_token_id=None)
    human_texts = [tokenizer.decode(c) for _, c in pairs]
    machine_texts = [tokenizer.decode(s.tokens) for s in machine]
    n = len(pairs)
    train, valid = slice(0, n // 2), slice(n // 2, n // 2 + n // 6)
    test = slice(n // 2 + n // 6, n)

    def texts(items: list[str], part: slice, source: str) -> Texts:
        chosen = items[part]
        return Texts(chosen, [cfg.detection_tokens] * len(chosen), source)

    results = []
    for name in DEMO_DETECTORS:
        options = {"min_df": 2} if name == "tfidf" else {"model": str(checkpoint)}
        detector = make_detector(name, **options)
        detector.fit(human_texts[train], machine_texts[train], valid=(human_texts[valid], machine_texts[valid]))
        results.append(evaluate(detector, texts(human_texts, test, "held-out corpus text"),
                                texts(machine_texts, test, "demo model, top-k 40")))
    write_report(results, out, title="Demo model's continuations vs held-out text")
    return {
        "pairs": n, "train_pairs": n // 2, "valid_pairs": n // 6, "test_pairs": n - n // 2 - n // 6,
        "prompt_tokens": cfg.detection_prompt_tokens, "tokens": cfg.detection_tokens, "report": str(out),
        "detectors": [{k: r[k] for k in ("detector", "accuracy", "auroc", "tpr_at_1pct_fpr")} for r in results],
    }
