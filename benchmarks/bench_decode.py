"""Batch-1 greedy decoding speed: this package's `generate` vs transformers' `generate`, same weights.

    .venv/bin/python benchmarks/bench_decode.py [--new-tokens 64] [--repeats 5] [--dtypes fp32 bf16]

Both models hold the same random weights of the 124M configuration (speed does not depend on the values),
decode the same prompt greedily to exactly --new-tokens tokens (no EOS stop), in the same process, after a
warm-up, alternating runs. Reported: new tokens / median wall time over --repeats, prefill included.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
import transformers
from transformers import GPT2Config, GPT2LMHeadModel

from gpt2.checkpoint import to_hf_state_dict
from gpt2.config import GPTConfig
from gpt2.model import GPT
from gpt2.sampling import generate

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_models(preset: str) -> tuple[GPT, GPT2LMHeadModel]:
    torch.manual_seed(0)
    ours = GPT(GPTConfig.from_preset(preset)).eval()
    c = ours.config
    hf = GPT2LMHeadModel(GPT2Config(n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd,
                                    vocab_size=c.vocab_size, n_positions=c.n_positions)).eval()
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(ours), strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    hf.tie_weights()
    return ours, hf


def run_ours(model: GPT, prompt: list[int], new_tokens: int) -> list[int]:
    tokens = generate(model, prompt, max_new_tokens=new_tokens, temperature=0, eos_token_id=None)[0].tokens
    assert len(tokens) == new_tokens
    return tokens


def run_hf(model: GPT2LMHeadModel, prompt: list[int], new_tokens: int) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
    tokens = out[0, len(prompt):].tolist()
    assert len(tokens) == new_tokens
    return tokens


def time_alternately(fns: list, repeats: int) -> tuple[list[float], list]:
    """Median wall time and last output of each function, run in turn so that load from elsewhere on the
    machine hits all of them alike."""
    for fn in fns:
        fn()  # warm-up: allocator, kernels, lazy initialisation
    times: list[list[float]] = [[] for _ in fns]
    outputs = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            outputs[i] = fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times], outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--preset", default="124M")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=list(DTYPES))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"python {platform.python_version()}")
    print(f"model {args.preset} (random weights), batch 1, greedy, prompt {args.prompt_tokens} tokens, "
          f"{args.new_tokens} new tokens, median of {args.repeats} after a warm-up\n")
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, 50256, (args.prompt_tokens,), generator=g).tolist()
    ours, hf = build_models(args.preset)
    rows = []
    for name in args.dtypes:
        ours.to(DTYPES[name])
        hf.to(DTYPES[name])
        (t_ours, t_hf), (tok_ours, tok_hf) = time_alternately(
            [lambda: run_ours(ours, prompt, args.new_tokens), lambda: run_hf(hf, prompt, args.new_tokens)],
            args.repeats)
        same = sum(a == b for a, b in zip(tok_ours, tok_hf, strict=True))
        rows.append((name, args.new_tokens / t_ours, args.new_tokens / t_hf, t_hf / t_ours, same))

    print(f"{'dtype':<6} {'ours tok/s':>11} {'HF tok/s':>10} {'ours/HF':>8} {'ours ms/tok':>12} "
          f"{'same tokens':>12}")
    for name, ours_tps, hf_tps, ratio, same in rows:
        print(f"{name:<6} {ours_tps:>11.1f} {hf_tps:>10.1f} {ratio:>7.2f}x {1000 / ours_tps:>12.1f} "
              f"{same:>7}/{args.new_tokens}")


if __name__ == "__main__":
    main()
