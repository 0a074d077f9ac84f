"""The GPU suite: the figures issue #24 asks of a lent GPU, measured in one command of at most ~8 minutes, no
network, and written as JSON. `benchmarks/gpu_suite.sh` is the command; this is its body.

    bash benchmarks/gpu_suite.sh OUT                 # on the GPU machine
    bash benchmarks/gpu_suite.sh --dry OUT           # here, on the CPU: every step at toy size (CI runs it)

Steps, each on the same random weights for both sides (speed does not depend on the values); a step that
fails is recorded with its error and the next one runs, so one typo costs one step, not the GPU's minutes:

  train    124M, batch 16 x 1024, bf16 autocast, torch.compile, fused AdamW + clipping (bench_train's Side,
           the Trainer's step): ours vs transformers' GPT2LMHeadModel, and nanoGPT's model.py when --nanogpt
           DIR names karpathy/nanoGPT's checkout (its GPT, its (logits, loss) forward, the same optimizer
           groups and step). tokens/s and MFU against the datasheet peak (gpt2.hardware.peak_flops).
           Goal on an H100/H200: MFU >= 45% (llm.c reports ~40%).
  decode   batch-1 greedy decoding, 124M, bf16, 256 new tokens after a 32-token prompt: ours `generate` vs
           transformers' `generate`, alternated, median (bench_decode's runs). Goal: >= 3x transformers.
  outputs  the output dataset at batch 256: `generate_outputs` (top-k 40 from <|endoftext|>, 256 new tokens,
           jsonl written) vs transformers' batched sampling writing the same rows (bench_outputs' runs).
           Goal on an H200: >= 50,000 tokens/s. Needs GPT-2's vocabulary: GPT2_VOCAB_FILE, or tiktoken's
           cache; the GPU session copies ../shared/vocab/r50k_base.tiktoken into an ignored folder it carries.
  eval     rolling-window scoring (what `gpt2 eval` runs for WikiText once tokenized), 124M, bf16, 32
           windows of 1024 per forward: ours vs transformers' documented perplexity loop (bench_eval's);
           random ids stand in for the text.

--dry shrinks every size (the `nano` preset, a few tokens, no compile, fp32) and runs on the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch
import transformers
from _machine import cpu_model, time_alternately

ROOT = Path(__file__).resolve().parents[1]
SIZES = {  # real run, dry run
    "preset": ("124M", "nano"),
    "train_batch": (16, 2), "train_seq": (1024, 64), "train_steps": (10, 2), "train_warmup": (3, 1),
    "decode_prompt": (32, 8), "decode_new": (256, 8), "decode_repeats": (5, 1),
    "outputs_batch": (256, 4), "outputs_samples": (1024, 8), "outputs_new": (256, 8),
    "eval_windows": (64, 3), "eval_batch": (32, 2),
}


def size(args, name: str):
    return SIZES[name][1 if args.dry else 0]


def step_train(args, device: torch.device) -> dict:
    import bench_train

    from gpt2.hardware import peak_flops
    from gpt2.training.metrics import flops_per_token

    bf16, compile_ = not args.dry, not args.dry
    ours, hf = bench_train.build_models(size(args, "preset"))
    sides = [bench_train.Side("ours", ours, False, bf16, compile_, device),
             bench_train.Side("transformers", hf, True, bf16, compile_, device)]
    if args.nanogpt:
        sides.append(bench_train.Side("nanoGPT", nanogpt_model(args.nanogpt, ours.config), False, bf16,
                                      compile_, device))
    batch, seq = size(args, "train_batch"), size(args, "train_seq")
    warmup, steps = size(args, "train_warmup"), size(args, "train_steps")
    g = torch.Generator().manual_seed(1)
    for i in range(warmup + steps):
        window = torch.randint(0, ours.config.vocab_size, (batch, seq + 1), generator=g)
        x, y = window[:, :-1].contiguous().to(device), window[:, 1:].contiguous().to(device)
        for side in (sides if i % 2 == 0 else sides[::-1]):
            side.step(x, y)
    fpt = flops_per_token(ours.config, ours.num_parameters(), seq)
    peak, how = peak_flops(device, bf16)
    out = {"batch": batch, "seq_len": seq, "bf16": bf16, "compiled": compile_, "peak": how, "sides": {}}
    for side in sides:
        median = statistics.median(side.times[warmup:])
        out["sides"][side.name] = {"tokens_per_s": batch * seq / median, "step_s": median,
                                   "mfu": fpt * batch * seq / median / peak if peak else None,
                                   "loss_last": side.losses[-1]}
    return out


def nanogpt_model(directory: str, config):
    """nanoGPT's own GPT (its model.py, imported from `directory`) of our config's shape, no bias/dropout
    as its train.py defaults."""
    sys.path.insert(0, str(Path(directory).resolve()))
    import model as nanogpt  # noqa: PLC0415 (nanoGPT's module, found only on the path just added)

    torch.manual_seed(0)
    return nanogpt.GPT(nanogpt.GPTConfig(block_size=config.n_positions, vocab_size=config.vocab_size,
                                         n_layer=config.n_layer, n_head=config.n_head, n_embd=config.n_embd,
                                         dropout=0.0, bias=False)).train()


def step_decode(args, device: torch.device) -> dict:
    import bench_decode

    ours, hf = bench_decode.build_models(size(args, "preset"))
    dtype = torch.float32 if args.dry else torch.bfloat16
    ours, hf = ours.to(device, dtype), hf.to(device, dtype)
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(0, 50256, (size(args, "decode_prompt"),), generator=g).tolist()
    new = size(args, "decode_new")
    times, outputs = time_alternately([lambda: bench_decode.run_ours(ours, prompt, new),
                                       lambda: bench_decode.run_hf(hf, prompt, new)], size(args, "decode_repeats"))
    same = sum(a == b for a, b in zip(*outputs, strict=True))
    return {"new_tokens": new, "ours_tokens_per_s": new / times[0], "transformers_tokens_per_s": new / times[1],
            "ratio": times[1] / times[0], "same_greedy_tokens": f"{same}/{new}"}


def step_outputs(args, device: torch.device) -> dict:
    import bench_outputs

    tokenizer = bench_outputs.gpt2_tokenizer()
    dtype = torch.float32 if args.dry else torch.bfloat16
    ours, hf = bench_outputs.build_models(size(args, "preset"), dtype)
    ours, hf = ours.to(device), hf.to(device)
    batch, samples, new = size(args, "outputs_batch"), size(args, "outputs_samples"), size(args, "outputs_new")
    out = {"batch": batch, "samples": samples, "max_new_tokens": new}
    with tempfile.TemporaryDirectory() as tmp:
        for name, run, model in (("ours", bench_outputs.run_ours, ours), ("transformers", bench_outputs.run_hf, hf)):
            run(model, tokenizer, Path(tmp) / f"warm-{name}", min(batch, samples), batch, 4, 0)
            start = time.perf_counter()
            tokens = run(model, tokenizer, Path(tmp) / name, samples, batch, new, 1)
            seconds = time.perf_counter() - start
            out[name] = {"tokens_per_s": tokens / seconds, "seconds": seconds, "tokens": tokens}
    out["ratio"] = out["ours"]["tokens_per_s"] / out["transformers"]["tokens_per_s"]
    return out


def step_eval(args, device: torch.device) -> dict:
    import bench_eval

    from gpt2.model import GPT
    from gpt2.scoring import rolling_windows

    ours, hf = bench_eval.build_models(argparse.Namespace(checkpoint=None, preset=size(args, "preset"),
                                                          n_layer=None, n_positions=None))
    dtype = torch.float32 if args.dry else torch.bfloat16
    ours, hf = ours.to(device, dtype), hf.to(device, dtype)
    assert isinstance(ours, GPT)
    n_ctx = ours.config.n_positions
    stride, windows = n_ctx // 2, size(args, "eval_windows")
    n = n_ctx - 1 + (windows - 1) * stride
    ids = torch.randint(0, 50256, (n,), generator=torch.Generator().manual_seed(2)).tolist()
    assert len(rolling_windows(len(ids), n_ctx - 1, stride)) == windows
    batch = size(args, "eval_batch")
    times, results = time_alternately([lambda: bench_eval.score_ours(ours, ids, n_ctx, stride, batch, False),
                                       lambda: bench_eval.score_hf(hf, ids, n_ctx, stride)], 2 if args.dry else 3)
    (nll_ours, tokens), (nll_hf, _) = results
    return {"windows": windows, "batch": batch, "tokens": tokens, "ours_tokens_per_s": tokens / times[0],
            "transformers_tokens_per_s": tokens / times[1], "ratio": times[1] / times[0],
            "nll_relative_difference": abs(nll_ours / nll_hf - 1)}


STEPS = {"train": step_train, "decode": step_decode, "outputs": step_outputs, "eval": step_eval}


def machine(device: torch.device) -> dict:
    out = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch.__version__,
           "transformers": transformers.__version__, "python": platform.python_version(), "device": str(device)}
    if device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(device)
        out["cuda"] = torch.version.cuda
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="folder for gpu_suite.json")
    parser.add_argument("--dry", action="store_true", help="toy sizes on the CPU: check that every step runs")
    parser.add_argument("--steps", default=",".join(STEPS), help=f"comma-separated, of {', '.join(STEPS)}")
    parser.add_argument("--nanogpt", help="karpathy/nanoGPT checkout: its model.py joins the train step")
    args = parser.parse_args()
    unknown = set(args.steps.split(",")) - set(STEPS)
    if unknown:
        parser.error(f"--steps: unknown {', '.join(sorted(unknown))}; expected some of {', '.join(STEPS)}")
    if not args.dry and not torch.cuda.is_available():
        parser.error("no CUDA device: run on the GPU machine, or pass --dry for the CPU check")
    device = torch.device("cpu" if args.dry else "cuda")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    report = {"dry": args.dry, "machine": machine(device), "steps": {}}
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.steps.split(","):
        start = time.perf_counter()
        try:
            result = {"ok": True, **STEPS[name](args, device)}
        except Exception as error:  # recorded, and the next step still runs: GPU minutes are scarce
            result = {"ok": False, "error": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
        result["seconds"] = round(time.perf_counter() - start, 2)
        report["steps"][name] = result
        print(f"{name}: {'ok' if result['ok'] else result['error']} ({result['seconds']} s)", flush=True)
        (args.out / "gpu_suite.json").write_text(json.dumps(report, indent=2) + "\n")  # after every step
    if not all(step["ok"] for step in report["steps"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
