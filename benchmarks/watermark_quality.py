"""The watermark's text-quality cost against its detection strength (Kirchenbauer et al. 2023, their Fig. 2):
for each delta, samples of a small GPT-2 with and without the green-list bias, their perplexity under a
second, different model (the judge), and the z-test's mean z and share of samples with z > 4.

    .venv/bin/python benchmarks/watermark_quality.py [--samples 16] [--tokens 200] [--train-s 30]
                                                     [--judge-train-s 60]
                                                     [--out reports/watermark_quality]

Everything is built here, from what every machine has (no download): the corpus is Python's standard
library and pydoc topics (gpt2.data.stdlib_corpus, as `gpt2 demo`), a BPE vocabulary of it, and two models
trained from scratch with the project's Trainer: the generator (2 layers, 128 wide, --train-s seconds) and
the judge (3 layers, 160 wide, another seed, --judge-train-s seconds), so the judge is not the generator
scoring itself; their validation perplexity on held-out corpus text is printed beside the table.
Samples start from <|endoftext|> and run exactly --tokens tokens (no stop at <|endoftext|>), with pure
sampling (temperature 1) and with top-k 40; the same seeds with and without the watermark, so each delta's
row differs from the unwatermarked one by the bias alone. gamma 0.25, context width 1, HMAC-SHA256 seeding;
z is `gpt2 detect watermark`'s (WatermarkDetector on the returned text, tokenized again; repeated n-grams
counted once). Perplexity: exp of the judge's mean per-token negative log-likelihood over all samples of a
row (the generator's own beside it). The table goes to stdout and, with the CPU, to OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # sleeping OpenMP waiters on a shared machine

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from gpt2.data import prepare  # noqa: E402
from gpt2.data.stdlib_corpus import stdlib_documents, write_jsonl  # noqa: E402
from gpt2.demo import train_tokenizer  # noqa: E402
from gpt2.detection.watermark import WatermarkDetector  # noqa: E402
from gpt2.inference import load_for_inference  # noqa: E402
from gpt2.sampling import Watermark, generate  # noqa: E402
from gpt2.training import TrainConfig, Trainer  # noqa: E402

DELTAS = (0.5, 1.0, 2.0, 4.0)
GAMMA = 0.25
KEY = b"watermark-quality-benchmark-key"  # a benchmark's key: public on purpose
SAMPLERS = {"pure": {}, "top-k 40": {"top_k": 40}}
MODELS = {"generator": dict(n_layer=2, n_head=2, n_embd=128, seed=1),
          "judge": dict(n_layer=3, n_head=4, n_embd=160, seed=2)}


def cpu_name() -> str:
    """`lscpu`'s Model name line (the CPU class every figure here belongs to)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name")),
                "unknown")


def build_data(out: Path, corpus_bytes: int, vocab_size: int) -> None:
    corpus = out / "corpus" / "stdlib.jsonl"
    write_jsonl(stdlib_documents(corpus_bytes), corpus)
    train_tokenizer(corpus, vocab_size, out / "tokenizer")
    prepare([corpus], out / "tokenizer", out / "data", val_fraction=0.05, seed=0, overwrite=True, progress=False)


def train(out: Path, name: str, seconds: float, seq_len: int) -> tuple[Path, float]:
    """A model trained from scratch on out/data for `seconds`: (its checkpoint, validation loss)."""
    m = MODELS[name]
    config = TrainConfig(
        data=str(out / "data"), out=str(out / name), model_size="nano", n_layer=m["n_layer"], n_head=m["n_head"],
        n_embd=m["n_embd"], n_positions=seq_len, seq_len=seq_len, batch_size=16, lr=2e-3, optimizer="muon",
        time_budget_s=seconds, eval_interval=10_000, eval_tokens=32_768, seed=m["seed"], dtype="fp32",
    )
    result = Trainer(config, progress=False).train()
    return Path(result["checkpoint"]), float(result["val_loss"])


@torch.inference_mode()
def perplexity(model, sequences: list[list[int]]) -> float:
    """exp(mean negative log-likelihood per predicted token) over all `sequences` (each starts with BOS)."""
    nll, count = 0.0, 0
    for ids in sequences:
        x = torch.tensor([ids])
        logits = model(x)[0][0].float()
        nll += float(F.cross_entropy(logits[:-1], x[0, 1:], reduction="sum"))
        count += len(ids) - 1
    return math.exp(nll / count)


def run_row(generator, judge, tokenizer, detector, sampler: str, delta: float | None,
            args: argparse.Namespace) -> dict:
    """One delta (None: no watermark) under one sampler: perplexities and the z-test of its samples."""
    watermark = Watermark(KEY, gamma=GAMMA, delta=delta) if delta is not None else None
    bos = generator.config.bos_token_id
    samples = generate(generator, [[bos]], max_new_tokens=args.tokens, num_return_sequences=args.samples,
                       seed=args.seed, eos_token_id=None, watermark=watermark, tokenizer=tokenizer,
                       **SAMPLERS[sampler])
    sequences = [[bos, *s.tokens] for s in samples]
    z = [s.z for s in detector.tests([s.text for s in samples])]
    return {"sampler": sampler, "delta": delta, "samples": len(samples), "tokens": args.tokens,
            "judge_ppl": perplexity(judge, sequences), "generator_ppl": perplexity(generator, sequences),
            "mean_z": sum(z) / len(z), "z_over_4": sum(v > 4 for v in z) / len(z), "z": z}


def table(rows: list[dict]) -> str:
    lines = ["| sampler | delta | judge ppl | generator ppl | mean z | z > 4 |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        delta = "none" if r["delta"] is None else f"{r['delta']:g}"
        lines.append(f"| {r['sampler']} | {delta} | {r['judge_ppl']:.1f} | {r['generator_ppl']:.1f} | "
                     f"{r['mean_z']:.2f} | {r['z_over_4']:.0%} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", type=int, default=16, help="samples per row (default: 16)")
    p.add_argument("--tokens", type=int, default=200, help="tokens per sample (default: 200)")
    p.add_argument("--train-s", type=float, default=30.0, help="seconds of training, generator (default: 30)")
    p.add_argument("--judge-train-s", type=float, default=60.0, help="seconds of training, judge (default: 60)")
    p.add_argument("--corpus-mb", type=float, default=1.0, help="corpus size in MB (default: 1)")
    p.add_argument("--vocab-size", type=int, default=1024, help="BPE vocabulary (default: 1024)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default: 0)")
    p.add_argument("--out", default="reports/watermark_quality", help="output directory")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out, start = Path(args.out), time.monotonic()
    build_data(out, int(args.corpus_mb * 1e6), args.vocab_size)
    seq_len = 1 << max(7, args.tokens.bit_length())  # > tokens: room for BOS + the sample
    seconds = {"generator": args.train_s, "judge": args.judge_train_s}
    trained = {name: train(out, name, seconds[name], seq_len) for name in MODELS}
    generator, tokenizer = load_for_inference(trained["generator"][0], device="cpu", dtype="fp32")
    judge, _ = load_for_inference(trained["judge"][0], device="cpu", dtype="fp32")
    detector = WatermarkDetector(str(trained["generator"][0]), key=KEY, gamma=GAMMA)
    rows = [run_row(generator, judge, tokenizer, detector, sampler, delta, args)
            for sampler in SAMPLERS for delta in (None, *DELTAS)]
    result = {
        "cpu": cpu_name(), "threads": args.threads, "wall_s": round(time.monotonic() - start, 1),
        "command": "python benchmarks/watermark_quality.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"),
        "settings": {"gamma": GAMMA, "context_width": 1, "seeding": "hmac-sha256", "ignore_repeated": True},
        "models": {name: {**MODELS[name], "val_loss": loss, "train_s": seconds[name], "checkpoint": str(path)}
                   for name, (path, loss) in trained.items()},
        "rows": rows,
    }
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"CPU: {result['cpu']} ({args.threads} torch thread(s)); {result['wall_s']} s in all")
    for name, m in result["models"].items():
        print(f"{name}: {m['n_layer']} layers x {m['n_embd']}, {m['train_s']:g} s of training, validation "
              f"loss {m['val_loss']:.3f} (perplexity {math.exp(m['val_loss']):.1f} on held-out corpus text)")
    print(table(rows))
    print(f"-> {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
