"""`gpt2 detect robustness`: detectors under misuse (a fine-tuned generator, sampler shifts, edits, length),
the watermark beside them; `detect.py`'s helper."""

from __future__ import annotations

import argparse
import sys


def add_detect_robustness(sub: argparse._SubParsersAction) -> None:
    from gpt2.commands.detect_watermark import KEY_HELP

    r = sub.add_parser(
        "robustness", help="detection under misuse: fine-tuned generator, sampler shift, edits, length",
        description="Train (or calibrate) detectors on the generator's top-k 40 continuations of human text, "
        "then test them, and the green-list watermark, under each shift: the generator fine-tuned on a "
        "narrow corpus, other samplers, word deletion/swap, sentence shuffle, truncation, homoglyphs, "
        "whitespace, paraphrase (--paraphraser) and length buckets. Writes results.json, results.md and "
        "robustness.png (AUROC, accuracy, TPR at 1%% FPR, bootstrap 95%% CIs).")
    r.add_argument("--generator", "-m", required=True, metavar="DIR", help="the generator's checkpoint")
    r.add_argument("--detectors", nargs="+", default=["tfidf", "loglik"], metavar="NAME_OR_DIR",
                   help="registry names (trained here; zero-shot ones score with the generator) or saved "
                   "detector directories (default: tfidf loglik)")
    r.add_argument("--attacks", nargs="+", default=None, metavar="SPEC",
                   help="which shifts, e.g. finetune:30 sampler:topk:40->pure delete:0.1 truncate:64 "
                   "length:16-32 (default: all of the issue's)")
    r.add_argument("--human", nargs="+", default=None, metavar="FILE",
                   help="human text (.txt/.jsonl/directories; default: the embedded standard-library corpus)")
    r.add_argument("--narrow", nargs="+", default=None, metavar="FILE",
                   help="the fine-tune corpus (default: the standard-library package --topic)")
    r.add_argument("--topic", default="email", help="standard-library package for the default narrow corpus")
    r.add_argument("--finetune-steps", type=int, default=30, help="fine-tuning steps (default: 30)")
    r.add_argument("--paraphraser", default=None, metavar="DIR", help="a second model for the paraphrase attack")
    r.add_argument("--train-pairs", type=int, default=200, help="training pairs (default: 200)")
    r.add_argument("--test-pairs", type=int, default=100, help="test pairs per shift (default: 100)")
    r.add_argument("--tokens", type=int, default=128, help="tokens per text (default: 128)")
    r.add_argument("--prompt-tokens", type=int, default=16, help="prompt tokens per pair (default: 16)")
    r.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples (default: 200)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto")
    r.add_argument("--watermark-key-file", default=None, metavar="FILE",
                   help=KEY_HELP + "; default: a fresh random key for the run, never written")
    r.add_argument("--watermark-gamma", type=float, default=0.25)
    r.add_argument("--watermark-delta", type=float, default=2.0)
    r.add_argument("--out", "-o", required=True, metavar="DIR")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=run_detect_robustness)


def run_detect_robustness(args: argparse.Namespace) -> int:
    import secrets
    from pathlib import Path

    # commands import their work when they run
    from gpt2.detection.attacks import FineTuned, default_attacks, make_attack
    from gpt2.detection.robustness import RobustnessConfig, run_robustness
    from gpt2.sampling.watermark import Watermark, read_key

    key = read_key(args.watermark_key_file) if args.watermark_key_file else secrets.token_bytes(32)
    watermark = Watermark(key, gamma=args.watermark_gamma, delta=args.watermark_delta)
    if args.attacks:  # a bare `finetune` takes --finetune-steps
        attacks = [FineTuned(args.finetune_steps) if a == "finetune" else make_attack(a) for a in args.attacks]
    else:
        attacks = [FineTuned(args.finetune_steps) if isinstance(a, FineTuned) else a
                   for a in default_attacks(args.paraphraser, args.tokens)]
    cfg = RobustnessConfig(generator=args.generator, out=args.out, detectors=args.detectors, attacks=attacks,
                           human=args.human, narrow=args.narrow, topic=args.topic, paraphraser=args.paraphraser,
                           train_pairs=args.train_pairs, test_pairs=args.test_pairs, tokens=args.tokens,
                           prompt_tokens=args.prompt_tokens, bootstrap=args.bootstrap, seed=args.seed,
                           device=args.device, watermark=watermark, progress=not args.no_progress)
    run_robustness(cfg)
    print(Path(args.out, "results.md").read_text(encoding="utf-8"))
    print(f"wrote {args.out}/results.json, results.md, robustness.png", file=sys.stderr)
    return 0
