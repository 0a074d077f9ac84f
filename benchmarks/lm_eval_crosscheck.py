"""Cross-check of this project's LAMBADA and HellaSwag metrics against lm-evaluation-harness 0.4.13 itself.

    python3 -m venv .venv-lmeval
    .venv-lmeval/bin/pip install torch==2.13.0        # pinned first: unpinned, pip pulls a CUDA build
    .venv-lmeval/bin/pip install "lm-eval[hf]==0.4.13" transformers   # [hf]: accelerate, peft for HFLM
    .venv-lmeval/bin/pip install -e .                 # so this script can import gpt2
    .venv-lmeval/bin/python benchmarks/lm_eval_crosscheck.py --task lambada [--limit 200] [--batch-size 16]
    .venv-lmeval/bin/python benchmarks/lm_eval_crosscheck.py --task hellaswag [--hellaswag hellaswag_val.jsonl]
    .venv-lmeval/bin/python benchmarks/lm_eval_crosscheck.py --task all --checkpoint DIR   # a trained model

lm-eval runs in its own virtual environment so that the project's stays free of it and its dependencies.
On 2 CPU cores all 5,153 LAMBADA passages take about 4.5 minutes (lm-eval ~235 s, the project ~20 s) with the
random model, the 500-row synthetic HellaSwag file about 1 minute with a 4-layer one (lm-eval ~27 s, the
project ~30 s, which scores its llm.c variant too).

Model: a random 2-layer GPT-2 (n_embd 128, 4 heads, GPT-2's 50,257-token vocabulary, --seed), built by
`gpt2.model.GPT` and written by the project's `save_pretrained` (config.json, model.safetensors and the
tokenizer's Hugging Face files) to a temporary directory; lm-eval's `hf` model loads that directory with
transformers (GPT2LMHeadModel, AutoTokenizer), the project loads it with `GPT.from_pretrained`.
Both run in float32 on the CPU. With --checkpoint, a saved model (GPT-2's vocabulary) is used instead: a
random model almost never predicts a LAMBADA word and picks HellaSwag endings near-randomly, so greedy flags
and argmaxes agree trivially or on near-ties; a trained one puts them to the test.

The Hub is unreachable, so lm-eval gets tasks written at run time to a temporary directory (its TaskManager's
include_path), each `include:`-ing the installed task YAML, so prompt, target, choices and metrics are
lm-eval's own, and changing only where the data comes from (the `json` builder on a local file).

LAMBADA (--task lambada): the 5,153 passages of ../shared/data/lambada/lambada_test.jsonl (the file
`lambada_openai` pins), as two tasks:
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
its aggregates.

HellaSwag (--task hellaswag): `hellaswag_local` includes the installed hellaswag.yaml; its `!function
utils.process_docs` is resolved by lm-eval's loader relative to the included file, so lm-eval's own
utils.py (preprocess of WikiHow's "[title]"/"[step]" artifacts, "activity_label: ctx_a Ctx_b" query) runs,
and the script checks that it is that file's function. Compared, example by example, against the project's
`acc_lm_eval`/`acc_norm_lm_eval` (`gpt2.evaluation.hellaswag`): the query and choice strings, the token ids
of every (context, " " + ending) pair, each choice's log-likelihood (lm-eval logs them in `filtered_resps`),
the argmax of the log-likelihoods (acc) and of the log-likelihood per character of the ending (acc_norm),
lm-eval's per-example acc/acc_norm, and the aggregates. Per-example scores again come from the calls
`evaluate_hellaswag` makes (`read_hellaswag`, `harness_requests`, `score_continuations`), checked against
its aggregates. Where lm-eval's preprocess leaves a query ending in whitespace (a tag last, e.g. "... [step]"),
its `_encode_pair` moves that whitespace into every continuation (the space's token is scored too); the
project's `hellaswag.harness_pair` does the same since this script found the difference (before, it showed
as token-id mismatches and a |dLL| shift common to the four choices). The script counts such queries.
Data: --hellaswag FILE, the real `hellaswag_val.jsonl` (rowanz format; 10,042 rows). Without it (this machine
has none) a HellaSwag-format file is built at run time from LAMBADA passages (--hellaswag-rows, default 500):
a first sentence as ctx_a, the next one's first words in lower case as ctx_b, its true rest and three other
passages' rests as the endings, at a seeded position; one row in four is WikiHow-like ("[header] ... [title]
... [step]", ctx_b empty, "[substeps]" and double spaces in endings), and one row in twenty (a fifth of
those) ends its context with a tag, which lm-eval's preprocess turns into a trailing space. That file is a stand-in that
exercises the metric's code paths, not a benchmark: its accuracies mean nothing about HellaSwag.

The tables go to stdout, the figures to --out-dir as lm_eval_<task>.json.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import random
import re
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

from gpt2.config import GPTConfig  # noqa: E402
from gpt2.evaluation.hellaswag import clean, evaluate_hellaswag, harness_requests, read_hellaswag  # noqa: E402
from gpt2.evaluation.lambada import evaluate_lambada, read_lambada  # noqa: E402
from gpt2.model import GPT  # noqa: E402
from gpt2.scoring import score_continuations, total_nll  # noqa: E402
from gpt2.tokenizer import Tokenizer  # noqa: E402

LM_EVAL_TASKS = Path(lm_eval.tasks.__file__).parent
# project variant -> (lm-eval task written below, text put in front of lambada_openai's doc_to_text)
TASKS = {
    "lm_eval": ("lambada_openai_local", ""),
    "full_word": ("lambada_openai_local_eot", EOT_TEXT),
}
HELLASWAG_TASK = "hellaswag_local"
transformers.logging.set_verbosity_error()


# ---- the model ----

def save_random_model(directory: Path, args) -> None:
    """A random GPT-2 from the project's model, written in HF layout with GPT-2's tokenizer files."""
    torch.manual_seed(args.seed)
    config = GPTConfig(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd)  # vocab 50257, 1024 positions
    GPT(config).eval().save_pretrained(directory, tokenizer=Tokenizer.from_pretrained("gpt2"))


def run_lm_eval(lm: HFLM, tasks: list[str], tasks_dir: Path, args) -> dict:
    return lm_eval.simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=lm_eval.tasks.TaskManager(include_path=str(tasks_dir)),
        limit=args.limit,
        log_samples=True,
        bootstrap_iters=0,  # no stderr: 100,000 bootstrap resamples of the perplexity would dominate the run
    )


def samples(out: dict, task: str) -> list[dict]:
    """lm-eval's logged samples of `task`, in file order."""
    return sorted(out["samples"][task], key=lambda s: s["doc_id"])


# ---- LAMBADA: lm-eval's side ----

def write_lambada_tasks(directory: Path, data_file: Path) -> None:
    """lambada_openai pointed at the local file, by `include:` of the installed YAML (so its doc_to_text,
    doc_to_target and metrics are the ones used), plus the <|endoftext|>-prefixed variant. JSON is YAML."""
    base = LM_EVAL_TASKS / "lambada" / "lambada_openai.yaml"
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


def lambada_logged(out: dict, task: str) -> list[dict]:
    """lm-eval's logged LAMBADA samples, each {context, target, loglik, greedy}."""
    rows = []
    for sample in samples(out, task):
        (loglik, greedy), = sample["filtered_resps"]  # one loglikelihood request per passage
        context, target = sample["arguments"][0]  # the very strings lm-eval scored
        rows.append({"context": context, "target": target, "loglik": float(loglik), "greedy": bool(greedy)})
    return rows


# ---- LAMBADA: the project's side ----

def run_project_lambada(model, tokenizer, args) -> dict:
    start = time.perf_counter()
    result = evaluate_lambada(model, tokenizer, args.data, limit=args.limit, batch_size=args.batch_size,
                              protocol="both")
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


# ---- LAMBADA: comparison ----

def compare_lambada(variant: str, project: dict, theirs: list[dict], lm: HFLM, lm_results: dict) -> dict:
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


def print_lambada_table(rows: dict[str, dict]) -> None:
    print(f"{'project variant':<16}{'lm-eval task':<26}{'tokens same':>12}{'max|dLL|':>11}{'mean|dLL|':>11}"
          f"{'greedy agree':>14}{'acc proj':>10}{'acc lm-eval':>12}{'ppl proj':>12}{'ppl lm-eval':>13}"
          f"{'ratio':>12}")
    for variant, r in rows.items():
        n = r["passages"]
        print(f"{variant:<16}{r['lm_eval_task']:<26}{r['tokens_identical']:>6}/{n:<5}"
              f"{r['max_abs_delta_loglik']:>11.2e}{r['mean_abs_delta_loglik']:>11.2e}"
              f"{r['greedy_agree']:>8}/{n:<5}{r['acc_project']:>10.4%}{r['acc_lm_eval']:>12.4%}"
              f"{r['ppl_project']:>12.6g}{r['ppl_lm_eval']:>13.6g}{r['ppl_ratio']:>12.9f}")


def crosscheck_lambada(lm: HFLM, model, tokenizer, tasks_dir: Path, args) -> dict:
    write_lambada_tasks(tasks_dir, args.data)
    start = time.perf_counter()
    out = run_lm_eval(lm, [task for task, _ in TASKS.values()], tasks_dir, args)
    lm_eval_s = time.perf_counter() - start
    start = time.perf_counter()
    project = run_project_lambada(model, tokenizer, args)
    project_s = time.perf_counter() - start
    # lm-eval must see "<|endoftext|>" as one special token, not as text (its 13 characters' BPE).
    eot_ids = lm.tok_encode(EOT_TEXT + " x")
    rows = {variant: compare_lambada(variant, project, lambada_logged(out, task), lm, out["results"])
            for variant, (task, _) in TASKS.items()}

    print(f"\n== LAMBADA: {rows['lm_eval']['passages']} passages of {args.data}")
    print(f"lm-eval encodes {EOT_TEXT!r} + ' x' as {eot_ids} (single special id {EOT}: {eot_ids[0] == EOT})")
    print(f"time: lm-eval {lm_eval_s:.1f} s (both tasks), project {project_s:.1f} s "
          f"(evaluate_lambada {project['eval_s']:.1f} s, then the per-passage scores again)\n")
    print_lambada_table(rows)
    for variant, r in rows.items():
        print(f"{variant}: largest |dLL| at passage {r['max_abs_delta_passage']} "
              f"(relative {r['max_rel_delta_loglik']:.1e}); greedy True: project {r['greedy_true_project']}, "
              f"lm-eval {r['greedy_true_lm_eval']}; disagreements {r['greedy_disagreements'] or 'none'}; "
              f"token mismatches {r['token_mismatches'] or 'none'}")
    return {
        "data": str(args.data),
        "eot_prompt_ids": eot_ids,
        "eot_single_token": eot_ids[0] == EOT,
        "lm_eval_s": lm_eval_s,
        "project_s": project_s,
        "project_evaluate_lambada_s": project["eval_s"],
        "variants": rows,
        "project_metrics": project["metrics"],
    }


# ---- HellaSwag: data ----

ACTIVITIES = ["Removing ice from car", "Baking cookies", "Playing harmonica", "Sailing", "Walking the dog",
              "Washing dishes", "Making a sandwich", "Getting a haircut", "Playing piano", "Mowing the lawn"]
WIKIHOW = ["Health", "Home and Garden", "Food and Entertaining", "Personal Care and Style", "Family Life",
           "Relationships", "Work World", "Hobbies and Crafts"]
HOW_TO = ["cope with a long night", "talk to a stranger", "find your way home", "keep a secret",
          "say goodbye", "calm down after an argument", "wait for good news", "get out of a tight spot"]


def synthetic_hellaswag(source: Path, path: Path, rows: int, seed: int) -> dict:
    """A HellaSwag-format file (rowanz's fields) from LAMBADA passages; see the module doc. Returns counts."""
    rng = random.Random(seed)
    parts = []  # (line number, first sentence, first words of the next, the rest of it)
    for number, line in enumerate(source.read_text(encoding="utf-8").splitlines(), 1):
        text = " ".join(json.loads(line)["text"].split())  # one line, single spaces: artifacts are added below
        sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z\"'])", text)
        if len(sentences) < 2:
            continue
        first, second = sentences[0].split(), sentences[1].split()
        if not 4 <= len(first) <= 40 or not 6 <= len(second) <= 40:
            continue
        k = rng.randint(1, 3)
        parts.append((number, " ".join(first), " ".join(second[:k]), " ".join(second[k:])))
        if len(parts) == rows:
            break
    counts = {"rows": len(parts), "wikihow_like": 0, "context_ends_in_tag": 0}
    with path.open("w", encoding="utf-8") as f:
        for i, (number, sentence, start, rest) in enumerate(parts):
            others = rng.sample(range(len(parts) - 1), 3)  # three other passages' rests, i itself skipped
            endings = [parts[j + (j >= i)][3] for j in others]
            label = rng.randrange(4)
            endings.insert(label, rest)
            if i % 4 == 3:  # WikiHow-like: everything in ctx_a, ctx_b empty, bracketed section marks
                counts["wikihow_like"] += 1
                label_text = rng.choice(WIKIHOW)
                ctx_a = f"[header] How to {rng.choice(HOW_TO)} [title] {sentence} [step] {start}"
                ctx_b = ""
                if i % 20 == 3:  # a tag last: lm-eval's preprocess leaves "... sentence. " (trailing space)
                    counts["context_ends_in_tag"] += 1
                    ctx_a = f"[header] How to {rng.choice(HOW_TO)} [title] {sentence} [step]"
                    endings = [f"{start} {e}" if j == label else e for j, e in enumerate(endings)]
                endings = [e.replace(", ", ",  ", 1) if j % 2 else re.sub(r"([.!?]) ", r"\1 [substeps] ", e, count=1)
                           for j, e in enumerate(endings)]
            else:  # ActivityNet-like: ctx_b is the lower-cased start of the sentence the ending completes
                label_text = rng.choice(ACTIVITIES)
                ctx_a, ctx_b = sentence, start.lower()
            ctx = f"{ctx_a} {ctx_b}" if ctx_b else ctx_a
            f.write(json.dumps({"ind": i, "activity_label": label_text, "ctx_a": ctx_a, "ctx_b": ctx_b, "ctx": ctx,
                                "endings": endings, "source_id": f"lambada_test~{number}", "split": "val",
                                "split_type": "indomain", "label": label}) + "\n")
    return counts


# ---- HellaSwag: lm-eval's side ----

def write_hellaswag_task(directory: Path, data_file: Path) -> None:
    """hellaswag pointed at the local file by `include:` of the installed YAML (so process_docs, doc_to_text,
    doc_to_choice, doc_to_target and the metrics are lm-eval's own). JSON is YAML."""
    config = {
        "include": str(LM_EVAL_TASKS / "hellaswag" / "hellaswag.yaml"),
        "task": HELLASWAG_TASK,
        "tag": "hellaswag_crosscheck",  # not the included "multiple_choice" tag
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"validation": str(data_file)}},
        "training_split": None,  # the local file has no train split (only few-shot examples would use it)
        "validation_split": "validation",
    }
    (directory / f"{HELLASWAG_TASK}.yaml").write_text(json.dumps(config, indent=2) + "\n")


def hellaswag_process_docs_file(tasks_dir: Path) -> str:
    """Where the resolved task's process_docs comes from: `!function utils.process_docs` is resolved by
    lm-eval's YAML loader relative to the file that says it (the included hellaswag.yaml), not to ours."""
    manager = lm_eval.tasks.TaskManager(include_path=str(tasks_dir))
    process_docs = manager.load(HELLASWAG_TASK)["tasks"][HELLASWAG_TASK].config.process_docs
    source = Path(inspect.getsourcefile(process_docs)).resolve()
    if source != (LM_EVAL_TASKS / "hellaswag" / "utils.py").resolve():
        raise SystemExit(f"{HELLASWAG_TASK}: process_docs comes from {source}, not lm-eval's hellaswag/utils.py")
    return str(source)


def hellaswag_logged(out: dict) -> list[dict]:
    """lm-eval's logged HellaSwag samples, each {pairs, lls, acc, acc_norm}: one request per choice."""
    rows = []
    for sample in samples(out, HELLASWAG_TASK):
        rows.append({
            "pairs": [tuple(args) for args in sample["arguments"]],  # (query, " " + choice), as scored
            "lls": [float(ll) for ll, _ in sample["filtered_resps"]],
            "acc": sample["acc"],
            "acc_norm": sample["acc_norm"],
            "target": int(sample["target"]),
        })
    return rows


# ---- HellaSwag: the project's side ----

def run_project_hellaswag(model, tokenizer, data: Path, args) -> dict:
    start = time.perf_counter()
    result = evaluate_hellaswag(model, tokenizer, data, limit=args.limit, batch_size=args.batch_size)
    eval_s = time.perf_counter() - start
    # Per-example scores from the calls evaluate_hellaswag makes, checked against its aggregates below.
    examples = read_hellaswag(data, args.limit)
    requests, chars, strings = [], [], []
    for ex in examples:
        pairs, lengths = harness_requests(tokenizer, ex)
        requests.append(pairs)
        chars.append(lengths)
        # the strings behind those ids, as harness_requests builds them, to compare with lm-eval's
        strings.append((clean(f"{ex.activity_label}: {ex.ctx_a} {ex.ctx_b.capitalize()}"),
                        [" " + clean(e) for e in ex.endings]))
    flat = score_continuations(model, [p for pairs in requests for p in pairs], batch_size=args.batch_size)
    lls, at = [], 0
    for pairs in requests:
        lls.append([s.logprob for s in flat[at : at + len(pairs)]])
        at += len(pairs)
    acc = [argmax(ll) == ex.label for ll, ex in zip(lls, examples, strict=True)]
    acc_norm = [argmax(per_char(ll, n)) == ex.label for ll, n, ex in zip(lls, chars, examples, strict=True)]
    assert sum(acc) / len(examples) == result.metrics["acc_lm_eval"], (sum(acc), result.metrics)
    assert sum(acc_norm) / len(examples) == result.metrics["acc_norm_lm_eval"], (sum(acc_norm), result.metrics)
    return {"metrics": result.metrics, "examples": examples, "requests": requests, "chars": chars,
            "strings": strings, "lls": lls, "eval_s": eval_s}


def argmax(values: list[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)  # the first of equal maxima, as np.argmax


def per_char(lls: list[float], chars: list[int]) -> list[float]:
    return [ll / max(n, 1) for ll, n in zip(lls, chars, strict=True)]  # as evaluate_hellaswag (max: empty ending)


# ---- HellaSwag: comparison ----

def compare_hellaswag(project: dict, theirs: list[dict], lm: HFLM, lm_results: dict) -> dict:
    if len(project["lls"]) != len(theirs):
        raise SystemExit(f"hellaswag: the project scored {len(project['lls'])} examples, lm-eval {len(theirs)}")
    strings_differ, tokens_differ, golds_differ, trailing_space = [], [], [], []
    acc_differ, norm_differ, lm_acc_differ, lm_norm_differ = [], [], [], []
    deltas, margins = [], []  # (dLL project - lm-eval, example, choice); (top-2 gap of either argmax, example)
    for i, (t, ex) in enumerate(zip(theirs, project["examples"], strict=True)):
        ours, chars = project["lls"][i], project["chars"][i]
        query, choices = project["strings"][i]
        if t["pairs"] != [(query, c) for c in choices]:
            strings_differ.append(i)
        if query != query.rstrip():  # _encode_pair moves a query's trailing whitespace into the continuation
            trailing_space.append(i)
        # lm-eval's own encoding of the strings it logged (loglikelihood() -> _encode_pair) vs the project's ids
        if [lm._encode_pair(c, g) for c, g in t["pairs"]] != [(list(c), list(g)) for c, g in project["requests"][i]]:
            tokens_differ.append(i)
        if t["target"] != ex.label:
            golds_differ.append(i)
        deltas += [(o - x, i, j) for j, (o, x) in enumerate(zip(ours, t["lls"], strict=True))]
        # lm-eval's acc_norm divides by len(choice) of doc_to_choice: the preprocessed ending, no leading space
        their_chars = [len(g) - 1 for _, g in t["pairs"]]
        mine, norm = argmax(ours), argmax(per_char(ours, chars))
        if mine != argmax(t["lls"]):
            acc_differ.append(i)
        if norm != argmax(per_char(t["lls"], their_chars)):
            norm_differ.append(i)
        if float(mine == ex.label) != t["acc"]:
            lm_acc_differ.append(i)
        if float(norm == ex.label) != t["acc_norm"]:
            lm_norm_differ.append(i)
        for values in (ours, per_char(ours, chars)):
            top = sorted(values, reverse=True)
            margins.append((top[0] - top[1], i))
    worst = max(deltas, key=lambda d: abs(d[0]))
    mismatched = set(tokens_differ)
    same = [abs(d) for d, i, _ in deltas if i not in mismatched]  # where both sides scored the same ids
    # Where the ids differ, how much the difference varies across an example's choices: ~0 means a shift
    # common to all four (acc cannot move; acc_norm, dividing it by different lengths, can).
    spread = {}
    for d, i, _ in deltas:
        if i in mismatched:
            spread.setdefault(i, []).append(d)
    tightest = min(margins)
    n, metrics, results = len(theirs), project["metrics"], lm_results[HELLASWAG_TASK]
    return {
        "lm_eval_task": HELLASWAG_TASK,
        "examples": n,
        "choices": len(deltas),
        "strings_identical": n - len(strings_differ),
        "string_mismatches": strings_differ[:20],
        "tokens_identical": n - len(tokens_differ),
        "token_mismatches": tokens_differ[:20],
        "gold_mismatches": golds_differ[:20],
        "queries_with_trailing_space": len(trailing_space),
        "queries_with_trailing_space_examples": trailing_space[:20],
        "max_abs_delta_loglik": abs(worst[0]),
        "max_abs_delta_at": {"example": worst[1], "choice": worst[2]},
        "mean_abs_delta_loglik": sum(abs(d) for d, _, _ in deltas) / len(deltas),
        "max_abs_delta_loglik_same_tokens": max(same, default=None),
        "mean_abs_delta_loglik_same_tokens": sum(same) / len(same) if same else None,
        "token_mismatch_delta_range": [min((min(v) for v in spread.values()), default=None),
                                       max((max(v) for v in spread.values()), default=None)],
        "token_mismatch_max_delta_spread_within_example": max((max(v) - min(v) for v in spread.values()),
                                                              default=None),
        "acc_argmax_agree": n - len(acc_differ),
        "acc_argmax_disagreements": acc_differ[:20],
        "acc_norm_argmax_agree": n - len(norm_differ),
        "acc_norm_argmax_disagreements": norm_differ[:20],
        "lm_eval_per_example_acc_agree": n - len(lm_acc_differ),
        "lm_eval_per_example_acc_norm_agree": n - len(lm_norm_differ),
        "smallest_top2_margin": tightest[0],  # how close a |dLL| would have to come to flip an argmax
        "smallest_top2_margin_example": tightest[1],
        "acc_project": metrics["acc_lm_eval"],
        "acc_lm_eval": results["acc,none"],
        "acc_norm_project": metrics["acc_norm_lm_eval"],
        "acc_norm_lm_eval": results["acc_norm,none"],
    }


def crosscheck_hellaswag(lm: HFLM, model, tokenizer, tasks_dir: Path, tmp: Path, args) -> dict:
    data, built = args.hellaswag, None
    if data is None:
        data = tmp / "hellaswag_synthetic.jsonl"
        built = synthetic_hellaswag(args.data, data, args.hellaswag_rows, args.seed)
    write_hellaswag_task(tasks_dir, data)
    process_docs = hellaswag_process_docs_file(tasks_dir)
    start = time.perf_counter()
    out = run_lm_eval(lm, [HELLASWAG_TASK], tasks_dir, args)
    lm_eval_s = time.perf_counter() - start
    start = time.perf_counter()
    project = run_project_hellaswag(model, tokenizer, data, args)
    project_s = time.perf_counter() - start
    r = compare_hellaswag(project, hellaswag_logged(out), lm, out["results"])

    source = f"synthetic stand-in from {args.data} ({built})" if built else str(data)
    print(f"\n== HellaSwag: {r['examples']} examples ({r['choices']} choices), {source}")
    print(f"lm-eval's process_docs: {process_docs}")
    print(f"time: lm-eval {lm_eval_s:.1f} s, project {project_s:.1f} s (evaluate_hellaswag {project['eval_s']:.1f} s "
          f"incl. its llm.c variant, then the per-example scores again)\n")
    n = r["examples"]
    print(f"{'strings same':>13}{'tokens same':>13}{'max|dLL|':>11}{'mean|dLL|':>11}{'acc argmax':>12}"
          f"{'norm argmax':>13}{'acc proj':>10}{'acc lm-eval':>12}{'norm proj':>11}{'norm lm-eval':>13}")
    print(f"{r['strings_identical']:>7}/{n:<5}{r['tokens_identical']:>7}/{n:<5}{r['max_abs_delta_loglik']:>11.2e}"
          f"{r['mean_abs_delta_loglik']:>11.2e}{r['acc_argmax_agree']:>6}/{n:<5}{r['acc_norm_argmax_agree']:>7}/{n:<5}"
          f"{r['acc_project']:>10.4%}{r['acc_lm_eval']:>12.4%}{r['acc_norm_project']:>11.4%}"
          f"{r['acc_norm_lm_eval']:>13.4%}")
    print(f"largest |dLL| at example {r['max_abs_delta_at']['example']} choice {r['max_abs_delta_at']['choice']}; "
          f"smallest top-2 margin {r['smallest_top2_margin']:.2e} (example {r['smallest_top2_margin_example']}); "
          f"lm-eval's own per-example acc/acc_norm agree {r['lm_eval_per_example_acc_agree']}/{n}, "
          f"{r['lm_eval_per_example_acc_norm_agree']}/{n}")
    if r["token_mismatches"]:
        low, high = r["token_mismatch_delta_range"]
        print(f"token ids differ in {n - r['tokens_identical']} examples ({r['queries_with_trailing_space']} queries "
              f"end in whitespace): there dLL (project - lm-eval) runs {low:.3g} to {high:.3g}, varying within an "
              f"example by at most {r['token_mismatch_max_delta_spread_within_example']:.2e}; where ids are the "
              f"same, max|dLL| {r['max_abs_delta_loglik_same_tokens']:.2e}, "
              f"mean {r['mean_abs_delta_loglik_same_tokens']:.2e}")
    print(f"mismatches: strings {r['string_mismatches'] or 'none'}; tokens {r['token_mismatches'] or 'none'}; "
          f"gold {r['gold_mismatches'] or 'none'}; acc {r['acc_argmax_disagreements'] or 'none'}; "
          f"acc_norm {r['acc_norm_argmax_disagreements'] or 'none'}")
    return {
        "data": str(data) if built is None else {"synthetic_from": str(args.data), **built, "seed": args.seed},
        "lm_eval_process_docs": process_docs,
        "lm_eval_s": lm_eval_s,
        "project_s": project_s,
        "project_evaluate_hellaswag_s": project["eval_s"],
        "comparison": r,
        "project_metrics": project["metrics"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", choices=["lambada", "hellaswag", "all"], default="lambada")
    parser.add_argument("--data", type=Path, default=LAMBADA_FILE, help="LAMBADA (and the synthetic file's source)")
    parser.add_argument("--hellaswag", type=Path, help="hellaswag_val.jsonl; default: a synthetic stand-in")
    parser.add_argument("--hellaswag-rows", type=int, default=500, help="rows of the synthetic stand-in")
    parser.add_argument("--limit", type=int, default=None, help="only the first N passages/examples (a quick run)")
    parser.add_argument("--batch-size", type=int, default=16, help="requests per forward, on both sides")
    parser.add_argument("--checkpoint", type=Path, help="a saved model (GPT-2's vocabulary) instead of a random one")
    parser.add_argument("--seed", type=int, default=0, help="the random model's and the synthetic file's")
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--n-head", type=int, default=4)
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results",
                        help="lm_eval_<task>.json for each task run")
    args = parser.parse_args()
    args.data = args.data.resolve()
    args.hellaswag = args.hellaswag.resolve() if args.hellaswag else None
    tasks = ["lambada", "hellaswag"] if args.task == "all" else [args.task]
    print(machine_details(["torch", "transformers", "lm_eval", "datasets"]))

    reports = {}
    with tempfile.TemporaryDirectory(prefix="lm_eval_crosscheck_") as tmp:
        tmp = Path(tmp)
        tasks_dir = tmp / "tasks"
        tasks_dir.mkdir()
        if args.checkpoint:
            model_dir = args.checkpoint.resolve()
            if GPTConfig.load(model_dir / "config.json").vocab_size != 50257:
                raise SystemExit(f"{model_dir}: both tasks are scored here in GPT-2's vocabulary (50,257 tokens)")
        else:
            model_dir = tmp / "model"
            save_random_model(model_dir, args)
        # One model on each side, shared by the tasks.
        lm = HFLM(pretrained=str(model_dir), backend="causal", device="cpu", dtype="float32",
                  batch_size=args.batch_size)
        model = GPT.from_pretrained(model_dir, dtype=torch.float32).eval()
        tokenizer = Tokenizer.from_pretrained("gpt2")
        print(f"\nmodel: {args.checkpoint or f'random GPT-2, {args.n_layer} layers x {args.n_embd}, seed {args.seed}'}"
              f"; float32, CPU, batch size {args.batch_size}, limit {args.limit}")
        if "lambada" in tasks:
            reports["lambada"] = crosscheck_lambada(lm, model, tokenizer, tasks_dir, args)
        if "hellaswag" in tasks:
            reports["hellaswag"] = crosscheck_hellaswag(lm, model, tokenizer, tasks_dir, tmp, args)

    common = {
        "model": str(args.checkpoint) if args.checkpoint else
        {"random": True, "seed": args.seed, "n_layer": args.n_layer, "n_head": args.n_head, "n_embd": args.n_embd},
        "limit": args.limit,
        "batch_size": args.batch_size,
        "dtype": "float32",
        "versions": {"lm_eval": lm_eval.__version__, "torch": torch.__version__,
                     "transformers": transformers.__version__},
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for task, report in reports.items():
        path = args.out_dir / f"lm_eval_{task}.json"
        path.write_text(json.dumps({**common, **report}, indent=2) + "\n")
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
