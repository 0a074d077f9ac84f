"""Batch-1 greedy decoding speed: this package's `generate` vs transformers' `generate`, same weights.

    .venv/bin/python benchmarks/bench_decode.py [--new-tokens 64] [--repeats 5] [--dtypes fp32 bf16 int8]
    .venv/bin/python benchmarks/bench_decode.py --accuracy CHECKPOINT [--text FILE] [--max-tokens N]

Both models hold the same random weights of the 124M configuration (speed does not depend on the values), decode the
same prompt greedily to exactly --new-tokens tokens (no EOS stop), in the same process, after a warm-up, alternating
runs. Reported: new tokens / median wall time over --repeats, prefill included. `+pack` rows are ours after
`gpt2.packing.pack_for_cpu` (weights prepacked for oneDNN, as the CLI loads a model on CPU), against the same
transformers run. `int8` is ours with `quantize_int8` (int8 weights; int8 or bf16 activations by CPU class) against
transformers in float32, the precision it stands in for; transformers has no int8 path of its own on CPU.


--accuracy measures what the speed costs on a trained checkpoint (random weights say nothing there): the
mean next-token NLL on --text (default: WikiText-2 test) in fp32, bf16, bf16+pack and int8 with bf16 and with int8
activations, and the relative change of their NLL and logits vs fp32. int8/bf16 is run through the KV cache 16
tokens at a time, so the weight-only kernel itself (not the wide-input GEMM) computes it, as in decoding.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import platform

# Sleeping, not spinning, OpenMP waiters: with spinning ones (libgomp's default) torch's 2 threads ran 5-12x
# slower than 1 thread on the shared 2-core dev box while other jobs held the cores. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import transformers  # noqa: E402
from _machine import cpu_model, default_dtypes, time_alternately
from _pair import hf_twin
from transformers import GPT2LMHeadModel

from gpt2.config import GPTConfig
from gpt2.model import GPT
from gpt2.packing import can_pack, pack_for_cpu
from gpt2.quantize import quantize_int8
from gpt2.sampling import generate

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
WIKITEXT2_TEST = "/work/shared/data/wikitext2/wiki.test.raw"


def build_models(preset: str) -> tuple[GPT, GPT2LMHeadModel]:
    torch.manual_seed(0)
    ours = GPT(GPTConfig.from_preset(preset)).eval()
    return ours, hf_twin(ours)


def run_ours(model: GPT, prompt: list[int], new_tokens: int) -> list[int]:
    tokens = generate(model, prompt, max_new_tokens=new_tokens, temperature=0, eos_token_id=None)[0].tokens
    assert len(tokens) == new_tokens
    return tokens


def run_hf(model: GPT2LMHeadModel, prompt: list[int], new_tokens: int) -> list[int]:
    ids = torch.tensor([prompt], device=model.device)
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0)
    tokens = out[0, len(prompt):].tolist()
    assert len(tokens) == new_tokens
    return tokens


@torch.inference_mode()
def window_nll(model: GPT, window: torch.Tensor, chunk: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits and summed NLL of next-token prediction over one window (1, T); `chunk` feeds it through the
    KV cache that many tokens at a time."""
    if chunk is None:
        logits = model(window[:, :-1])[0]
    else:
        cache = model.new_kv_cache(1, window.size(1))
        pieces = window[:, :-1].split(chunk, dim=1)
        logits = torch.cat([model(piece, kv_cache=cache)[0] for piece in pieces], dim=1)
    logits = logits.float()
    nll = torch.nn.functional.cross_entropy(logits[0], window[0, 1:], reduction="sum")
    return logits, nll


def accuracy(checkpoint: str, text_path: str, max_tokens: int) -> None:
    from gpt2.checkpoint import load_tokenizer
    from gpt2.model import GPT

    tokenizer = load_tokenizer(checkpoint)
    with open(text_path, encoding="utf-8") as f:
        ids = tokenizer.encode(f.read())[:max_tokens]
    fp32 = GPT.from_pretrained(checkpoint).eval()
    bf16 = copy.deepcopy(fp32).to(torch.bfloat16)
    variants = {"fp32": (fp32, None), "bf16": (bf16, None),
                "int8/bf16": (quantize_int8(copy.deepcopy(fp32), activations="bf16"), 16),  # weights only
                "int8/int8": (quantize_int8(copy.deepcopy(fp32), activations="int8"), None)}  # and activations
    if can_pack(bf16):
        variants["bf16+pack"] = (pack_for_cpu(copy.deepcopy(bf16)), None)
    size = fp32.config.n_positions
    windows = [torch.tensor([ids[i : i + size]]) for i in range(0, len(ids) - 1, size - 1)]
    windows = [w for w in windows if w.size(1) > 1]
    nll = dict.fromkeys(variants, 0.0)
    err = dict.fromkeys(variants, 0.0)
    top1 = dict.fromkeys(variants, 0)
    norm = 0.0
    count = sum(w.size(1) - 1 for w in windows)
    for w in windows:
        ref_logits, _ = window_nll(fp32, w, None)
        norm += ref_logits.square().sum().item()
        for name, (model, chunk) in variants.items():
            logits, total = window_nll(model, w, chunk)
            nll[name] += total.item()
            err[name] += (logits - ref_logits).square().sum().item()
            top1[name] += int((logits.argmax(-1) == ref_logits.argmax(-1)).sum())
    print(f"checkpoint {checkpoint} ({fp32.num_parameters():,} parameters, {fp32.config.n_layer} layers, "
          f"n_embd {fp32.config.n_embd}); {text_path}: {count:,} predicted tokens in {len(windows)} "
          f"windows of {size}\n")
    base = nll["fp32"] / count
    print(f"{'variant':<9} {'mean NLL':>9} {'ppl':>9} {'NLL vs fp32':>12} {'logits rel. err':>16} "
          f"{'same argmax':>12}")
    for name in variants:
        mean = nll[name] / count
        print(f"{name:<9} {mean:>9.4f} {math.exp(mean):>9.2f} {100 * (mean / base - 1):>+11.3f}% "
              f"{(err[name] / norm) ** 0.5:>16.5f} {100 * top1[name] / count:>11.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--preset", default="124M")
    parser.add_argument("--dtypes", nargs="+", choices=[*DTYPES, "int8"], default=[*default_dtypes(), "int8"])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (int8 is CPU-only)")
    parser.add_argument("--accuracy", metavar="CHECKPOINT", help="measure NLL/logit changes instead of speed")
    parser.add_argument("--text", default=WIKITEXT2_TEST, help="--accuracy's text (default: WikiText-2 test)")
    parser.add_argument("--max-tokens", type=int, default=40_000, help="tokens of --text for --accuracy")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.accuracy:
        accuracy(args.accuracy, args.text, args.max_tokens)
        return

    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; load average {os.getloadavg()[0]:.1f}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"python {platform.python_version()}")
    print(f"model {args.preset} (random weights), batch 1, greedy, prompt {args.prompt_tokens} tokens, "
          f"{args.new_tokens} new tokens, median of {args.repeats} after a warm-up\n")
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, 50256, (args.prompt_tokens,), generator=g).tolist()
    ours, hf = build_models(args.preset)
    ours.to(args.device), hf.to(args.device)
    if args.device != "cpu":
        print(f"device: {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}")
    int8 = quantize_int8(copy.deepcopy(ours)) if "int8" in args.dtypes else None
    run = lambda model: (lambda: run_ours(model, prompt, args.new_tokens))
    run_theirs = lambda: run_hf(hf, prompt, args.new_tokens)
    results = {}  # row -> (ours seconds, HF seconds, ours tokens, HF tokens)

    def alternate(ours_rows: dict[str, GPT]) -> None:
        """Time the given variants of ours and transformers in one alternation; HF's time is shared."""
        times, outputs = time_alternately([run(m) for m in ours_rows.values()] + [run_theirs], args.repeats)
        for i, row in enumerate(ours_rows):
            results[row] = (times[i], times[-1], outputs[i], outputs[-1])

    def with_packed(name: str) -> dict[str, GPT]:
        rows = {name: ours}
        if can_pack(ours):
            rows[name + "+pack"] = pack_for_cpu(copy.deepcopy(ours))
        return rows

    if "fp32" in args.dtypes or int8 is not None:  # one alternation, so int8 and fp32 share HF's timing
        alternate({**(with_packed("fp32") if "fp32" in args.dtypes else {}),
                   **({"int8": int8} if int8 is not None else {})})
    if "bf16" in args.dtypes:
        ours.to(torch.bfloat16)
        hf.to(torch.bfloat16)
        alternate(with_packed("bf16"))

    print(f"{'ours':<9} {'HF':<5} {'ours tok/s':>11} {'HF tok/s':>10} {'ours/HF':>8} {'ours ms/tok':>12} "
          f"{'same tokens':>12}")
    for name, (t_ours, t_hf, tok_ours, tok_hf) in results.items():
        same = sum(a == b for a, b in zip(tok_ours, tok_hf, strict=True))
        n = args.new_tokens
        theirs = "fp32" if name == "int8" else name.removesuffix("+pack")
        print(f"{name:<9} {theirs:<5} {n / t_ours:>11.1f} {n / t_hf:>10.1f} {t_hf / t_ours:>7.2f}x "
              f"{1000 * t_ours / n:>12.1f} {same:>7}/{n}")


if __name__ == "__main__":
    main()
