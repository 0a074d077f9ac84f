"""Tiny Shakespeare in a fixed CPU time budget: the best small GPT-2 we can train, vs a plain nanoGPT recipe.

    .venv/bin/python benchmarks/shakespeare.py --budget-s 600 --out runs/shakespeare

Data: ../shared/data/tinyshakespeare/input.txt (1,115,394 characters), GPT-2's own vocabulary (50,257 ids,
found offline as tests/conftest.py does: $GPT2_VOCAB_FILE, tiktoken's cache, or ../shared/vocab). The split
is nanoGPT's: the first 90% of the characters train, the last 10% are held out, except that the cut moves
forward to the next blank line so that no speech is split. Each part is one document for `gpt2.data.prepare`
(so each stream starts with <|endoftext|>, then the text, as GPT-2 and nanoGPT tokenize it).

Both recipes train the same GPT-2 architecture (n_positions 256, tied embeddings, full 50,257-id vocabulary,
so the checkpoint loads in transformers) from scratch, one after the other (never at the same time), each for
--budget-s seconds of wall-clock training: the Trainer times its first steps and decays the learning rate
over the steps that fit in the budget, re-fitting that at each evaluation. Evaluations during training use
8,192 tokens, about every 50 s in both recipes (every 10 steps for nanogpt, 50 for ours), and count against
the budget; the reported validation loss is computed afterwards on the whole held-out split (non-overlapping
256-token windows, fp32), outside the budget, identically for both recipes. The better recipe's final
checkpoint is copied to OUT/checkpoint (HF layout, GPT-2 tokenizer files, no optimizer state);
OUT/results.json holds the numbers.

Recipes (see RECIPES): `nanogpt` is nanoGPT's config/train_shakespeare_char.py (lr 1e-3 cosine to 1e-4,
beta2 0.99, weight decay 0.1, clip 1.0, 256-token blocks) with nanoGPT's own CPU adaptation from its README
(batch 12, dropout 0, no compile), fp32 as nanoGPT runs on CPU (it autocasts on CUDA only), and the same
model size and time budget as `ours`. `ours` differs only in what the budget rewards: the dtype `auto`
picks (bf16 autocast on AMX and AVX512-BF16 CPUs, fp32 elsewhere), a smaller batch (4 x 256 tokens: a
10-minute run is short of steps, not of tokens per step) and a 3x higher peak learning rate.
`--set RECIPE.FIELD=VALUE` changes any TrainConfig field of a recipe, e.g. `--set ours.lr=2e-3`.

Threads: with other jobs on the machine, a process using every core loses more to OpenMP barrier stalls than
it gains (on this 2-core machine at load 5, 124M bf16 steps took 21 s with 2 threads and 6 s with 1), so
`--threads auto` uses the cores that the load average leaves free (at least 1). Both recipes get the same.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch
from _machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEFAULT_INPUT = SHARED / "data" / "tinyshakespeare" / "input.txt"
SHARED_VOCAB = SHARED / "vocab" / "r50k_base.tiktoken"
SEQ_LEN = 256
VAL_FRACTION = 0.1
EVAL_TOKENS = 8192  # during training: 32 windows, a few seconds; the final number uses the whole split

# 4 layers x 256 wide: the best of the shapes tried in 300 s pilots (docs/training.md); the 50,257-id
# embedding is 12.9M of its 16.1M parameters and the vocabulary's logits most of each step's time.
MODEL = dict(model_size="mini", n_layer=4, n_head=4, n_embd=256, n_positions=SEQ_LEN)
COMMON = dict(**MODEL, seq_len=SEQ_LEN, weight_decay=0.1, grad_clip=1.0, beta1=0.9, eval_tokens=EVAL_TOKENS,
              eval_interval=50, save_interval=1_000_000, seed=1337)
RECIPES: dict[str, dict] = {
    # nanoGPT shakespeare_char + README CPU settings, adapted to the model size and time budget.
    # Its steps take 5-6x as long as ours, so it evaluates every 10 steps to every 50 of ours: the same
    # time between evaluations, where the Trainer re-fits the decay to the time left.
    "nanogpt": {**COMMON, **dict(dtype="fp32", batch_size=12, lr=1e-3, min_lr=1e-4, beta2=0.99, dropout=0.0,
                                 warmup_steps=10, eval_interval=10)},
    # What a few CPU minutes reward: bf16 where the CPU has it natively (auto: AMX, AVX512-BF16; fp32 on
    # AVX2, where emulated bf16 is ~80x slower), Muon's sample efficiency on the blocks' matrices
    # (benchmarks/nanogpt_anchor.py measures it against AdamW and real nanoGPT), more (smaller) steps, a higher peak
    # lr with a short warmup.
    "ours": dict(**COMMON, dtype="auto", optimizer="muon", batch_size=4, lr=3e-3, min_lr=3e-4, beta2=0.99, dropout=0.0,
                 warmup_steps=10),
}


def ensure_gpt2_vocab() -> None:
    """Make `Tokenizer.from_pretrained("gpt2")` work offline: use ../shared/vocab unless GPT2_VOCAB_FILE is
    set or tiktoken can load r50k_base by itself."""
    if os.environ.get("GPT2_VOCAB_FILE"):
        return
    try:
        import tiktoken

        tiktoken.get_encoding("r50k_base")
        return
    except Exception:
        pass
    if SHARED_VOCAB.is_file():
        os.environ["GPT2_VOCAB_FILE"] = str(SHARED_VOCAB)


def split_text(text: str) -> tuple[str, str]:
    """nanoGPT's split (first 90% / last 10% of the characters), with the cut moved to the next blank line."""
    cut = int(len(text) * (1 - VAL_FRACTION))
    blank = text.find("\n\n", cut)
    cut = blank + 2 if blank >= 0 else cut
    return text[:cut], text[cut:]


def prepare_data(input_path: Path, out: Path, split=split_text) -> Path:
    """OUT/data/{train,val}.txt and the token shards in OUT/data/tokens (train = first part, val = last)."""
    from gpt2.data import is_validation, prepare

    text = input_path.read_text(encoding="utf-8")
    train_text, val_text = split(text)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "train.txt").write_text(train_text, encoding="utf-8")
    (data / "val.txt").write_text(val_text, encoding="utf-8")
    # `prepare` assigns whole documents to val by a seeded hash; with two documents and val_fraction 0.5,
    # pick the first seed that sends document 0 (train.txt) to train and document 1 (val.txt) to val.
    seed = next(s for s in range(1000) if not is_validation(0, s, 0.5) and is_validation(1, s, 0.5))
    manifest = prepare([data / "train.txt", data / "val.txt"], "gpt2", data / "tokens", val_fraction=0.5,
                       seed=seed, txt_split="file", overwrite=True, progress=False)
    splits = manifest["splits"]
    assert splits["train"]["documents"] == 1 and splits["val"]["documents"] == 1, splits
    return data / "tokens"


def auto_threads() -> int:
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        busy = 0.0
    return max(1, min(cores, round(cores - busy)))


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def parse_sets(items: list[str]) -> dict[str, dict]:
    overrides: dict[str, dict] = {name: {} for name in RECIPES}
    for item in items:
        key, _, value = item.partition("=")
        recipe, _, field = key.partition(".")
        if recipe not in RECIPES or not field or not value:
            raise SystemExit(f"--set {item}: expected RECIPE.FIELD=VALUE, RECIPE one of {', '.join(RECIPES)}")
        try:
            overrides[recipe][field] = json.loads(value)
        except json.JSONDecodeError:
            overrides[recipe][field] = value  # a string, e.g. dtype=bf16
    return overrides


@torch.no_grad()
def full_validation(checkpoint: Path, data: Path) -> dict:
    """Mean loss per token (nats) over every non-overlapping SEQ_LEN window of the val split, in fp32."""
    from gpt2.data import TokenDataset, eval_batches
    from gpt2.model import GPT

    model = GPT.from_pretrained(checkpoint, dtype=torch.float32)
    val = TokenDataset(data, "val")
    total, count = 0.0, 0
    for x, y in eval_batches(val, 16, SEQ_LEN, len(val)):
        _, loss = model(torch.from_numpy(x), torch.from_numpy(y))
        total += loss.item() * y.size
        count += y.size
    return {"val_loss": total / count, "val_tokens": count}


def run_recipe(name: str, settings: dict, data: Path, out: Path, budget_s: float, threads: int) -> dict:
    from gpt2.training import TrainConfig, Trainer

    run_dir = out / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    torch.set_num_threads(threads)
    config = TrainConfig(data=str(data), out=str(run_dir), time_budget_s=budget_s, **settings)
    load_before = load_average()
    trainer = Trainer(config)
    start = time.monotonic()
    try:
        summary = trainer.train()
    finally:
        trainer.close()
    wall = time.monotonic() - start  # the step-0 evaluation is before the budget clock starts
    load_after = load_average()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    val_curve = [(r["step"], round(r["val_loss"], 4)) for r in records if "val_loss" in r]
    result = {
        "recipe": name, "settings": settings, "threads": threads, "budget_s": budget_s,
        "train_wall_s": round(wall, 1), "steps": summary["step"], "tokens": summary["tokens"],
        "decay_steps": trainer.decay_steps, "epochs": round(summary["tokens"] / len(trainer.train_data), 2),
        "tokens_per_s_median": round(statistics.median(r["tokens_per_s"] for r in steps), 1),
        "tokens_per_s_overall": round(summary["tokens"] / wall, 1),
        "mfu_median": statistics.median(r["mfu"] for r in steps) if steps and "mfu" in steps[0] else None,
        "final_train_loss": steps[-1]["loss"], "val_curve_8k": val_curve,
        "load_before": load_before, "load_after": load_after,
        "parameters": trainer.raw_model.num_parameters(), "dtype": "bf16" if trainer.bf16 else "fp32",
    }
    result.update(full_validation(run_dir / "checkpoint", data))
    return result


def sample(checkpoint: Path, prompt: str = "ROMEO:", tokens: int = 60) -> str:
    from gpt2.checkpoint import load_tokenizer
    from gpt2.model import GPT
    from gpt2.sampling import generate

    model = GPT.from_pretrained(checkpoint, dtype=torch.float32)
    tok = load_tokenizer(checkpoint)
    out = generate(model, tok.encode(prompt), max_new_tokens=tokens, temperature=0.8, top_k=200, seed=0,
                   eos_token_id=None)[0].tokens
    return prompt + tok.decode(out)


def export_checkpoint(run_dir: Path, out: Path) -> Path:
    """The run's final checkpoint as a plain HF model directory (without the optimizer's state)."""
    from gpt2.training.checkpointing import STATE_FILE

    target = out / "checkpoint"
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)
    shutil.copytree((run_dir / "checkpoint").resolve(), target, ignore=shutil.ignore_patterns(STATE_FILE))
    return target


def machine() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
            "python": platform.python_version()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget-s", type=float, default=600.0, help="training seconds per recipe")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "shakespeare")
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=["nanogpt", "ours"],
                        help="run in this order, one after the other")
    parser.add_argument("--threads", default="auto", help="torch threads for every recipe, or auto")
    parser.add_argument("--set", action="append", default=[], metavar="RECIPE.FIELD=VALUE",
                        help="override a recipe's TrainConfig field (repeatable)")
    args = parser.parse_args()
    if not args.input.is_file():
        raise SystemExit(f"{args.input}: not found; pass --input PATH to Tiny Shakespeare's input.txt")

    ensure_gpt2_vocab()
    overrides = parse_sets(args.set)
    threads = auto_threads() if args.threads == "auto" else int(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    data = prepare_data(args.input, args.out)
    info = machine()
    print(f"CPU: {info['cpu']}; {info['cores']} cores; torch {info['torch']}; {threads} threads per run; "
          f"load average {load_average()}", file=sys.stderr)

    results = []
    for name in args.recipes:
        settings = {**RECIPES[name], **overrides[name]}
        print(f"== {name}: {settings}", file=sys.stderr)
        results.append(run_recipe(name, settings, data, args.out, args.budget_s, threads))
        r = results[-1]
        print(f"== {name}: val loss {r['val_loss']:.4f} after {r['steps']} steps ({r['tokens']:,} tokens, "
              f"{r['tokens_per_s_overall']:.0f} tok/s); load {r['load_before']} -> {r['load_after']}",
              file=sys.stderr)

    best = min(results, key=lambda r: r["val_loss"])
    checkpoint = export_checkpoint(args.out / best["recipe"], args.out)
    text = sample(checkpoint)
    report = {"machine": info, "input": str(args.input), "budget_s": args.budget_s,
              "split": "first 90% of characters (cut at the next blank line) / rest", "results": results,
              "best": best["recipe"], "checkpoint": str(checkpoint), "sample": text}
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n")

    print(f"\nTiny Shakespeare, {args.budget_s:.0f} s of training per recipe on {info['cpu']} "
          f"({info['cores']} cores, {threads} threads), torch {info['torch']}")
    print(f"{'recipe':<9} {'val loss':>9} {'steps':>6} {'tokens':>9} {'epochs':>7} {'tok/s':>7} {'MFU':>6} "
          f"{'params':>11}  load before -> after")
    for r in results:
        mfu = f"{r['mfu_median']:.1%}" if r["mfu_median"] is not None else "n/a"
        print(f"{r['recipe']:<9} {r['val_loss']:>9.4f} {r['steps']:>6} {r['tokens']:>9,} {r['epochs']:>7.2f} "
              f"{r['tokens_per_s_overall']:>7.0f} {mfu:>6} {r['parameters']:>11,}  "
              f"{r['load_before']} -> {r['load_after']}")
    print(f"\nval loss: nats/token over all {results[0]['val_tokens']:,} held-out tokens (fp32)")
    print(f"sample ({best['recipe']}, temperature 0.8, top-k 200):\n{text}\n")
    print(f"checkpoint: {checkpoint}")


if __name__ == "__main__":
    main()
