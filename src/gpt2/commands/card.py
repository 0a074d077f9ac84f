"""`gpt2 card`: a model card (model_card.md + model_card.json) filled from what a checkpoint records."""

from __future__ import annotations

import argparse
import sys

EPILOG = """\
examples:
  gpt2 card --model runs/mini                         a run directory: its current checkpoint
  gpt2 card --model runs/mini/checkpoint --results results/mini/results.json --out runs/mini/checkpoint
  gpt2 card --model gpt2                              OpenAI's released 124M weights (downloads them)

Read: config.json (sizes, parameter count, the "gpt2" training metadata), training_state.pt beside the
weights, train_config.json of the run directory above a checkpoint (runs/x/checkpoint or
runs/x/checkpoints/step_N), the manifest.json of the data the run read, results.json (gpt2 eval) and
bias.json (gpt2 bias) given here or found in the checkpoint or run directory. Facts none of them holds
are written "not recorded", never guessed."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "card",
        help="write a model card from a checkpoint's recorded facts",
        description="A model card in the structure of OpenAI's GPT-2 card, filled from the checkpoint's "
                    "config, training metadata, data manifest and evaluation results.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", "-m", required=True, metavar="DIR_OR_NAME",
                   help="checkpoint directory, run directory of `gpt2 train`, or hub name")
    p.add_argument("--results", action="append", default=None, metavar="FILE",
                   help="a results.json of `gpt2 eval`, repeatable (added to any found beside the checkpoint)")
    p.add_argument("--bias", default=None, metavar="FILE",
                   help="a bias.json of `gpt2 bias` (default: one found beside the checkpoint)")
    p.add_argument("--out", "-o", default=None, metavar="DIR",
                   help="write model_card.md and model_card.json here (default: print the Markdown)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpt2.card import build_card, render_markdown, write_card

    card = build_card(args.model, results=args.results, bias=args.bias)
    if args.out:
        md, js = write_card(card, args.out)
        print(f"wrote {md} and {js}", file=sys.stderr)
    else:
        print(render_markdown(card), end="")
    return 0
