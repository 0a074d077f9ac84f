"""Output-dataset generation throughput: `gpt2.output_dataset.generate_outputs` vs transformers' batched `generate`.

    .venv/bin/python benchmarks/bench_outputs.py [--preset 124M] [--samples 32] [--batch-size 16]
                                                 [--max-new-tokens 64] [--dtype fp32] [--threads N]

Both sides hold the same random weights of the --preset configuration (speed does not depend on the
values) and write the same kind of dataset: --samples unconditional samples from <|endoftext|>, top-k 40,
temperature 1, --batch-size samples per batch, at most --max-new-tokens tokens each, decoded to text and
written as gpt-2-output-dataset jsonl lines. Ours: `generate_outputs` (per-sample seeded randomness,
resumable writes, an fsync per batch) on the model packed for CPU as `gpt2 outputs` loads it
(`gpt2.packing`; --no-pack leaves it plain). Transformers: `model.generate(do_sample=True, top_k=40)` on a
batch of <|endoftext|> prompts, then the same decode and write. A warm-up batch runs first for each.
Reported: samples/s and generated tokens/s (tokens actually produced; random weights almost never pick
<|endoftext|>, so samples run to --max-new-tokens). GPT-2's vocabulary is read offline from
../shared/vocab when tiktoken has no copy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import transformers
from _machine import cpu_model, default_dtypes
from _pair import hf_twin
from transformers import GPT2LMHeadModel

from gpt2 import output_dataset as outputs
from gpt2.config import GPTConfig
from gpt2.model import GPT
from gpt2.packing import can_pack, pack_for_cpu

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
SHARED_VOCAB = Path(__file__).resolve().parents[2] / "shared" / "vocab" / "r50k_base.tiktoken"


def gpt2_tokenizer():
    from gpt2.tokenizer import Tokenizer

    if "GPT2_VOCAB_FILE" not in os.environ and SHARED_VOCAB.is_file():
        try:
            return Tokenizer.from_pretrained("gpt2")
        except Exception:
            os.environ["GPT2_VOCAB_FILE"] = str(SHARED_VOCAB)
    return Tokenizer.from_pretrained("gpt2")


def build_models(preset: str, dtype: torch.dtype) -> tuple[GPT, GPT2LMHeadModel]:
    torch.manual_seed(0)
    ours = GPT(GPTConfig.from_preset(preset, vocab_size=50257)).eval()
    return ours.to(dtype), hf_twin(ours).to(dtype)


def run_ours(model, tokenizer, directory: Path, samples: int, batch: int, max_new: int, seed: int) -> int:
    spec = outputs.OutputSpec(name="bench", sampling=outputs.parse_sampling("topk:40"),
                              splits={"train": samples}, max_new_tokens=max_new, seed=seed)
    return outputs.generate_outputs(model, tokenizer, spec, directory, batch_size=batch).tokens


@torch.inference_mode()
def run_hf(model, tokenizer, directory: Path, samples: int, batch: int, max_new: int, seed: int) -> int:
    torch.manual_seed(seed)
    eot = tokenizer.eot_token_id
    tokens = 0
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "hf-k40.train.jsonl", "w", encoding="utf-8") as f:
        for start in range(0, samples, batch):
            n = min(batch, samples - start)
            ids = torch.full((n, 1), eot)
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=40,
                                 temperature=1.0, max_new_tokens=max_new, pad_token_id=eot, eos_token_id=eot)
            for i, row in enumerate(out[:, 1:].tolist()):
                ended = eot in row
                row = row[: row.index(eot)] if ended else row
                tokens += len(row)
                f.write(json.dumps({"id": start + i, "ended": ended, "length": len(row),
                                    "text": tokenizer.decode(row)}) + "\n")
            f.flush()
    return tokens


def timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    tokens = fn()
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="124M",
                        help="model size preset (default: 124M; mini or micro for a quick run)")
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--dtype", choices=list(DTYPES), default=default_dtypes()[-1],
                        help="default: bf16 where this CPU has it natively, else fp32")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-pack", action="store_true", help="ours as a plain module, not packed")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    tokenizer = gpt2_tokenizer()
    ours, hf = build_models(args.preset, DTYPES[args.dtype])
    packed = can_pack(ours) and not args.no_pack
    if packed:
        pack_for_cpu(ours)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"load average {load:.1f} at start")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"python {platform.python_version()}")
    print(f"model {args.preset} ({ours.num_parameters() / 1e6:.0f}M parameters, random weights, "
          f"{args.dtype}{', ours packed' if packed else ''}); {args.samples} samples, batch {args.batch_size}, "
          f"top-k 40, up to {args.max_new_tokens} new tokens\n")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        run_ours(ours, tokenizer, tmp / "warm-ours", min(4, args.batch_size), args.batch_size, 4, 0)
        run_hf(hf, tokenizer, tmp / "warm-hf", min(4, args.batch_size), args.batch_size, 4, 0)
        rows = []
        for name, fn, model in (("ours (gpt2 outputs)", run_ours, ours),
                                ("transformers generate", run_hf, hf)):
            seconds, tokens = timed(lambda fn=fn, model=model, name=name: fn(
                model, tokenizer, tmp / name.split()[0], args.samples, args.batch_size,
                args.max_new_tokens, 1))
            rows.append((name, seconds, tokens))

    base = rows[1]
    print("| implementation | samples/s | tokens/s | seconds | tokens | vs transformers |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, seconds, tokens in rows:
        ratio = (tokens / seconds) / (base[2] / base[1])
        print(f"| {name} | {args.samples / seconds:.2f} | {tokens / seconds:.1f} | {seconds:.1f} | "
              f"{tokens} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
