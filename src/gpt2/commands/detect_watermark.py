"""The watermark's command-line side: the key and settings options of `gpt2 generate`, `gpt2 outputs` and
`gpt2 detect watermark`, and `gpt2 detect watermark` itself.

The key is read from `--watermark-key-file FILE` or $GPT2_WATERMARK_KEY, never from argv (where `ps` and
shell histories would show it), and is never printed: errors name the file or variable only.
"""

from __future__ import annotations

import argparse
import json
import sys

KEY_HELP = ("file holding the watermark key (default: $GPT2_WATERMARK_KEY); the key is a secret, so it is "
            "never an argument")


def add_watermark_options(p: argparse.ArgumentParser, *, generating: bool = True) -> None:
    """--watermark, --watermark-key-file and the scheme's settings (--watermark-delta only when generating)."""
    g = p.add_argument_group("watermark (Kirchenbauer et al. 2023 green lists)")
    if generating:
        g.add_argument("--watermark", action="store_true",
                       help="bias sampling towards each step's green list (the key from --watermark-key-file "
                       "or $GPT2_WATERMARK_KEY)")
    g.add_argument("--watermark-key-file", default=None, metavar="FILE", help=KEY_HELP)
    g.add_argument("--watermark-gamma", type=float, default=0.25, metavar="G",
                   help="green fraction of the vocabulary (default: 0.25)")
    if generating:
        g.add_argument("--watermark-delta", type=float, default=2.0, metavar="D",
                       help="logit bias of green tokens (default: 2.0)")
    g.add_argument("--watermark-context", type=int, default=1, metavar="H",
                   help="previous tokens that seed a green list (default: 1)")
    g.add_argument("--watermark-seeding", choices=("hmac-sha256", "lefthash"), default="hmac-sha256",
                   help="the seeding hash (default: hmac-sha256; lefthash = lm-watermarking's, the key "
                   "being its integer salt)")


def watermark_from_args(args: argparse.Namespace, *, required: bool = False):
    """The Watermark the options ask for (None when neither --watermark nor a key file is given, unless
    `required`); checked before any model loads."""
    from gpt2.sampling.watermark import Watermark, read_key  # commands import their work when they run

    if not (required or getattr(args, "watermark", False) or args.watermark_key_file is not None):
        return None
    return Watermark(read_key(args.watermark_key_file), gamma=args.watermark_gamma,
                     delta=getattr(args, "watermark_delta", 2.0), context_width=args.watermark_context,
                     seeding=args.watermark_seeding)


def add_detect_watermark(sub: argparse._SubParsersAction) -> None:
    w = sub.add_parser(
        "watermark", help="test texts for the green-list watermark: z-score and p-value (JSON)",
        description="Count each token's membership of the green list its predecessors seed (with the key) "
        "and test it: z = (green - gamma T) / sqrt(T gamma (1 - gamma)), p = P(Z >= z). Repeated "
        "(context, token) n-grams count once unless --count-repeated.")
    w.add_argument("text", nargs="?", default=None, help="the text; '-' reads stdin (or use --jsonl)")
    w.add_argument("--jsonl", default=None, metavar="FILE", help="score every text of this jsonl file")
    w.add_argument("--model", "-m", required=True, metavar="DIR",
                   help="the generator's checkpoint (its tokenizer and vocabulary size)")
    w.add_argument("--count-repeated", action="store_true",
                   help="score every token, repeated n-grams included (default: each distinct n-gram once)")
    w.add_argument("--z-threshold", type=float, default=4.0, help="watermarked when z > this (default: 4)")
    w.add_argument("--limit", type=int, default=None, metavar="N", help="with --jsonl: the first N texts")
    add_watermark_options(w, generating=False)
    w.set_defaults(func=run_detect_watermark)


def run_detect_watermark(args: argparse.Namespace) -> int:
    from gpt2.detection.data import read_texts
    from gpt2.detection.detector import DetectorError
    from gpt2.detection.watermark import WatermarkDetector

    if (args.text is None) == (args.jsonl is None):
        raise DetectorError("give a text (or '-' for stdin) or --jsonl FILE, not both")
    watermark = watermark_from_args(args, required=True)
    det = WatermarkDetector(args.model, gamma=watermark.gamma, context_width=watermark.context_width,
                            seeding=watermark.seeding, ignore_repeated=not args.count_repeated,
                            z_threshold=args.z_threshold, key=watermark.key)
    if args.jsonl is None:
        text = sys.stdin.read() if args.text == "-" else args.text
        result = det.test(text).to_json()
        print(json.dumps({**result, "watermarked": result["z"] > args.z_threshold, **det.public()}, indent=2))
        return 0
    texts = read_texts(args.jsonl, args.limit).texts
    for i, score in enumerate(det.tests(texts)):
        row = score.to_json()
        print(json.dumps({"index": i, **row, "watermarked": row["z"] > args.z_threshold}))
    return 0
