"""The matrix products a 124M decoding step runs, per CPU kernel: which one `--dtype int8` should use here.

    .venv/bin/python benchmarks/bench_int8_kernels.py [--rows 1 32 1024]

For each of GPT-2 124M's weight shapes (c_attn, attn c_proj, c_fc, mlp c_proj, the vocabulary projection) and
each row count (1: a batch-1 decoding step; 32: a step of a 32-prompt batch; 1024: their prefill), the time of
one product in ms: MKL's float32 GEMM (`F.linear`), oneDNN's with the weight prepacked (what `gpt2.packing`
runs), the weight-only int8 kernel in bfloat16 (`_weight_int8pack_mm`, int8 with bf16 activations; a few rows
only) and fbgemm's dynamic int8 GEMM (`quantized::linear_dynamic`, int8 with int8 activations, including the
per-row mapping `gpt2.quantize` adds). The weights are hot in cache for the small shapes, so one-row figures
are kernel costs, not the DRAM streaming a whole decoding step pays.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from _machine import machine_details

from gpt2.quantize import Int8Linear

SHAPES = {"c_attn 768x2304": (768, 2304), "attn.c_proj 768x768": (768, 768), "c_fc 768x3072": (768, 3072),
          "mlp.c_proj 3072x768": (3072, 768), "lm_head 768x50257": (768, 50257)}


def ms_per_call(fn, seconds: float = 0.4) -> float:
    fn(), fn()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return (time.perf_counter() - start) / calls * 1e3


def kernels(k: int, n: int, rows: int) -> dict[str, float]:
    linear = nn.Linear(k, n, bias=False)
    w = linear.weight.detach()
    packed = torch.ops.mkldnn._reorder_linear_weight(w, 32)
    int8 = Int8Linear.from_linear(linear, activations="int8")
    bf16 = Int8Linear.from_linear(linear, activations="bf16")
    x = torch.randn(rows, k)
    onednn = torch.ops.mkldnn._linear_pointwise
    times = {"fp32 MKL": ms_per_call(lambda: F.linear(x, w)),
             "fp32 oneDNN packed": ms_per_call(lambda: onednn(x, packed, None, "none", [], ""))}
    if rows <= 32:
        times["int8 w/ bf16 act. (kernel)"] = ms_per_call(lambda: bf16(x))
    times["int8 w/ int8 act. (fbgemm)"] = ms_per_call(lambda: int8(x))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 32, 1024])
    args = parser.parse_args()
    print(machine_details(["torch"]))
    torch.manual_seed(0)
    with torch.inference_mode():
        for rows in args.rows:
            results = {name: kernels(k, n, rows) for name, (k, n) in SHAPES.items()}
            columns = list(next(iter(results.values())))
            print(f"\n{rows} rows, ms per product\n\n| weight | " + " | ".join(columns) + " |")
            print("| --- |" + " ---: |" * len(columns))
            for name, times in results.items():
                print(f"| {name} | " + " | ".join(f"{times[c]:.3f}" for c in columns) + " |")


if __name__ == "__main__":
    main()
