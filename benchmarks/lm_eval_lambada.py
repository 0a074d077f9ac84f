"""LAMBADA cross-check: this project's `gpt2.evaluation.lambada` against lm-evaluation-harness 0.4.13 itself.

    python3 -m venv /work/lmeval-venv
    /work/lmeval-venv/bin/pip install torch==2.13.0        # pinned first: unpinned, pip pulls a CUDA build
    /work/lmeval-venv/bin/pip install "lm-eval[hf]==0.4.13" transformers   # [hf]: accelerate, peft for HFLM
    /work/lmeval-venv/bin/pip install -e .                 # so this script can import gpt2
    /work/lmeval-venv/bin/python benchmarks/lm_eval_lambada.py [--limit 200] [--batch-size 16] [--out FILE]
    /work/lmeval-venv/bin/python benchmarks/lm_eval_lambada.py --checkpoint DIR   # a trained model instead

lm-eval runs in its own virtual environment so that the project's stays free of it and its dependencies.
All 5,153 passages take about 4.5 minutes on 2 CPU cores (lm-eval ~235 s, the project ~20 s).

Model: a random 2-layer GPT-2 (n_embd 128, 4 heads, GPT-2's 50,257-token vocabulary, --seed), built by
`gpt2.model.GPT` and written by the project's `save_pretrained` (config.json, model.safetensors and the
tokenizer's Hugging Face files) to a temporary directory; lm-eval's `hf` model loads that directory with
transformers (GPT2LMHeadModel, AutoTokenizer), the project loads it with `gpt2.checkpoint.load_pretrained`.
Both run in float32 on the CPU. With --checkpoint, a saved model (GPT-2's vocabulary) is used instead: a
random model almost never predicts a LAMBADA word, so its greedy flags agree trivially (nearly all False);
a trained one puts the greedy comparison to the test.

Data: the 5,153 passages of ../shared/data/lambada/lambada_test.jsonl (the file `lambada_openai` pins). The
Hub is unreachable, so lm-eval gets two tasks written at run time to a temporary directory (its TaskManager's
include_path), each `include:`-ing the installed lambada_openai.yaml, so prompt, target and metrics are
lm-eval's own, and changing only where the data comes from (the `json` builder on the local file):
  lambada_openai_local      lambada_openai as it is: context = text before the last space, target = " " + last
                            word, no <|endoftext|> before the context;
  lambada_openai_local_eot  the same with "<|endoftext|>" put in front of doc_to_text; lm-eval's HF tokenizer
                            must read that as the single special id 50256 (checked below, token by token).

Compared, passage by passage (lm-eval's logged samples against the project's scores):
  project `lm_eval`   variant  vs lambada_openai_local      (log p(target | context), greedy flag)
  project `full_word` variant  vs lambada_openai_local_eot
and the token ids each side scores (lm-eval's `_encode_pair` on its own logged request strings against the
ids `evaluate_lambada` builds with the project's tokenizer, from ../shared/vocab/r50k_base.tiktoken), and
the aggregates: the project's `accuracy_*`/`perplexity_*` from `evaluate_lambada` against lm-eval's `acc`
and `perplexity`. `evaluate_lambada` returns only aggregates, so the per-passage scores come from the same
public calls it makes (`read_lambada`, `score_continuations`), and the script checks that they reproduce
its aggregates. The table goes to stdout, the figures to --out as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
LAMBADA_FILE = SHARED / "data" / "lambada" / "lambada_test.jsonl"
VOCAB_FILE = SHARED / "vocab" / "r50k_base.tiktoken"
EOT_TEXT, EOT = "<|endoftext|>", 50256

# Nothing may reach for the Hub (unreachable here): datasets and transformers read only local files. The
# project's tokenizer reads GPT-2's vocabulary from the shared file. All set before those packages load.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GPT2_VOCAB_FILE", str(VOCAB_FILE))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import lm_eval  # noqa: E402
import lm_eval.tasks  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
import yaml  # noqa: E402
from _machine import machine_details  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402

from gpt2.checkpoint import load_pretrained  # noqa: E402
from gpt2.config import GPTConfig  # noqa: E402
from gpt2.evaluation.lambada import evaluate_lambada, read_lambada  # noqa: E402
from gpt2.model import GPT  # noqa: E402
from gpt2.scoring import score_continuations, total_nll  # noqa: E402
from gpt2.tokenizer import Tokenizer  # noqa: E402

# project variant -> (lm-eval task written below, text put in front of lambada_openai's doc_to_text)
TASKS = {
    "lm_eval": ("lambada_openai_local", ""),
    "full_word": ("lambada_openai_local_eot", EOT_TEXT),
}
transformers.logging.set_verbosity_error()


# ---- the model ----

def save_random_model(directory: Path, args) -> None:
    """A random GPT-2 from the project's model, written in HF layout with GPT-2's tokenizer files."""
    torch.manual_seed(args.seed)
    config = GPTConfig(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd)  # vocab 50257, 1024 positions
    GPT(config).eval().save_pretrained(directory, tokenizer=Tokenizer.from_pretrained("gpt2"))


# ---- lm-eval's side ----

def write_tasks(directory: Path, data_file: Path) -> None:
    """lambada_openai pointed at the local file, by `include:` of the installed YAML (so its doc_to_text,
    doc_to_target and metrics are the ones used), plus the <|endoftext|>-prefixed variant. JSON is YAML."""
    base = Path(lm_eval.tasks.__file__).parent / "lambada" / "lambada_openai.yaml"
    doc_to_text = yaml.safe_load(base.read_text())["doc_to_text"]
    for task, prefix in TASKS.values():
        config = {
            "include": str(base),
            "task": task,
            "tag": "lambada_crosscheck",  # not the included "lambada" tag: keep lm-eval's own group as it is
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {"test": str(data_file)}},
        }
        if prefix:
            config["doc_to_text"] = prefix + doc_to_text
        (directory / f"{task}.yaml").write_text(json.dumps(config, indent=2) + "\n")


def run_lm_eval(model_dir: Path, tasks_dir: Path, args) -> tuple[HFLM, dict]:
    lm = HFLM(pretrained=str(model_dir), backend="causal", device="cpu", dtype="float32", batch_size=args.batch_size)
    out = lm_eval.simple_evaluate(
        model=lm,
        tasks=[task for task, _ in TASKS.values()],
        task_manager=lm_eval.tasks.TaskManager(include_path=str(tasks_dir)),
        limit=args.limit,
        log_samples=True,
        bootstrap_iters=0,  # no stderr: 100,000 bootstrap resamples of the perplexity would dominate the run
    )
    return lm, out


def logged(out: dict, task: str) -> list[dict]:
    """lm-eval's logged samples of `task`, in file order, each {context, target, loglik, greedy}."""
    rows = []
    for sample in sorted(out["samples"][task], key=lambda s: s["doc_id"]):
        (loglik, greedy), = sample["filtered_resps"]  # one loglikelihood request per passage
        context, target = sample["arguments"][0]  # the very strings lm-eval scored
        rows.append({"context": context, "target": target, "loglik": float(loglik), "greedy": bool(greedy)})
    return rows


# ---- the project's side ----

def run_project(model_dir: Path, args) -> dict:
    model = load_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = Tokenizer.from_pretrained("gpt2")
    start = time.perf_counter()
    result = evaluate_lambada(model, tokenizer, args.data, limit=args.limit, batch_size=args.batch_size)
    eval_s = time.perf_counter() - start
    # evaluate_lambada returns aggregates only: the per-passage scores come from the calls it makes, with
    # its requests (checked against its aggregates below, so this restatement cannot drift from it silently).
    examples = read_lambada(args.data, args.limit)
    eot = tokenizer.eot_token_id
    pairs = [(tokenizer.encode(ex.context), tokenizer.encode(" " + ex.target)) for ex in examples]
    requests = {"lm_eval": pairs, "full_word": [([eot, *c], t) for c, t in pairs]}
    scores = {variant: score_continuations(model, reqs, batch_size=args.batch_size)
              for variant, reqs in requests.items()}
    n = len(examples)
    for variant, s in scores.items():
        acc, ppl = sum(x.all_greedy for x in s) / n, math.exp(total_nll(s).nll / n)
        assert acc == result.metrics[f"accuracy_{variant}"], (variant, acc, result.metrics)
        assert math.isclose(ppl, result.metrics[f"perplexity_{variant}"], rel_tol=1e-12), (variant, ppl)
    return {"metrics": result.metrics, "requests": requests, "scores": scores, "eval_s": eval_s}


# ---- comparison ----

def compare(variant: str, project: dict, theirs: list[dict], lm: HFLM, lm_results: dict) -> dict:
    ours, reqs = project["scores"][variant], project["requests"][variant]
    if len(ours) != len(theirs):
        raise SystemExit(f"{variant}: the project scored {len(ours)} passages, lm-eval {len(theirs)}")
    # Token ids: lm-eval's own encoding of the strings it logged (its loglikelihood() calls _encode_pair for
    # every non-empty context) against the ids the project scored.
    same_tokens = [lm._encode_pair(t["context"], t["target"]) == (list(c), list(g))
                   for t, (c, g) in zip(theirs, reqs, strict=True)]
    deltas = [o.logprob - t["loglik"] for o, t in zip(ours, theirs, strict=True)]
    worst = max(range(len(deltas)), key=lambda i: abs(deltas[i]))
    disagree = [i for i, (o, t) in enumerate(zip(ours, theirs, strict=True)) if o.all_greedy != t["greedy"]]
    task = TASKS[variant][0]
    lm_acc, lm_ppl = lm_results[task]["acc,none"], lm_results[task]["perplexity,none"]
    ppl = project["metrics"][f"perplexity_{variant}"]
    return {
        "lm_eval_task": task,
        "passages": len(ours),
        "tokens_identical": sum(same_tokens),
        "token_mismatches": [i for i, same in enumerate(same_tokens) if not same][:20],
        "max_abs_delta_loglik": abs(deltas[worst]),
        "max_abs_delta_passage": worst,
        "mean_abs_delta_loglik": sum(map(abs, deltas)) / len(deltas),
        "max_rel_delta_loglik": max(abs(d / t["loglik"]) for d, t in zip(deltas, theirs, strict=True)),
        "greedy_agree": len(ours) - len(disagree),
        "greedy_disagreements": disagree[:20],
        "greedy_true_project": sum(o.all_greedy for o in ours),
        "greedy_true_lm_eval": sum(t["greedy"] for t in theirs),
        "acc_project": project["metrics"][f"accuracy_{variant}"],
        "acc_lm_eval": lm_acc,
        "ppl_project": ppl,
        "ppl_lm_eval": lm_ppl,
        "ppl_ratio": ppl / lm_ppl,
    }


def print_table(rows: dict[str, dict]) -> None:
    print(f"{'project variant':<16}{'lm-eval task':<26}{'tokens same':>12}{'max|dLL|':>11}{'mean|dLL|':>11}"
          f"{'greedy agree':>14}{'acc proj':>10}{'acc lm-eval':>12}{'ppl proj':>12}{'ppl lm-eval':>13}"
          f"{'ratio':>12}")
    for variant, r in rows.items():
        n = r["passages"]
        print(f"{variant:<16}{r['lm_eval_task']:<26}{r['tokens_identical']:>6}/{n:<5}"
              f"{r['max_abs_delta_loglik']:>11.2e}{r['mean_abs_delta_loglik']:>11.2e}"
              f"{r['greedy_agree']:>8}/{n:<5}{r['acc_project']:>10.4%}{r['acc_lm_eval']:>12.4%}"
              f"{r['ppl_project']:>12.6g}{r['ppl_lm_eval']:>13.6g}{r['ppl_ratio']:>12.9f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=LAMBADA_FILE)
    parser.add_argument("--limit", type=int, default=None, help="only the first N passages (a quick run)")
    parser.add_argument("--batch-size", type=int, default=16, help="passages per forward, on both sides")
    parser.add_argument("--checkpoint", type=Path, help="a saved model (GPT-2's vocabulary) instead of a random one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "lm_eval_lambada.json")
    args = parser.parse_args()
    args.data = args.data.resolve()
    print(machine_details(["torch", "transformers", "lm_eval", "datasets"]))

    with tempfile.TemporaryDirectory(prefix="lm_eval_lambada_") as tmp:
        tasks_dir = Path(tmp) / "tasks"
        tasks_dir.mkdir()
        write_tasks(tasks_dir, args.data)
        if args.checkpoint:
            model_dir = args.checkpoint.resolve()
            if GPTConfig.load(model_dir / "config.json").vocab_size != 50257:
                raise SystemExit(f"{model_dir}: LAMBADA here is scored in GPT-2's vocabulary (50,257 tokens)")
        else:
            model_dir = Path(tmp) / "model"
            save_random_model(model_dir, args)

        start = time.perf_counter()
        lm, out = run_lm_eval(model_dir, tasks_dir, args)
        lm_eval_s = time.perf_counter() - start
        start = time.perf_counter()
        project = run_project(model_dir, args)
        project_s = time.perf_counter() - start
        # lm-eval must see "<|endoftext|>" as one special token, not as text (its 13 characters' BPE).
        eot_ids = lm.tok_encode(EOT_TEXT + " x")
        rows = {variant: compare(variant, project, logged(out, task), lm, out["results"])
                for variant, (task, _) in TASKS.items()}

    print(f"\nmodel: {args.checkpoint or f'random GPT-2, {args.n_layer} layers x {args.n_embd}, seed {args.seed}'}; "
          f"{rows['lm_eval']['passages']} passages of {args.data}; float32, CPU, batch size {args.batch_size}")
    print(f"lm-eval encodes {EOT_TEXT!r} + ' x' as {eot_ids} (single special id {EOT}: {eot_ids[0] == EOT})")
    print(f"time: lm-eval {lm_eval_s:.1f} s (both tasks), project {project_s:.1f} s "
          f"(evaluate_lambada {project['eval_s']:.1f} s, then the per-passage scores again)\n")
    print_table(rows)
    for variant, r in rows.items():
        print(f"{variant}: largest |dLL| at passage {r['max_abs_delta_passage']} "
              f"(relative {r['max_rel_delta_loglik']:.1e}); greedy True: project {r['greedy_true_project']}, "
              f"lm-eval {r['greedy_true_lm_eval']}; disagreements {r['greedy_disagreements'] or 'none'}; "
              f"token mismatches {r['token_mismatches'] or 'none'}")

    report = {
        "model": str(args.checkpoint) if args.checkpoint else
        {"random": True, "seed": args.seed, "n_layer": args.n_layer, "n_head": args.n_head, "n_embd": args.n_embd},
        "data": str(args.data),
        "limit": args.limit,
        "batch_size": args.batch_size,
        "dtype": "float32",
        "eot_prompt_ids": eot_ids,
        "eot_single_token": eot_ids[0] == EOT,
        "lm_eval_s": lm_eval_s,
        "project_s": project_s,
        "project_evaluate_lambada_s": project["eval_s"],
        "versions": {"lm_eval": lm_eval.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__},
        "variants": rows,
        "project_metrics": project["metrics"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
