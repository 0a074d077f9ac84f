"""Training speed: tokens/s and MFU of one optimizer step, our GPT vs transformers' GPT2LMHeadModel.

    .venv/bin/python benchmarks/bench_train.py [--preset 124M] [--batch-size 4] [--seq-len 256]
        [--steps 4] [--warmup 2] [--dtypes fp32 bf16] [--threads N] [--compile]

Both models start from the same random weights of the preset and train on the same random batches with the
step our Trainer takes (`gpt2.training.trainer.Trainer._train_step`, one micro-batch, one process): forward
under bf16 autocast or in fp32, backward, the loss read back, global gradient-norm clipping at 1.0, fused
AdamW with nanoGPT's weight-decay groups (`gpt2.training.optim.make_optimizer`), zero_grad. The loss is
cross-entropy on logits upcast to fp32 for both: ours in `GPT.forward`, transformers' through its own
`labels=` path (`shift_labels=` given, so both score the same targets). Dropout is 0 in both, as the
Trainer's default. Steps alternate ours/theirs (ABBA order, so neither always runs right after the other)
after --warmup steps each, and each side's median over --steps steps is reported, so load from elsewhere on
the machine hits both alike and the ratio stays meaningful. MFU = training FLOPs per token (6N + attention,
`gpt2.training.metrics.flops_per_token`) x tokens/s / the peak that `peak_flops` estimates for this CPU and
thread count (AMX for bf16, AVX-512 FMA for fp32). As the Trainer does on CPU, the process keeps freed memory
for reuse (`gpt2.memory`); this is process-wide, so it applies to both models (--malloc-defaults
leaves glibc's defaults, to measure what it is worth). With --compile both models go through torch.compile
(compilation happens in the warm-up and is not timed). After the same steps on the same data the two runs'
losses agree to float reassociation, which the table shows as a check that both did the same work.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
from contextlib import nullcontext

import torch
import transformers
from _machine import cpu_model, default_dtypes, load_average
from _pair import hf_twin
from transformers import GPT2LMHeadModel

from gpt2.config import GPTConfig
from gpt2.hardware import peak_flops
from gpt2.memory import retain_freed_memory
from gpt2.model import GPT
from gpt2.training.metrics import flops_per_token
from gpt2.training.optim import make_optimizer

LR, GRAD_CLIP = 6e-4, 1.0


def build_models(preset: str) -> tuple[GPT, GPT2LMHeadModel]:
    """Our GPT and transformers' GPT2LMHeadModel holding the same random weights, dropout 0."""
    torch.manual_seed(0)
    ours = GPT(GPTConfig.from_preset(preset)).train()
    hf = hf_twin(ours, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False,
                 attn_implementation="sdpa")
    assert hf.config._attn_implementation == "sdpa"
    return ours, hf


class Side:
    """One model with its optimizer, stepping the way the Trainer does."""

    def __init__(self, name: str, model: torch.nn.Module, hf: bool, bf16: bool, compile: bool,
                 device: torch.device) -> None:
        self.name, self.raw, self.hf, self.bf16, self.device = name, model.to(device), hf, bf16, device
        self.model = torch.compile(self.raw) if compile else self.raw
        self.optimizer = make_optimizer(self.raw, lr=LR, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8,
                                        device_type=device.type)
        self.times: list[float] = []
        self.losses: list[float] = []

    def step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        t0 = time.perf_counter()
        for group in self.optimizer.param_groups:
            group["lr"] = LR
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with autocast:
            if self.hf:
                loss = self.model(input_ids=x, labels=y, shift_labels=y).loss
            else:
                _, loss = self.model(x, y)
        loss.backward()
        value = loss.detach().item()
        if not math.isfinite(value):
            raise RuntimeError(f"{self.name}: loss became {value}")
        torch.nn.utils.clip_grad_norm_(self.raw.parameters(), GRAD_CLIP).item()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - t0)
        self.losses.append(value)
        return value


def run_dtype(dtype: str, args: argparse.Namespace) -> dict:
    ours_model, hf_model = build_models(args.preset)
    bf16 = dtype == "bf16"
    device = torch.device(args.device)
    sides = [Side("ours", ours_model, False, bf16, args.compile, device),
             Side("HF", hf_model, True, bf16, args.compile, device)]
    g = torch.Generator().manual_seed(1)
    vocab = ours_model.config.vocab_size
    total = args.warmup + args.steps
    for i in range(total):
        window = torch.randint(0, vocab, (args.batch_size, args.seq_len + 1), generator=g)
        x, y = window[:, :-1].contiguous().to(device), window[:, 1:].contiguous().to(device)
        order = sides if i % 2 == 0 else sides[::-1]  # ABBA: neither always goes first
        for side in order:
            side.step(x, y)
        print(f"  {dtype} step {i + 1}/{total}: " + ", ".join(
            f"{s.name} {s.times[-1]:.2f} s" for s in sides) + f"  (load {load_average()})", file=sys.stderr)
    tokens = args.batch_size * args.seq_len
    n_params = ours_model.num_parameters()
    fpt = flops_per_token(ours_model.config, n_params, args.seq_len)
    peak, peak_how = peak_flops(device, bf16)
    out = {"dtype": dtype, "peak_how": peak_how, "n_params": n_params}
    for side in sides:
        median = statistics.median(side.times[args.warmup:])
        out[side.name] = {"tokens_per_s": tokens / median, "step_s": median,
                          "mfu": fpt * tokens / median / peak if peak else None, "loss": side.losses[-1]}
    del sides, ours_model, hf_model
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="124M")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per side and dtype (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per side and dtype first")
    parser.add_argument("--dtypes", nargs="+", choices=["fp32", "bf16"], default=default_dtypes())
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the GPU run: --seq-len 1024 --compile)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--malloc-defaults", action="store_true",
                        help="do not keep freed memory for reuse as the Trainer does (gpt2.memory)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    retained = args.device == "cpu" and not args.malloc_defaults and retain_freed_memory() is not None
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 means TF32 tensor cores on GPU, as nanoGPT runs
        torch.backends.cudnn.allow_tf32 = True

    load_before = load_average()
    start = time.monotonic()
    results = [run_dtype(dtype, args) for dtype in args.dtypes]
    minutes = (time.monotonic() - start) / 60

    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores, torch threads {torch.get_num_threads()}")
    if args.device == "cuda":
        print(f"GPU: {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, python "
          f"{platform.python_version()}; load average (1/5/15 min) {load_before} before, {load_average()} after "
          f"{minutes:.1f} min")
    print(f"model {args.preset} ({results[0]['n_params']:,} parameters, random weights), batch "
          f"{args.batch_size} x {args.seq_len} tokens, fused AdamW + clipping, "
          f"{'torch.compile, ' if args.compile else ''}"
          f"{'freed memory kept for reuse' if retained else 'glibc malloc defaults'}, median of {args.steps} "
          f"steps after {args.warmup} warm-up, ours/HF interleaved")
    for r in results:
        print(f"MFU peak ({r['dtype']}): {r['peak_how']}")
    print()
    print(f"{'dtype':<6} {'ours tok/s':>11} {'HF tok/s':>9} {'ours/HF':>8} {'ours MFU':>9} {'HF MFU':>7} "
          f"{'ours s/step':>12} {'HF s/step':>10} {'loss ours / HF (last step)':>27}")
    for r in results:
        o, h = r["ours"], r["HF"]
        mfu = (lambda m: f"{m:.1%}" if m is not None else "n/a")
        print(f"{r['dtype']:<6} {o['tokens_per_s']:>11.1f} {h['tokens_per_s']:>9.1f} "
              f"{o['tokens_per_s'] / h['tokens_per_s']:>7.2f}x {mfu(o['mfu']):>9} {mfu(h['mfu']):>7} "
              f"{o['step_s']:>12.2f} {h['step_s']:>10.2f} {o['loss']:>13.4f} / {h['loss']:.4f}")


if __name__ == "__main__":
    main()
