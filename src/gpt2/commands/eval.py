"""`gpt2 eval`: zero-shot evaluation on the GPT-2 paper's benchmarks, written to results.json / results.md."""

from __future__ import annotations

import argparse
import sys

from gpt2.commands import _options

EPILOG = """\
tasks:
{tasks}

examples:
  gpt2 eval -m gpt2 --task wikitext2 --data-path wikitext-2/wiki.test.tokens
  GPT2_DATA_DIR=~/data gpt2 eval -m out/run1 --task lambada --task wsc --out results/run1
  gpt2 eval -m gpt2 --task perplexity --data-path my_corpus.txt --stride 512 --limit 1000
  gpt2 eval -m gpt2 --task paper --out results/gpt2      Table 3: every task with a standard file
  gpt2 eval -m gpt2 --task hellaswag                     acc / acc_norm, lm-eval's and llm.c's
  gpt2 eval -m gpt2-xl --task summarize --task translate --task qa   Secs. 3.6-3.8 (CNN/DM, WMT14, NQ)

Without --data-path a task reads its standard file in the data directory ($GPT2_DATA_DIR, default
~/.cache/gpt2) and downloads it there first if it is missing (`gpt2 data list` shows the sources):
wikitext2/wiki.test.tokens, wikitext103/wiki.test.tokens, ptb/ptb.test.txt, enwik8/enwik8, text8/text8,
lambada/lambada_test.jsonl, wsc/WSCollection.xml, cbt/cbtest_CN_test_2500ex.txt, cbt/cbtest_NE_test_2500ex.txt,
hellaswag/hellaswag_val.jsonl, and from the Hugging Face Hub (HF_ENDPOINT for a mirror) cnndm/test.jsonl
(summarize), wmt14/fr-en.test.jsonl (translate; English to French: --data-path after `gpt2 data get
wmt14-en-fr`), nq/nq_open.validation.jsonl (qa) and coqa/coqa-dev-v1.0.json (coqa, CoQA's own file).
perplexity always takes --data-path.
--limit counts examples (language-modelling tasks: lines; text8: words; coqa: stories)."""

def register(subparsers: argparse._SubParsersAction) -> None:
    from gpt2.evaluation.tasks import TASKS

    tasks = "\n".join(f"  {name:<12} {task.description}" for name, task in TASKS.items())
    p = subparsers.add_parser(
        "eval",
        help="zero-shot evaluation (WikiText, PTB, LAMBADA, CBT, WSC, ...)",
        description="Evaluate a model zero-shot on the GPT-2 paper's benchmarks; compare with its Table 3.",
        epilog=EPILOG.format(tasks=tasks),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", "-t", action="append", required=True, choices=[*TASKS, "paper"], metavar="TASK",
                   help=f"task to run, repeatable: {', '.join(TASKS)}; paper = every task of the paper's Table 3 "
                   "that has a standard file (the files are downloaded once)")
    p.add_argument("--data-path", default=None, metavar="FILE",
                   help="the task's data file (one task only); default: its standard file in the data directory, "
                   "downloaded once")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate only the first N examples")
    p.add_argument("--batch-size", "-b", type=int, default=8, help="sequences per forward pass (default: 8)")
    p.add_argument("--stride", type=int, default=None,
                   help="rolling-window stride for language-modelling tasks (default: half the context)")
    p.add_argument("--shots", type=int, default=5,
                   help="translate and qa: rows of the file used as examples in the prompt (default: 5)")
    p.add_argument("--seed", type=int, default=0, help="summarize: seed of the top-k sampling (default: 0)")
    p.add_argument("--no-detokenize", action="store_true",
                   help="score WikiText/PTB/CBT text as tokenized instead of de-tokenized")
    p.add_argument("--out", "-o", default=None, metavar="DIR",
                   help="write results.json and results.md here (merged with earlier runs of the same model)")
    p.add_argument("--protocol", choices=["paper", "lm-eval", "llm-c", "both"], default=None,
                   help="for tasks that report several definitions: lambada (paper: <|endoftext|>-conditioned, "
                   "the default; lm-eval: lambada_openai's) and hellaswag (lm-eval, the default; llm-c: llm.c's). "
                   "both computes every one, at one scoring pass each; results.json lists those computed")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    _options.add_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gpt2.errors import DataError
    from gpt2.evaluation import TASKS, resolve_data_path
    from gpt2.evaluation.report import TABLE3
    from gpt2.evaluation.tasks import check_protocols
    from gpt2.memory import retain_freed_memory

    paper = [task for task in TABLE3 if TASKS[task].default_path is not None]
    tasks = list(dict.fromkeys(t for name in args.task for t in (paper if name == "paper" else [name])))
    if args.data_path is not None and len(tasks) > 1:
        raise DataError("--data-path names one file, so it takes one --task; use GPT2_DATA_DIR for several")
    checks = (("--limit", args.limit), ("--batch-size", args.batch_size), ("--stride", args.stride))
    for name, value in checks:
        if value is not None and value < 1:
            raise DataError(f"{name} must be a positive integer, got {value}")
    if args.shots < 0:
        raise DataError(f"--shots must be 0 or more, got {args.shots}")

    check_protocols(tasks, args.protocol)
    _options.check(args)  # a wrong --model fails before any benchmark file is fetched
    paths = {task: resolve_data_path(task, args.data_path) for task in tasks}  # fail before loading a model
    model, tokenizer = _options.load(args)
    if args.stride is not None and args.stride > model.config.n_positions:
        raise DataError(f"--stride {args.stride} exceeds the context length {model.config.n_positions}")
    # On CPU each batch's logits reuse the last one's memory instead of page-faulting fresh pages in
    # (1.3x on HellaSwag with a small model); given back when the tasks are done.
    restore = retain_freed_memory() if model.device.type == "cpu" else None
    try:
        results = _run_tasks(args, tasks, paths, model, tokenizer)
    finally:
        if restore is not None:
            restore()
    _write(args, results, model)
    return 0


def _run_tasks(args, tasks, paths, model, tokenizer) -> list:
    from gpt2.evaluation import run_task

    results = []
    for task in tasks:
        result = run_task(
            task, model, tokenizer, paths[task], limit=args.limit, batch_size=args.batch_size,
            stride=args.stride, detokenize=not args.no_detokenize, progress=not args.no_progress,
            shots=args.shots, seed=args.seed, protocol=args.protocol,
        )
        results.append(result)
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
        print(f"{task}: {metrics} ({result.n_examples:,} examples, {result.runtime_s:.1f}s)", flush=True)
    return results


def _write(args, results, model) -> None:
    from gpt2.evaluation import markdown_table, write_results
    from gpt2.evaluation.report import paper_size
    from gpt2.hardware import dtype_name

    n_parameters = model.num_parameters()
    document = {
        "model": str(args.model), "model_parameters": n_parameters,
        "paper_size": paper_size(n_parameters), "tasks": {r.task: r.to_dict() for r in results},
    }
    if args.out:
        json_path, md_path = write_results(results, args.out, str(args.model), n_parameters,
                                           extra={"dtype": dtype_name(model.dtype)})
        print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    else:
        print()
        print(markdown_table(document))
