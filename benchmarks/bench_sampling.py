"""Batched top-k sampling speed and decoding memory: this package's `generate` vs transformers' `generate`.

    .venv/bin/python benchmarks/bench_sampling.py [--batch 32] [--new-tokens 32] [--repeats 3]
                                                  [--dtypes fp32 bf16] [--threads N] [--no-rss]

Speed: both models hold the same random weights of the 124M configuration and sample `--batch` sequences
with top-k 40 (temperature 1) for exactly --new-tokens tokens (no EOS stop), in the same process, after a
warm-up, alternating runs. By default the batch is --batch different prompts of --prompt-tokens tokens;
`--one-prompt` samples one prompt --batch times instead (ours prefills it once, HF repeats it). Reported:
generated tokens (batch x new tokens) / median wall time, prefill included, for ours as a plain module, ours
after `gpt2.packing.pack_for_cpu` (as the CLI loads a model on CPU; same alternation) and transformers.

Memory (unless --no-rss): in a fresh subprocess per case, the 124M model is built in bfloat16 (and packed, for the
`ours+pack` row) and decodes greedily at batch 1 (and samples at --batch); the peak resident set size while decoding
(VmHWM, reset after the model is built) minus the resident size before the model existed is compared with the
bfloat16 weights plus the KV cache generate allocates.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys

# Sleeping, not spinning, OpenMP waiters: with spinning ones (libgomp's default) torch's 2 threads ran 5-12x
# slower than 1 thread on the shared 2-core dev box while other jobs held the cores. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import transformers  # noqa: E402
from _machine import cpu_model, default_dtypes, time_alternately
from bench_decode import DTYPES, build_models

from gpt2.packing import can_pack, pack_for_cpu
from gpt2.sampling import generate

TOP_K = 40


def run_ours(model, prompts: list[list[int]], new_tokens: int, num_samples: int) -> list[list[int]]:
    samples = generate(model, prompts, max_new_tokens=new_tokens, top_k=TOP_K, seed=1, eos_token_id=None,
                       num_samples=num_samples)
    assert all(len(s.tokens) == new_tokens for s in samples)
    return [s.tokens for s in samples]


def run_hf(model, prompts: list[list[int]], new_tokens: int, num_samples: int) -> list[list[int]]:
    ids = torch.tensor(prompts, device=model.device)
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, top_k=TOP_K,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0,
                             num_return_sequences=num_samples)
    assert out.size(1) == ids.size(1) + new_tokens
    return out[:, ids.size(1):].tolist()


# ---- memory, measured in a child process ----

def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss_child(impl: str, batch: int, prompt_tokens: int, new_tokens: int) -> None:
    """Build the 124M model in bfloat16, decode, print a JSON line with the memory figures."""
    from gpt2.config import GPTConfig
    from gpt2.model import GPT

    torch.set_num_threads(1)
    before = _status("VmRSS")
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # no float32 copy of the weights at any time
    config = GPTConfig.from_preset("124M")
    if impl != "hf":
        model = GPT(config).eval()
    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        model = GPT2LMHeadModel(GPT2Config(n_layer=config.n_layer, n_head=config.n_head,
                                           n_embd=config.n_embd)).eval()
    torch.set_default_dtype(torch.float32)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())  # tied tensor counted once
    if impl == "ours+pack":
        pack_for_cpu(model)  # lm_head's packed copy of the tied embedding counts as extra, not as weights
    built = _status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM: building is not decoding (GPT.__init__ briefly holds an untied lm_head)
    prompts = torch.randint(0, 50256, (batch, prompt_tokens), generator=torch.Generator().manual_seed(1))
    if impl != "hf":
        generate(model, prompts.tolist(), max_new_tokens=new_tokens, top_k=TOP_K, seed=1, eos_token_id=None,
                 temperature=0 if batch == 1 else 1.0)
    else:
        run_hf(model, prompts.tolist(), new_tokens, 1)
    peak = _status("VmHWM")
    c = config
    cache = 2 * c.n_layer * batch * c.n_embd * (prompt_tokens + new_tokens) * 2  # keys + values, bf16
    print(json.dumps(dict(impl=impl, batch=batch, before=before, built=built, peak=peak, weights=weights,
                          cache=cache)))


def measure_rss(impl: str, batch: int, prompt_tokens: int, new_tokens: int) -> dict:
    cmd = [sys.executable, __file__, "--rss-child", impl, "--batch", str(batch),
           "--prompt-tokens", str(prompt_tokens), "--new-tokens", str(new_tokens)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--preset", default="124M")
    parser.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=default_dtypes())
    parser.add_argument("--one-prompt", action="store_true", help="one prompt sampled --batch times")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (memory is measured on CPU only)")
    parser.add_argument("--no-rss", action="store_true", help="skip the memory measurement")
    parser.add_argument("--rss-child", choices=["ours", "ours+pack", "hf"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.batch, args.prompt_tokens, args.new_tokens)
        return
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"CPU: {cpu_model()}; {os.cpu_count()} cores, torch threads {torch.get_num_threads()}; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; load average {os.getloadavg()[0]:.1f}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"python {platform.python_version()}")
    n_prompts, num_samples = (1, args.batch) if args.one_prompt else (args.batch, 1)
    print(f"model {args.preset} (random weights), batch {args.batch} ({n_prompts} prompt(s) x {num_samples} "
          f"samples), top-k {TOP_K}, prompt {args.prompt_tokens} tokens, {args.new_tokens} new tokens, "
          f"median of {args.repeats} after a warm-up\n")
    g = torch.Generator().manual_seed(1)
    prompts = torch.randint(0, 50256, (n_prompts, args.prompt_tokens), generator=g).tolist()
    ours, hf = build_models(args.preset)
    ours.to(args.device), hf.to(args.device)
    if args.device != "cpu":
        print(f"device: {torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}")
    rows = []
    for name in args.dtypes:
        ours.to(DTYPES[name])
        hf.to(DTYPES[name])
        fns = [lambda: run_ours(ours, prompts, args.new_tokens, num_samples)]
        if can_pack(ours):
            packed = pack_for_cpu(copy.deepcopy(ours))
            fns.append(lambda packed=packed: run_ours(packed, prompts, args.new_tokens, num_samples))
        fns.append(lambda: run_hf(hf, prompts, args.new_tokens, num_samples))
        times, _ = time_alternately(fns, args.repeats)
        n = args.batch * args.new_tokens
        t_packed = times[1] if len(times) == 3 else float("nan")
        rows.append((name, n / times[0], n / t_packed, n / times[-1], times[-1] / times[0], times[-1] / t_packed))
    print(f"{'dtype':<6} {'ours tok/s':>11} {'+pack tok/s':>12} {'HF tok/s':>10} {'ours/HF':>8} {'+pack/HF':>9}")
    for name, ours_tps, packed_tps, hf_tps, ratio, packed_ratio in rows:
        has_layout = packed_tps == packed_tps  # nan where oneDNN packs no such dtype here
        packed = f"{packed_tps:>12.1f}" if has_layout else f"{'no layout':>12}"
        packed_vs_hf = f"{packed_ratio:>8.2f}x" if has_layout else f"{'-':>9}"
        print(f"{name:<6} {ours_tps:>11.1f} {packed} {hf_tps:>10.1f} {ratio:>7.2f}x {packed_vs_hf}")
    if "bf16" in args.dtypes and "fp32" in args.dtypes:
        # as the CLI runs: packed where the layout exists, else plain
        cli = {name: (row[2] if row[2] == row[2] else row[1]) for name, row in zip(args.dtypes, rows, strict=True)}
        hf_tps = {name: row[3] for name, row in zip(args.dtypes, rows, strict=True)}
        print(f"ours as the CLI runs it, bf16 / HF bf16: {cli['bf16'] / hf_tps['bf16']:.2f}x; bf16 / HF fp32: "
              f"{cli['bf16'] / hf_tps['fp32']:.2f}x; ours bf16 / ours fp32: {cli['bf16'] / cli['fp32']:.2f}x")

    if args.no_rss or args.device != "cpu":
        return
    print("\npeak RSS while decoding, bf16 weights (MB = 1e6 bytes; 'extra' = peak - RSS before the model)")
    print(f"{'impl':<9} {'batch':>5} {'weights':>8} {'cache':>7} {'extra':>7} "
          f"{'extra / (weights + cache)':>26}")
    for impl, batch in (("ours", 1), ("ours+pack", 1), ("hf", 1), ("ours", args.batch), ("ours+pack", args.batch)):
        r = measure_rss(impl, batch, args.prompt_tokens, args.new_tokens)
        extra = r["peak"] - r["before"]
        print(f"{impl:<9} {batch:>5} {r['weights'] / 1e6:>8.1f} {r['cache'] / 1e6:>7.1f} {extra / 1e6:>7.1f} "
              f"{extra / (r['weights'] + r['cache']):>25.2f}x")


if __name__ == "__main__":
    main()
