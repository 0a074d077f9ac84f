"""`gpt2 train`: pretrain or fine-tune a GPT-2 on prepared token shards (one process or `torchrun`)."""

from __future__ import annotations

import argparse

from gpt2.commands._types import count
from gpt2.training.config import DTYPES
from gpt2.training.optim import OPTIMIZERS

EPILOG = """\
examples:
  gpt2 train --data data/shakespeare --out runs/nano --model-size nano --max-steps 2000
  gpt2 train --data data/web --out runs/124M --model-size 124M --batch-size 16 --seq-len 1024 \\
      --total-batch-tokens 524288 --max-tokens 10e9 --lr 6e-4 --warmup-steps 700
  gpt2 train --data data/shakespeare-gpt2 --out runs/ft --init-from gpt2 --lr 3e-5 --max-steps 200
  gpt2 train --out runs/124M --resume                       continue after a crash or kill
  torchrun --standalone --nproc_per_node=8 -m gpt2 train ...  data-parallel on 8 GPUs

The run directory gets train_config.json, metrics.jsonl (one line per step), loss.png and checkpoint/,
an HF-layout checkpoint (loads in transformers and `gpt2 generate -m RUN/checkpoint`) that is replaced
atomically, so a kill at any moment leaves the previous one intact. --resume continues exactly where
the checkpoint left off (on CPU the losses match an uninterrupted run bit for bit); it may change only
the run's length, intervals, device and --data path. Multi-node: see `python -m pydoc gpt2.training`."""


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train", help="train or fine-tune a model on prepared data",
        description="Train GPT-2 on token shards written by `gpt2 prepare`.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # Every option defaults to None: TrainConfig holds the defaults, and --resume can tell which were given.
    p.add_argument("--data", metavar="DIR", help="directory written by `gpt2 prepare`")
    p.add_argument("--out", "-o", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint (starts fresh if it has none yet)")
    model = p.add_argument_group("model (one of --model-size, --init-from)")
    model.add_argument("--model-size", metavar="PRESET",
                       help="a fresh model: nano, micro, mini, 124M, 355M, 774M, 1558M")
    for name in ("n-layer", "n-head", "n-embd", "n-positions"):
        model.add_argument(f"--{name}", type=int, help=f"override the preset's {name.replace('-', '_')}")
    model.add_argument("--dropout", type=float, help="dropout probability (default: 0)")
    model.add_argument("--init-from", metavar="DIR_OR_NAME",
                       help="fine-tune this checkpoint (keeps its tokenizer): a directory or gpt2, ...")
    length = p.add_argument_group("length (the first limit reached ends the run)")
    length.add_argument("--max-steps", type=int, help="optimizer steps")
    length.add_argument("--max-tokens", type=count, help="training tokens, e.g. 10e9")
    length.add_argument("--time-budget-s", type=float,
                        help="wall-clock seconds for this invocation; alone, it times the first steps to "
                             "fix how many steps the learning rate decays over")
    batch = p.add_argument_group("batch")
    batch.add_argument("--batch-size", type=int, help="sequences per micro-batch per process (default: 8)")
    batch.add_argument("--seq-len", type=int, help="tokens per sequence (default: the model's n_positions)")
    batch.add_argument("--total-batch-tokens", type=count,
                       help="tokens per optimizer step over all processes; sets gradient accumulation "
                            "(default: batch-size x seq-len x processes)")
    opt = p.add_argument_group("optimizer (linear warmup, cosine decay)")
    opt.add_argument("--optimizer", choices=OPTIMIZERS,
                     help="adamw (default; nanoGPT's and llm.c's choice for GPT-2), or muon: Muon on the blocks' "
                     "matrices, AdamW on embeddings, biases and gains, both at --lr (Moonshot's scaling)")
    opt.add_argument("--lr", type=float, help="peak learning rate (default: 6e-4)")
    opt.add_argument("--min-lr", type=float, help="final learning rate (default: lr / 10)")
    opt.add_argument("--warmup-steps", type=int,
                     help="default: 5%% of the steps, at most 2000 (100 for a run bounded only by time)")
    opt.add_argument("--weight-decay", type=float, help="on matrices and embeddings (default: 0.1)")
    opt.add_argument("--beta1", type=float, help="default: 0.9")
    opt.add_argument("--beta2", type=float, help="default: 0.95")
    opt.add_argument("--grad-clip", type=float, help="max global gradient norm, 0 = off (default: 1.0)")
    run_ = p.add_argument_group("compute, evaluation, checkpoints")
    run_.add_argument("--dtype", choices=DTYPES,
                      help="bf16 autocast or fp32 (default: auto = bf16 where the device multiplies it "
                      "natively: CUDA compute capability >= 8.0, AMX or AVX512-BF16 CPUs; `gpt2 info --machine` "
                      "tells)")
    run_.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                      help="torch.compile the model (default: off)")
    run_.add_argument("--device", help="auto, cpu, cuda, ... (default: auto = cuda if available; torchrun: LOCAL_RANK)")
    run_.add_argument("--peak-tflops", type=float, help="per-device peak for the MFU estimate")
    run_.add_argument("--eval-interval", type=int, help="steps between validations (default: 250)")
    run_.add_argument("--eval-tokens", type=count, help="validation tokens per evaluation (default: 262144)")
    run_.add_argument("--save-interval", type=int, help="steps between checkpoints (default: eval interval)")
    run_.add_argument("--seed", type=int, help="default: 1337")
    run_.add_argument("--quiet", "-q", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=run)


_NOT_CONFIG = {"command", "func", "resume", "quiet"}


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gpt2.errors import ConfigError
    from gpt2.training import TrainConfig, Trainer
    from gpt2.training.checkpointing import latest_checkpoint

    given = {k: v for k, v in vars(args).items() if k not in _NOT_CONFIG and v is not None}
    if args.resume and latest_checkpoint(Path(args.out)) is not None:
        trainer = Trainer.resume(args.out, progress=not args.quiet, **given)
    else:
        if args.resume:
            print(f"no checkpoint in {args.out} yet: starting the run from scratch")
        if "data" not in given:
            raise ConfigError("--data is required (unless --resume finds a checkpoint in --out)")
        trainer = Trainer(TrainConfig(**given), progress=not args.quiet)
    try:
        summary = trainer.train()
    finally:
        trainer.close()
    if trainer.dist.is_main:
        val = summary["val_loss"]
        val_text = f", val loss {val:.4f}" if val is not None else ""
        print(f"step {summary['step']}: {summary['tokens']:,} tokens{val_text}; "
              f"checkpoint: {summary['checkpoint']}")
    return 0
