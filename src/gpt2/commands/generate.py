"""`gpt2 generate`: sample continuations of a prompt from a checkpoint."""

from __future__ import annotations

import argparse
import sys

from gpt2.commands import _options, detect_watermark

EPILOG = """\
examples:
  gpt2 generate "In a shocking finding,"                   top-k 40 samples from GPT-2 124M
  gpt2 generate -m out/run1 -n 50 --num-samples 3 --seed 1 "Once upon a time"
  gpt2 generate -t 0 "The capital of France is"             greedy (deterministic)
  gpt2 generate --top-k 0 --top-p 0.9 --stream ""           nucleus sampling, unconditional, as it comes
  echo -n "Q: Why?" | gpt2 generate --stop "Q:" -           prompt from stdin, stop at the next question
  gpt2 generate --watermark-key-file key.txt "Once"         watermarked (gamma 0.25, delta 2); test it with
                                                            gpt2 detect watermark -m gpt2 --watermark-key-file key.txt -

An empty prompt samples unconditionally (from <|endoftext|>). Text from stdin is used exactly as read,
trailing newline included."""

def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "generate",
        help="sample text from a model",
        description="Sample continuations of a prompt (temperature, top-k, top-p), batched or streamed.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("prompt", nargs="?", default="", help="the prompt; '-' reads it from stdin; default: none")
    p.add_argument("--max-new-tokens", "-n", type=int, default=100, metavar="N",
                   help="tokens per sample (default: 100)")
    p.add_argument("--temperature", "-t", type=float, default=1.0, metavar="T",
                   help="0 = greedy (default: 1.0)")
    p.add_argument("--top-k", "-k", type=int, default=40, metavar="K",
                   help="sample among the k most likely tokens; 0 = no limit (default: 40, as in GPT-2's "
                   "published samples)")
    p.add_argument("--top-p", "-p", type=float, default=None, metavar="P",
                   help="nucleus sampling: the smallest set of tokens holding this much probability")
    p.add_argument("--num-samples", "-s", type=int, default=1, metavar="N",
                   help="samples to draw (default: 1)")
    p.add_argument("--seed", type=int, default=None, metavar="N",
                   help="random seed, for reproducible samples")
    p.add_argument("--stop", action="append", default=None, metavar="STR",
                   help="end a sample at this string (left out of the output); repeatable")
    p.add_argument("--no-eos", action="store_true", help="do not stop at <|endoftext|>")
    p.add_argument("--stream", action="store_true", help="print text as it is generated")
    _options.add_options(p, int8=True)
    detect_watermark.add_watermark_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from gpt2 import sampling

    if args.num_samples < 1:  # named as the flag is, before GenerationConfig names its own field
        raise sampling.SamplingError(f"num_samples must be an integer >= 1; got {args.num_samples}")
    seed = args.seed if args.seed is not None else int(torch.randint(0, 2**62, ()).item())
    config = sampling.GenerationConfig(
        max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        num_return_sequences=args.num_samples, seed=seed, stop_strings=args.stop,
        eos_token_id=None if args.no_eos else sampling.MODEL_EOS,
        watermark=detect_watermark.watermark_from_args(args),
    )  # checked before the model loads
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    model, tokenizer = _options.load(args)
    ids = tokenizer.encode(prompt)
    if args.stream:
        for i in range(args.num_samples):
            print(header(i), flush=True)
            for piece in sampling.stream(model, ids, tokenizer, config, sample_index=i):
                sys.stdout.write(piece)
                sys.stdout.flush()
            print()
    else:
        for i, sample in enumerate(sampling.generate(model, ids, config, tokenizer=tokenizer)):
            print(header(i))
            print(sample.text)
    return 0


def header(i: int) -> str:
    return f"{'=' * 40} SAMPLE {i + 1} {'=' * 40}"  # as in OpenAI's GPT-2 sample dumps
