"""Real nanoGPT against this project's recipe on Tiny Shakespeare, each for its own wall-clock budget, both
scored on the same validation tokens by one function.

    .venv/bin/python benchmarks/nanogpt_anchor.py --nanogpt-s 600 --ours-s 300 --out runs/anchor

nanoGPT is ../shared/anchors/nanogpt (karpathy/nanoGPT, unmodified), run as a subprocess with its own
train.py: the data is its Shakespeare split (first 90% of the characters train, the rest val, GPT-2's
r50k_base ids, no <|endoftext|>) written as its `data/shakespeare/{train,val}.bin`; the settings are the
anchor's (4 layers x 4 heads x 256, block 128, batch 16, lr 1e-3 cosine to 1e-4, warmup 20, beta2 0.99, no
dropout, fp32: on CPU nanoGPT never autocasts). nanoGPT has no time budget, so a short run first measures its
seconds per iteration here, and the real run gets the iterations that fit in --nanogpt-s, its cosine decaying
over exactly those (as its config would be written by someone who knew the budget).

Ours is `shakespeare.py`'s `ours` recipe (`--set` changes it, e.g. `--set optimizer=muon`) trained by the
Trainer for --ours-s seconds on the same two texts. Both final models are then scored by `mean_nll`: every
non-overlapping 128-token window of nanoGPT's val tokens, each token predicted from the window before it, in
float32, nanoGPT's model through its own model.py. The curves (training loss against training seconds) go to
OUT/curves.png; the table and figures to OUT/anchor.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from _machine import cpu_model, load_average
from shakespeare import DEFAULT_INPUT, RECIPES, ROOT, SHARED, ensure_gpt2_vocab, prepare_data, run_recipe

NANOGPT = SHARED / "anchors" / "nanogpt"
BLOCK = 128
NANOGPT_SETTINGS = dict(n_layer=4, n_head=4, n_embd=256, block_size=BLOCK, batch_size=16,
                        gradient_accumulation_steps=1, learning_rate=1e-3, min_lr=1e-4, warmup_iters=20,
                        beta2=0.99, dropout=0.0, weight_decay=0.1, grad_clip=1.0)
ITER_LINE = re.compile(r"^iter (\d+): loss ([\d.]+), time ([\d.]+)ms")


def nanogpt_split(text: str) -> tuple[str, str]:
    """nanoGPT's data/shakespeare/prepare.py: the first 90% of the characters, and the rest."""
    n = int(len(text) * 0.9)
    return text[:n], text[n:]


def write_nanogpt_data(text: str, work: Path) -> np.ndarray:
    """work/data/shakespeare/{train,val}.bin as nanoGPT's prepare.py writes them; returns the val ids."""
    from gpt2.tokenizer import Tokenizer

    enc = Tokenizer.from_pretrained("gpt2")  # r50k_base, found offline as shakespeare.ensure_gpt2_vocab arranges
    data = work / "data" / "shakespeare"
    data.mkdir(parents=True, exist_ok=True)
    ids = {}
    for name, part in zip(("train", "val"), nanogpt_split(text), strict=True):
        ids[name] = np.array(enc.encode(part), dtype=np.uint16)
        ids[name].tofile(data / f"{name}.bin")
    return ids["val"]


def run_nanogpt(work: Path, max_iters: int, threads: int) -> tuple[list[tuple[int, float, float]], float]:
    """nanoGPT's train.py for `max_iters` iterations, evaluated and saved only at the end; returns its
    (iteration, loss, milliseconds) lines and the wall seconds of the whole process."""
    args = [f"--{k}={v}" for k, v in {**NANOGPT_SETTINGS, "dataset": "shakespeare", "device": "cpu",
                                        "compile": False, "dtype": "float32", "max_iters": max_iters,
                                        "lr_decay_iters": max_iters, "eval_interval": max_iters, "eval_iters": 2,
                                        "log_interval": 1, "always_save_checkpoint": True,
                                        "out_dir": str(work / "out")}.items()]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    for name in ("train.py", "model.py", "configurator.py", "config"):  # it reads them from its working directory
        if not (work / name).exists():
            (work / name).symlink_to(NANOGPT / name)
    start = time.monotonic()
    done = subprocess.run([sys.executable, "train.py", "config/train_shakespeare_char.py", *args], cwd=work,
                          env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"nanoGPT failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    (work / "nanogpt.log").write_text(done.stdout)
    lines = [(int(m[1]), float(m[2]), float(m[3])) for m in map(ITER_LINE.match, done.stdout.splitlines()) if m]
    return lines, wall


def load_nanogpt(checkpoint: Path):
    """nanoGPT's model, built by its own model.py, with the checkpoint's weights."""
    sys.path.insert(0, str(NANOGPT))
    try:
        from model import GPT, GPTConfig  # nanoGPT's model.py
    finally:
        sys.path.remove(str(NANOGPT))
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)  # its own file, with its config
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    return model.eval(), int(ckpt["iter_num"])


@torch.no_grad()
def mean_nll(logits_of, ids: np.ndarray, block: int = BLOCK, batch: int = 32) -> tuple[float, int]:
    """Mean next-token NLL (nats) over every non-overlapping `block`-token window of `ids` (each window's
    tokens predicted from the ones before them in it), and the number of tokens scored."""
    n = (len(ids) - 1) // block
    x = torch.from_numpy(ids[: n * block].astype(np.int64)).view(n, block)
    y = torch.from_numpy(ids[1 : n * block + 1].astype(np.int64)).view(n, block)
    total = 0.0
    for a in range(0, n, batch):
        logits = logits_of(x[a : a + batch]).float()
        total += torch.nn.functional.cross_entropy(logits.flatten(0, 1), y[a : a + batch].flatten(),
                                                   reduction="sum").item()
    return total / y.numel(), y.numel()


def plot(curves: dict[str, tuple[list[float], list[float]]], finals: dict[str, float], path: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for (name, (seconds, loss)), colour in zip(curves.items(), ("tab:gray", "tab:blue", "tab:green"),
                                               strict=False):
        smooth = np.convolve(loss, np.ones(5) / 5, mode="valid") if len(loss) > 10 else np.asarray(loss)
        ax.plot(seconds[len(seconds) - len(smooth):], smooth, color=colour, label=f"{name} (train loss)")
        ax.scatter([seconds[-1]], [finals[name]], color=colour, marker="*", s=120, zorder=3,
                   label=f"{name}: val {finals[name]:.3f}")
    ax.set_xlabel("training seconds")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nanogpt-s", type=float, default=600.0, help="nanoGPT's training seconds")
    parser.add_argument("--ours-s", type=float, default=300.0, help="our recipe's training seconds")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "anchor")
    parser.add_argument("--input", type=Path, default=DEFAULT_INPUT)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: all cores)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of our recipe (repeatable), e.g. optimizer=muon")
    parser.add_argument("--skip-nanogpt", action="store_true", help="reuse OUT/nanogpt's finished run")
    args = parser.parse_args()
    if not (NANOGPT / "train.py").is_file():
        raise SystemExit(f"{NANOGPT}/train.py: not found (../shared/anchors/nanogpt)")
    ensure_gpt2_vocab()
    threads = args.threads or torch.get_num_threads()
    text = args.input.read_text(encoding="utf-8")
    work = (args.out / "nanogpt").resolve()  # nanoGPT runs in it: paths must not be relative to here
    val_ids = write_nanogpt_data(text, work)
    print(f"CPU: {cpu_model()}; {threads} threads; load {load_average()}", file=sys.stderr)

    if not args.skip_nanogpt:
        calibration, _ = run_nanogpt(work, 8, threads)
        per_iter = statistics.median(ms for _, _, ms in calibration[2:]) / 1000
        max_iters = max(1, int(args.nanogpt_s / per_iter))
        print(f"nanoGPT: {per_iter:.2f} s/iteration here -> {max_iters} iterations", file=sys.stderr)
        lines, wall = run_nanogpt(work, max_iters, threads)
        (work / "lines.json").write_text(json.dumps({"lines": lines, "wall_s": wall}))
    saved = json.loads((work / "lines.json").read_text())
    lines, nano_wall = saved["lines"], saved["wall_s"]
    nano, nano_iters = load_nanogpt(work / "out" / "ckpt.pt")
    nano_nll, n_tokens = mean_nll(lambda x: nano(x, x)[0], val_ids)  # targets given: logits at every position

    settings = dict(RECIPES["ours"])
    for item in args.set:
        key, _, value = item.partition("=")
        try:
            settings[key] = json.loads(value)
        except json.JSONDecodeError:
            settings[key] = value
    data = prepare_data(args.input, args.out, split=nanogpt_split)
    ours = run_recipe("ours", settings, data, args.out, args.ours_s, threads)
    from gpt2.model import GPT

    our_model = GPT.from_pretrained(args.out / "ours" / "checkpoint", dtype=torch.float32)
    our_nll, _ = mean_nll(lambda x: our_model(x)[0], val_ids)

    records = [json.loads(x) for x in (args.out / "ours" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "loss" in r]
    nano_seconds = np.cumsum([ms / 1000 for _, _, ms in lines[1:]]).tolist()  # iteration 0's time is startup
    curves = {"nanoGPT": (nano_seconds, [loss for _, loss, _ in lines[1:]]),
              "ours": (np.cumsum([r["step_time_s"] for r in steps]).tolist(), [r["loss"] for r in steps])}
    finals = {"nanoGPT": nano_nll, "ours": our_nll}
    title = (f"Tiny Shakespeare on {cpu_model().split(' (')[0]}: nanoGPT {nano_seconds[-1]:.0f} s vs ours "
             f"{args.ours_s:.0f} s ({settings.get('optimizer', 'adamw')}, dtype {ours['dtype']})")
    plot(curves, finals, args.out / "curves.png", title)
    report = {"machine": {"cpu": cpu_model(), "threads": threads, "torch": torch.__version__},
              "val_tokens": n_tokens, "window": BLOCK,
              "nanogpt": {"settings": NANOGPT_SETTINGS, "iterations": nano_iters, "train_s": nano_seconds[-1],
                          "process_wall_s": round(nano_wall, 1), "val_loss": nano_nll,
                          "tokens_per_s": nano_iters * 16 * BLOCK / nano_seconds[-1]},
              "ours": {**{k: ours[k] for k in ("settings", "steps", "tokens", "train_wall_s",
                                               "tokens_per_s_overall", "dtype")}, "val_loss": our_nll}}
    (args.out / "anchor.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nTiny Shakespeare, nanoGPT's val split ({n_tokens:,} tokens, {BLOCK}-token windows), {cpu_model()}")
    print(f"{'run':<10} {'train s':>8} {'steps':>6} {'tok/s':>7} {'val loss':>9}")
    print(f"{'nanoGPT':<10} {nano_seconds[-1]:>8.0f} {nano_iters:>6} {report['nanogpt']['tokens_per_s']:>7.0f} "
          f"{nano_nll:>9.4f}")
    print(f"{'ours':<10} {ours['train_wall_s']:>8.0f} {ours['steps']:>6} {ours['tokens_per_s_overall']:>7.0f} "
          f"{our_nll:>9.4f}")
    print(f"ours - nanoGPT: {our_nll - nano_nll:+.4f} nats in {ours['train_wall_s'] / nano_seconds[-1]:.2f}x the "
          f"time; curves: {args.out / 'curves.png'}")


if __name__ == "__main__":
    main()
