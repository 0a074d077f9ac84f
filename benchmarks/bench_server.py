"""Load test of `gpt2 serve`'s API: N concurrent clients for M seconds against a server on loopback.

    .venv/bin/python benchmarks/bench_server.py [--clients 8] [--duration 20] [--preset micro | --model DIR]
        [--max-tokens 32] [--max-batch 8] [--max-queue 64] [--stream-every 4] [--json out.json]

The server runs in a subprocess (this script with --serve) on 127.0.0.1, with random weights of --preset
(or the checkpoint --model). Each client loops: POST /v1/completions (a prompt from a fixed list,
max_tokens --max-tokens, temperature 1, top-k 40, a fresh seed; every --stream-every-th request streams),
honouring Retry-After on 429/503. Reported: requests/s, p50/p95 latency, time to first streamed text,
generated tokens/s, status counts (anything but 2xx/429/503 is a failure: exit status 1), the server's
peak RSS (VmHWM) and the scheduler's mean rows per decode step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

PROMPTS = [
    "In a shocking finding, scientists discovered a herd of unicorns living in a remote valley.",
    "The list data type has some more methods.",
    "Once upon a time",
    "def fibonacci(n):\n",
    "The capital of France is",
    "",
    "Recycling is good for the world. NO! YOU COULD NOT BE MORE WRONG!!",
    "A train carriage containing controlled nuclear materials was stolen in Cincinnati today.",
]
SHARED_VOCAB = Path(__file__).resolve().parents[1].parent / "shared" / "vocab" / "r50k_base.tiktoken"


# ---- the server side (a subprocess) ----

def build(args: argparse.Namespace):
    import torch

    from gpt2.config import GPTConfig
    from gpt2.model import GPT
    from gpt2.tokenizer import Tokenizer

    if args.model:
        from gpt2.checkpoint import load_tokenizer
        from gpt2.model import GPT

        return GPT.from_pretrained(args.model), load_tokenizer(args.model), args.model
    if SHARED_VOCAB.is_file() and not os.environ.get("GPT2_VOCAB_FILE"):
        os.environ["GPT2_VOCAB_FILE"] = str(SHARED_VOCAB)
    try:
        tokenizer = Tokenizer.from_pretrained("gpt2")
    except Exception:  # no GPT-2 vocabulary offline: a small trained one (the model shrinks to match)
        tokenizer = Tokenizer.train([" ".join(PROMPTS) * 50], vocab_size=1024)
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_preset(args.preset, vocab_size=tokenizer.vocab_size)).eval()
    return model, tokenizer, f"random-{args.preset}"


def serve(args: argparse.Namespace) -> None:
    import uvicorn

    from gpt2.packing import pack_if_possible
    from gpt2.server import create_app

    model, tokenizer, name = build(args)
    if not args.no_pack:
        pack_if_possible(model)  # as `gpt2 serve` does on CPU
    app = create_app(model, tokenizer, model_name=name, max_batch=args.max_batch, max_queue=args.max_queue,
                     max_tokens_limit=max(args.max_tokens, 16))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


# ---- the clients ----

async def client(http, url: str, args: argparse.Namespace, deadline: float, number: int,
                 results: list) -> None:
    rng = random.Random(number)
    i = 0
    while time.monotonic() < deadline:
        i += 1
        stream = args.stream_every > 0 and (i + number) % args.stream_every == 0
        body = {"prompt": rng.choice(PROMPTS), "max_tokens": args.max_tokens, "temperature": 1.0, "top_k": 40,
                "seed": rng.randrange(2**31), "stream": stream}
        start = time.monotonic()
        first = None
        tokens = 0
        retry = 0.0
        try:
            async with http.stream("POST", f"{url}/v1/completions", json=body) as r:
                if stream and r.status_code == 200:
                    async for line in r.aiter_lines():
                        if line.startswith("data: {"):
                            first = first if first is not None else time.monotonic() - start
                            tokens += 1  # about a chunk per token (tokens/s comes from the server's count)
                else:
                    data = json.loads(await r.aread())
                    if r.status_code == 200:
                        tokens = data["usage"]["completion_tokens"]
                status = r.status_code
                retry = float(r.headers.get("retry-after", 0) or 0)
        except Exception as e:  # connection errors count as failures
            status = type(e).__name__
        results.append({"status": status, "latency": time.monotonic() - start, "ttft": first,
                        "tokens": tokens, "stream": stream, "end": time.monotonic()})
        if retry:
            await asyncio.sleep(min(retry, max(0.0, deadline - time.monotonic())))


async def load(url: str, args: argparse.Namespace) -> tuple[list, float]:
    import httpx

    limits = httpx.Limits(max_connections=args.clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        start = time.monotonic()
        deadline = start + args.duration
        results: list = []
        await asyncio.gather(*(client(http, url, args, deadline, n, results) for n in range(args.clients)))
        return results, time.monotonic() - start


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load (at most 300)")
    parser.add_argument("--preset", default="micro", help="random weights of this size (default: micro)")
    parser.add_argument("--model", default=None, help="a checkpoint directory instead of random weights")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--stream-every", type=int, default=4, help="every k-th request streams (0: none)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the server")
    parser.add_argument("--json", default=None, help="also write the results here")
    parser.add_argument("--no-pack", action="store_true", help="serve the model unpacked (gpt2.packing)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not (1 <= args.clients <= 256 and 0 < args.duration <= 300):
        parser.error("--clients must be in [1, 256] and --duration in (0, 300]")
    if args.serve:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        serve(args)
        return 0

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [sys.executable, __file__, "--serve", "--port", str(port), "--preset", args.preset,
               "--max-tokens", str(args.max_tokens), "--max-batch", str(args.max_batch),
               "--max-queue", str(args.max_queue)]
    command += ["--model", args.model] if args.model else []
    command += ["--threads", str(args.threads)] if args.threads else []
    command += ["--no-pack"] if args.no_pack else []
    server = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 300
        while True:
            try:
                health = httpx.get(f"{url}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        results, elapsed = asyncio.run(load(url, args))
        health = httpx.get(f"{url}/health", timeout=10).json()
        rss = peak_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(30)

    statuses = Counter(r["status"] for r in results)
    ok = [r for r in results if r["status"] == 200]
    latencies = [r["latency"] for r in ok]
    ttfts = [r["ttft"] for r in ok if r["ttft"] is not None]
    failures = {s: n for s, n in statuses.items() if s not in (200, 429, 503)}
    steps = health["stats"]["batch_sizes"]
    rows_per_step = sum(int(k) * v for k, v in steps.items()) / max(1, sum(steps.values()))
    summary = {
        "model": health["model"], "clients": args.clients, "duration_s": round(elapsed, 1),
        "max_tokens": args.max_tokens, "max_batch": args.max_batch, "max_queue": args.max_queue,
        "requests": len(results), "requests_per_s": len(ok) / elapsed,
        "p50_latency_s": statistics.median(latencies) if latencies else float("nan"),
        "p95_latency_s": percentile(latencies, 0.95), "p50_ttft_s": percentile(ttfts, 0.5),
        "tokens_per_s": health["stats"]["tokens"] / elapsed,
        "statuses": {str(k): v for k, v in sorted(statuses.items(), key=str)},
        "server_peak_rss_mib": rss, "mean_rows_per_decode_step": rows_per_step,
        "largest_step": health["stats"]["largest_step"],
    }
    print(f"\n{summary['model']}, {args.clients} clients x {summary['duration_s']} s, max_tokens "
          f"{args.max_tokens}, max_batch {args.max_batch}, torch threads {args.threads or 'default'}, "
          f"{os.cpu_count()} CPUs\n")
    print("| requests/s | p50 latency | p95 latency | p50 first text (stream) | tokens/s | statuses | "
          "server peak RSS | rows per decode step (mean / max) |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|")
    print(f"| {summary['requests_per_s']:.2f} | {summary['p50_latency_s']:.3f} s | "
          f"{summary['p95_latency_s']:.3f} s | {summary['p50_ttft_s']:.3f} s | "
          f"{summary['tokens_per_s']:.0f} | "
          f"{', '.join(f'{k}: {v}' for k, v in summary['statuses'].items())} | {rss:.0f} MiB | "
          f"{rows_per_step:.2f} / {summary['largest_step']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if failures:
        print(f"FAILED: responses other than 2xx/429/503: {failures}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
