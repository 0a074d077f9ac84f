"""`gpt2 eval` against lm-evaluation-harness 0.4.13 on the tasks both define alike: whole-process wall time and
the harness-defined metrics, side by side, one after the other on the same model, data and threads.

    # the venv of benchmarks/lm_eval_crosscheck.py (lm-eval never enters the project's own)
    .venv-lmeval/bin/python benchmarks/bench_eval_vs_lmeval.py                       # 2-layer and 124M, both tasks
    .venv-lmeval/bin/python benchmarks/bench_eval_vs_lmeval.py --sizes tiny --limit 100   # a quick run

Each side runs as the command a user types, in a fresh process (imports, model load, data, scoring, writing
results), with the same batch size, float32 on the CPU:

    lm_eval --model hf --model_args pretrained=DIR,dtype=float32 --device cpu --batch_size B --tasks T
            --include_path TASKS --limit N --output_path OUT
    gpt2 eval -m DIR --dtype fp32 --device cpu --batch-size B --task T --protocol lm-eval --data-path FILE
            --limit N --out OUT --no-progress

lm-eval's command line has no switch for its standard errors, so its time includes them (a closed form for
acc; for LAMBADA's perplexity, 100,000 bootstrap resamples), as a user's run does; the project reports none.

Tasks, lm-eval's own YAML `include:`-d with only the data pointed at local files (the Hub is unreachable; see
lm_eval_crosscheck.py): `lambada_openai` on ../shared/data/lambada/lambada_test.jsonl (its first N passages;
metrics acc and perplexity against the project's accuracy_lm_eval / perplexity_lm_eval), and `hellaswag` on
a HellaSwag-format stand-in built from LAMBADA passages (acc, acc_norm against acc_lm_eval /
acc_norm_lm_eval; the stand-in exercises the metric's code, its accuracies mean nothing). WikiText is not
shared: lm-eval's `wikitext` reads the Hub's document-level dataset with its own splitting and rolling
windows, the project's `wikitext2` is the paper's whole-file definition, so no figure of one is the other's.

Models: random GPT-2s written by the project's save_pretrained (GPT-2's vocabulary): `tiny` (2 layers, 128
wide) and `124M`. The table goes to stdout and --out-dir/eval_vs_lmeval.json, with the machine's details.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _machine import machine_details
from lm_eval_crosscheck import (
    HELLASWAG_TASK,
    LAMBADA_FILE,
    TASKS,
    VOCAB_FILE,
    synthetic_hellaswag,
    write_hellaswag_task,
    write_lambada_tasks,
)

from gpt2.config import GPTConfig
from gpt2.evaluation.report import read_results
from gpt2.model import GPT
from gpt2.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[1]
SIZES = {"tiny": dict(n_layer=2, n_head=4, n_embd=128), "124M": dict(n_layer=12, n_head=12, n_embd=768)}
LAMBADA_TASK = TASKS["lm_eval"][0]  # lambada_openai, data from the local file
# task -> (lm-eval task, project task, [(lm-eval metric, project metric)])
PAIRS = {
    "lambada": (LAMBADA_TASK, "lambada", [("acc", "accuracy_lm_eval"), ("perplexity", "perplexity_lm_eval")]),
    "hellaswag": (HELLASWAG_TASK, "hellaswag", [("acc", "acc_lm_eval"), ("acc_norm", "acc_norm_lm_eval")]),
}
TOLERANCE = 1e-4  # relative, the bar for "the same numbers"


def timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(command[:4])} ... failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds


def lm_eval_metrics(out_dir: Path, task: str) -> dict[str, float]:
    (path,) = out_dir.rglob("results_*.json")  # one run wrote this folder
    results = json.loads(path.read_text())["results"][task]
    return {key.split(",")[0]: float(value) for key, value in results.items() if key.endswith(",none")}


def project_metrics(out_dir: Path, task: str) -> dict[str, float]:
    return read_results(out_dir / "results.json").tasks[task]["metrics"]


def run_pair(name: str, model_dir: Path, data: Path, tasks_dir: Path, tmp: Path, args, env) -> dict:
    lm_task, our_task, metrics = PAIRS[name]
    # a folder per task and model: each side's results file is this run's alone
    theirs_out, ours_out = tmp / f"lm-eval-{name}-{model_dir.name}", tmp / f"gpt2-{name}-{model_dir.name}"
    lm_eval_s = timed([
        sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={model_dir},dtype=float32",
        "--device", "cpu", "--batch_size", str(args.batch_size), "--tasks", lm_task, "--include_path",
        str(tasks_dir), "--limit", str(args.limit), "--output_path", str(theirs_out),
    ], env)
    ours_s = timed([
        sys.executable, "-m", "gpt2", "eval", "-m", str(model_dir), "--dtype", "fp32", "--device", "cpu",
        "--batch-size", str(args.batch_size), "--task", our_task, "--protocol", "lm-eval", "--data-path",
        str(data), "--limit", str(args.limit), "--out", str(ours_out), "--no-progress",
    ], env)
    theirs, ours = lm_eval_metrics(theirs_out, lm_task), project_metrics(ours_out, our_task)
    compared = {}
    for their_key, our_key in metrics:
        a, b = theirs[their_key], ours[our_key]
        compared[our_key] = {"lm_eval": a, "gpt2": b, "relative_difference": abs(a - b) / max(abs(a), 1e-12)}
    return {"lm_eval_s": round(lm_eval_s, 2), "gpt2_s": round(ours_s, 2), "speedup": round(lm_eval_s / ours_s, 2),
            "metrics": compared, "equal": all(m["relative_difference"] <= TOLERANCE for m in compared.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="tiny,124M", help="comma-separated: tiny, 124M")
    parser.add_argument("--tasks", default="lambada,hellaswag", help="comma-separated: lambada, hellaswag")
    parser.add_argument("--limit", type=int, default=300, help="passages / examples per task")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", GPT2_VOCAB_FILE=str(VOCAB_FILE),
               TOKENIZERS_PARALLELISM="false")
    table = {"machine": machine_details(["torch", "transformers", "lm_eval"]), "limit": args.limit,
             "batch_size": args.batch_size, "runs": {}}
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        tasks_dir, hellaswag_file = tmp / "tasks", tmp / "hellaswag.jsonl"
        tasks_dir.mkdir()
        write_lambada_tasks(tasks_dir, LAMBADA_FILE)
        synthetic_hellaswag(LAMBADA_FILE, hellaswag_file, args.limit, args.seed)
        write_hellaswag_task(tasks_dir, hellaswag_file)
        data = {"lambada": LAMBADA_FILE, "hellaswag": hellaswag_file}
        for size in args.sizes.split(","):
            model_dir = tmp / f"model-{size}"
            torch.manual_seed(args.seed)
            GPT(GPTConfig(**SIZES[size])).eval().save_pretrained(model_dir, tokenizer=Tokenizer.from_pretrained("gpt2"))
            for task in args.tasks.split(","):
                row = run_pair(task, model_dir, data[task], tasks_dir, tmp, args, env)
                table["runs"][f"{task}/{size}"] = row
                diffs = ", ".join(f"{k} {m['gpt2']:.6g} vs {m['lm_eval']:.6g} (rel {m['relative_difference']:.1e})"
                                  for k, m in row["metrics"].items())
                print(f"{task:10s} {size:5s} lm-eval {row['lm_eval_s']:7.1f} s  gpt2 {row['gpt2_s']:7.1f} s  "
                      f"{row['speedup']:5.2f}x  {diffs}", flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "eval_vs_lmeval.json").write_text(json.dumps(table, indent=2) + "\n")
    print(f"{table['machine']}")
    if not all(row["equal"] for row in table["runs"].values()):
        raise SystemExit(f"metrics differ by more than {TOLERANCE} relative")


if __name__ == "__main__":
    main()
