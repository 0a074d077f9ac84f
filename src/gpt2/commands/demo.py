"""`gpt2 demo`: the README's main job — corpus, vocabulary, training, samples, baseline, in one directory."""

from __future__ import annotations

import argparse
import dataclasses

EPILOG = """\
Everything it needs is on the machine already: the corpus is the running Python's standard library
(source files and pydoc's topic pages). The output directory holds:
  tokenizer/        the trained BPE vocabulary (HF files)
  data/             token shards + manifest.json
  run/              training run: metrics.jsonl, loss.png, checkpoint/ (HF layout)
  samples.md        continuations of a few prompts (top-k 40)
  detection/        detectors (TF-IDF, GLTR, zero-shot) telling the model's continuations from held-out
                    text: results.json, results.md, roc.png
  summary.json      figures: validation loss vs the unigram baseline, sizes, timings

Then: gpt2 generate --model OUT/run/checkpoint "def main():" """


def register(subparsers: argparse._SubParsersAction) -> None:
    from gpt2.demo import DemoConfig

    d = DemoConfig()
    p = subparsers.add_parser(
        "demo",
        help="train a small GPT-2 on Python's standard library and sample from it (no download)",
        description="The whole pipeline in a few minutes on a CPU: corpus -> BPE -> shards -> training -> "
        "samples -> validation loss against a unigram baseline -> synthetic-text detection.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", default=d.out, help=f"output directory (default: {d.out})")
    p.add_argument("--time-budget-s", type=float, default=d.time_budget_s,
                   help=f"seconds of training (default: {d.time_budget_s:g})")
    p.add_argument("--corpus-mb", type=float, default=d.corpus_bytes / 1e6,
                   help=f"corpus size in MB (default: {d.corpus_bytes / 1e6:g})")
    p.add_argument("--vocab-size", type=int, default=d.vocab_size, help=f"BPE vocabulary (default: {d.vocab_size})")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default: 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpt2.demo import DemoConfig, run_demo

    cfg = dataclasses.replace(DemoConfig(), out=args.out, time_budget_s=args.time_budget_s,
                              corpus_bytes=int(args.corpus_mb * 1e6), vocab_size=args.vocab_size, seed=args.seed)
    s = run_demo(cfg, progress=not args.quiet)
    print()
    print(f"validation loss {s['val_loss']:.3f} nats/token (perplexity {s['val_perplexity']:.1f}); "
          f"unigram baseline {s['unigram_val_loss']:.3f} (perplexity {s['unigram_val_perplexity']:.1f})")
    print("detection (model continuations vs held-out text, AUROC): " + ", ".join(
        f"{d['detector']} {d['auroc']:.3f}" for d in s["detection"]["detectors"]))
    print(f"first sample:\n{s['samples'][0]['prompt']}{s['samples'][0]['text']}")
    print(f"\nEverything is in {s['out']}/ (summary.json, samples.md, detection/, run/loss.png, run/checkpoint/)")
    print(f"Try: gpt2 generate --model {s['checkpoint']} \"def main():\"")
    return 0
