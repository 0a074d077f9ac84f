"""Rolling-window perplexity speed: this package's WikiText-2 scoring vs a plain transformers loop, same windows.

    .venv/bin/python benchmarks/bench_eval.py [--windows 6] [--repeats 3] [--stride 512]
        [--variants fp32-b1 fp32-b8 bf16-b8 autocast-b8]
    .venv/bin/python benchmarks/bench_eval.py --n-layer 1 --n-positions 64 --windows 3 --repeats 1   # a smoke run
    .venv/bin/python benchmarks/bench_eval.py --checkpoint DIR [--text FILE]   # what bf16 does to the NLL

Text: the `gpt2 eval` wikitext2 task's (WikiText-2 test, wiki.test.tokens, de-tokenized, GPT-2's vocabulary
from ../shared/vocab), or --text FILE as the perplexity task reads it, cut to the tokens that --windows
windows score. Model: the 124M configuration with random weights (speed does not depend on the values), the
same weights in both, or --checkpoint's weights.

Windows: transformers' documented recipe ("Perplexity of fixed-length models"): each forward reads
n_positions tokens ending at the window's last target, labels = the ids with -100 over the context part, the
model shifts them, and NLL += loss * targets. That reads the same tokens and predicts the same targets as
`rolling_nll(..., n_ctx=n_positions - 1, stride)` (the inputs end one token before the last target; the
first token is conditioned on <|endoftext|> in both), so both must give the same NLL sum and token count.
The reference runs one window per forward in fp32 under torch.no_grad(), as the recipe does.

Ours: what `gpt2 eval` runs once the text is tokenized (`evaluate_lm` calls `rolling_nll`), in the variants
asked for: `fp32-bN` (fp32, N windows per forward; `gpt2 eval`'s default --batch-size is 8), `bf16-bN`
(weights cast to bf16, as `gpt2 eval --dtype bf16 --no-pack`), `autocast-bN` (fp32 weights, matmuls in
bf16 by torch.autocast), `fp32pack-bN` / `bf16pack-bN` (the same after `gpt2.packing.pack_for_cpu`, as
`gpt2 eval` runs on CPU). Reported: scored tokens / median wall time over --repeats, all variants and the
reference run in turn after a warm-up; ratio = ours / reference throughput (target >= 1.5); NLL sum and its
relative difference to the reference (fp32: float tolerance; bf16: what the speed costs, meaningful only
with --checkpoint's trained weights since random ones predict an almost uniform distribution).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import sys
from pathlib import Path

# Sleeping, not spinning, OpenMP waiters (see bench_decode.py): set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import transformers  # noqa: E402
from _machine import default_dtypes, machine_details, time_alternately  # noqa: E402
from _pair import hf_twin
from transformers import GPT2LMHeadModel  # noqa: E402

from gpt2.config import GPTConfig  # noqa: E402
from gpt2.evaluation.perplexity import load_lm_text  # noqa: E402
from gpt2.model import GPT
from gpt2.packing import pack_for_cpu  # noqa: E402
from gpt2.scoring import rolling_nll, rolling_windows  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared"
VOCAB_FILE = SHARED / "vocab" / "r50k_base.tiktoken"
WIKITEXT2_TEST = SHARED / "data" / "wikitext2" / "wiki.test.tokens"
EOT = 50256
transformers.logging.set_verbosity_error()  # config notes about loss_type and the like


def build_models(args) -> tuple[GPT, GPT2LMHeadModel]:
    if args.checkpoint:
        return GPT.from_pretrained(args.checkpoint).eval(), GPT2LMHeadModel.from_pretrained(args.checkpoint).eval()
    torch.manual_seed(0)
    overrides = {k: v for k, v in [("n_layer", args.n_layer), ("n_positions", args.n_positions)] if v}
    ours = GPT(GPTConfig.from_preset(args.preset, **overrides)).eval()
    return ours, hf_twin(ours)


def text_ids(path: Path, n_targets: int) -> list[int]:
    """The first `n_targets` tokens of the text `gpt2 eval` scores: the wikitext2 task's for WikiText-2,
    the perplexity task's (the file as it is) for any other file."""
    os.environ.setdefault("GPT2_VOCAB_FILE", str(VOCAB_FILE))
    from gpt2.tokenizer import Tokenizer

    task = "wikitext2" if path == WIKITEXT2_TEST else "perplexity"
    ids = Tokenizer.from_pretrained("gpt2").encode(load_lm_text(task, path).text)
    if len(ids) < n_targets:
        sys.exit(f"{path} has {len(ids):,} tokens, fewer than the {n_targets:,} asked for")
    return ids[:n_targets]


def score_hf(model: GPT2LMHeadModel, ids: list[int], n_ctx: int, stride: int) -> tuple[float, int]:
    """transformers' documented perplexity loop over `rolling_nll`'s windows for n_ctx - 1."""
    seq = torch.tensor([EOT, *ids])
    nll, count = 0.0, 0
    with torch.no_grad():
        for begin, end, n in rolling_windows(len(ids), n_ctx - 1, stride):
            input_ids = seq[begin : end + 1].unsqueeze(0)  # at most n_ctx tokens, the last target included
            labels = input_ids.clone()
            labels[:, :-n] = -100
            nll += model(input_ids, labels=labels).loss.item() * n
            count += n
    return nll, count


def score_ours(model: GPT, ids: list[int], n_ctx: int, stride: int, batch_size: int, autocast: bool):
    """What `gpt2 eval` runs for wikitext2 once the text is tokenized (`evaluate_lm` calls `rolling_nll`)."""
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if autocast else contextlib.nullcontext()
    with ctx:
        result = rolling_nll(model, ids, EOT, n_ctx=n_ctx - 1, stride=stride, batch_size=batch_size)
    return result.nll, result.tokens


KINDS = ("fp32", "bf16", "autocast", "fp32pack", "bf16pack")


def parse_variant(name: str) -> tuple[str, int] | None:
    """("fp32", 8) for "fp32-b8"; None if `name` is not KIND-bN."""
    kind, _, batch = name.partition("-b")
    return (kind, int(batch)) if kind in KINDS and batch.isdigit() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--windows", type=int, default=6, help="windows scored per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--stride", type=int, default=None, help="default: half the context, as gpt2 eval")
    parser.add_argument("--preset", default="124M")
    parser.add_argument("--n-layer", type=int, default=None, help="override the preset's layers (smoke runs)")
    parser.add_argument("--n-positions", type=int, default=None, help="override the context length (smoke runs)")
    parser.add_argument("--checkpoint", default=None, help="an HF-layout checkpoint instead of random weights")
    parser.add_argument("--variants", nargs="+",
                        default=["fp32-b1", "fp32-b8", "fp32pack-b8",
                                 *(["bf16-b8", "bf16pack-b8", "autocast-b8"] if "bf16" in default_dtypes() else [])])
    parser.add_argument("--text", type=Path, default=WIKITEXT2_TEST, help="default: WikiText-2 test")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    bad = [name for name in args.variants if parse_variant(name) is None]
    if bad:
        parser.error(f"--variants {' '.join(bad)}: expected KIND-bN, KIND one of {', '.join(KINDS)} "
                     "(N windows per forward)")
    variants = [(name, *parse_variant(name)) for name in args.variants]
    if args.threads:
        torch.set_num_threads(args.threads)
    for path in (VOCAB_FILE, args.text):
        if not path.exists():
            sys.exit(f"{path} is absent: this benchmark needs ../shared (vocab and data) next to the project")

    ours, hf = build_models(args)
    n_ctx = ours.config.n_positions
    stride = args.stride or n_ctx // 2
    ids = text_ids(args.text, n_ctx - 1 + (args.windows - 1) * stride)
    assert len(rolling_windows(len(ids), n_ctx - 1, stride)) == args.windows
    models = {"fp32": ours, "autocast": ours}
    kinds = {k for _, k, _ in variants}
    if kinds & {"bf16", "bf16pack"}:
        models["bf16"] = copy.deepcopy(ours).to(torch.bfloat16)
    for kind in kinds & {"fp32pack", "bf16pack"}:
        models[kind] = pack_for_cpu(copy.deepcopy(models[kind.removesuffix("pack")]))

    print(machine_details(["torch", "transformers", "tiktoken", "tokenizers"]))
    c = ours.config
    weights = "trained weights" if args.checkpoint else "random weights"
    text = "WikiText-2 test" if args.text == WIKITEXT2_TEST else args.text
    print(f"model {args.checkpoint or args.preset} ({c.n_layer} layers, n_embd {c.n_embd}, "
          f"{ours.num_parameters():,} parameters, {weights}); {text}, first {args.windows} windows: "
          f"{n_ctx} tokens read per window, stride {stride}, {len(ids):,} tokens scored; median of "
          f"{args.repeats} after a warm-up, all runs in turn\n")

    fns = [("transformers fp32, 1/forward", lambda: score_hf(hf, ids, n_ctx, stride))]
    for name, kind, batch in variants:
        fns.append((f"ours {name}", lambda m=models[kind], b=batch, a=kind == "autocast": score_ours(
            m, ids, n_ctx, stride, b, a)))
    warm_ids = ids[: n_ctx - 1 + stride]  # two windows: the allocator and oneDNN's kernels get set up
    score_hf(hf, warm_ids, n_ctx, stride)
    for _, kind, batch in variants:
        score_ours(models[kind], warm_ids, n_ctx, stride, batch, kind == "autocast")
    medians, results = time_alternately([fn for _, fn in fns], args.repeats, warmup=0)

    ref_nll, ref_tokens = results[0]
    print(f"{'run':<30} {'s/run':>7} {'tokens/s':>9} {'vs HF':>7} {'NLL sum':>14} {'NLL vs HF':>10} {'tokens':>7}")
    for (name, _), t, (nll, tokens) in zip(fns, medians, results, strict=True):
        print(f"{name:<30} {t:>7.2f} {tokens / t:>9.1f} {medians[0] / t:>6.2f}x {nll:>14.4f} "
              f"{(nll / ref_nll - 1) * 100:>+9.4f}% {tokens:>7}{'' if tokens == ref_tokens else ' (DIFFERENT)'}")


if __name__ == "__main__":
    main()
