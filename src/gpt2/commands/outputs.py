"""`gpt2 outputs`: the output dataset (unconditional samples in gpt-2-output-dataset's jsonl schema)."""

from __future__ import annotations

import argparse
import time

from gpt2.commands import _options, detect_watermark

EPILOG = """\
examples:
  gpt2 outputs -m out/run1 --n 1200 --split 1000:100:100 --sampling topk:40 --seed 1 --out data/outputs
      -> data/outputs/run1-k40.{train,valid,test}.jsonl   (pure: run1.*.jsonl; topp:0.9: run1-p0.9.*)
  gpt2 outputs -m gpt2 --name small-117M --n 10000 --split 0.9:0.05:0.05 --human-corpus webtext/ --out d
  gpt2 outputs ... --shard 0/4      (one of four machines; or under torchrun, RANK/WORLD_SIZE)
  gpt2 outputs --merge --out d      joins finished shards into the final files
  GPT2_WATERMARK_KEY=... gpt2 outputs -m out/run1 --watermark --n 100 --out d   watermarked samples (the
                                    manifest records gamma, delta, context width and seeding, not the key)

Each line is {"id", "ended", "length", "text"}. Rerunning the same command resumes an interrupted run
(the seed is read back from the run's manifest when --seed is left out); sample `id` depends only on
(seed, id), so the result equals an uninterrupted run and sample id k equals sample k of
`gpt2 generate --seed SEED --num-samples N ""`."""

def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "outputs", help="write an output dataset (samples in gpt-2-output-dataset's schema)",
        description="Unconditional samples from a model, split into train/valid/test jsonl files as in "
                    "OpenAI's gpt-2-output-dataset; resumable and shardable.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--name", default=None,
                   help="model name in the file names, e.g. small-117M (default: the checkpoint's "
                   "directory name)")
    p.add_argument("--n", type=int, default=None,
                   help="number of samples (default: the sum of --split counts)")
    p.add_argument("--sampling", default="topk:40", help="pure, topk:K or topp:P (default: topk:40)")
    p.add_argument("--split", default="1:0:0", metavar="TRAIN:VALID:TEST",
                   help="counts (250000:5000:5000) or fractions (0.9:0.05:0.05) (default: all train)")
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="tokens per sample at most (default: the context length minus one)")
    p.add_argument("--batch-size", "-b", type=int, default=None,
                   help="samples per batch (default: as many as a full-length KV cache of 2 GiB holds, a "
                   "quarter of the memory on a GPU; at most 64)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the run's, or a new one)")
    p.add_argument("--out", "-o", required=True, metavar="DIR", help="output directory")
    p.add_argument("--shard", default=None, metavar="I/N",
                   help="write shard I of N (default: RANK/WORLD_SIZE under torchrun, else the whole set)")
    p.add_argument("--merge", action="store_true",
                   help="join finished shards in --out (nothing is generated)")
    p.add_argument("--dataset", default=None,
                   help="with --merge: the dataset to merge (default: every one in --out)")
    p.add_argument("--human-corpus", nargs="+", default=None, metavar="FILE",
                   help="also write webtext.<split>.jsonl from these files (.txt / .jsonl / directories)")
    p.add_argument("--human-chunks", choices=("first", "all"), default="first",
                   help="per human document: its first --max-new-tokens tokens, or all pieces "
                   "(default: first)")
    p.add_argument("--human-txt-split", choices=("file", "paragraph", "line"), default="file",
                   help="what a document is in a .txt file (default: the whole file)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _options.add_options(p, model=None)
    detect_watermark.add_watermark_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from gpt2 import output_dataset as outputs
    from gpt2.errors import DataError

    if args.merge:
        names = [args.dataset] if args.dataset else sorted(
            p.name.removesuffix(".manifest.json") for p in Path(args.out).glob("*.manifest.json"))
        if not names:
            raise DataError(f"{args.out}: no *.manifest.json; nothing to merge")
        for name in names:
            for split, path in outputs.merge_shards(args.out, name).items():
                print(f"{name} {split}: {path}")
        return 0
    if args.model is None:
        raise DataError("--model is required (a checkpoint directory or hub name)")
    import torch

    watermark = detect_watermark.watermark_from_args(args)  # before the model loads
    sampling = outputs.parse_sampling(args.sampling)
    splits = outputs.parse_splits(args.split, args.n)
    shard = outputs.parse_shard(args.shard)
    model, tokenizer = _options.load(args)  # a bare cuda under torchrun is GPU LOCAL_RANK
    name = args.name or Path(str(args.model).rstrip("/")).name
    dataset = f"{name}{outputs.sampling_suffix(sampling)}"
    seed = args.seed
    if seed is None:
        seed = outputs.existing_seed(args.out, dataset)
    if seed is None:
        seed = int(torch.randint(0, 2**31, ()).item())
    spec = outputs.OutputSpec(name=name, sampling=sampling, splits=splits, seed=seed, model=str(args.model),
                              max_new_tokens=args.max_new_tokens or model.config.n_positions - 1)
    if args.human_corpus and shard[0] == 0:
        counts = outputs.write_human_side(args.human_corpus, tokenizer, splits, args.out,
                                          max_tokens=spec.max_new_tokens, mode=args.human_chunks,
                                          txt_split=args.human_txt_split)
        short = {s: f"{counts.get(s, 0)}/{n}" for s, n in splits.items() if counts.get(s, 0) < n}
        print(f"human side: {counts}" + (f" (corpus too small: {short})" if short else ""))
    start = time.perf_counter()
    result = outputs.generate_outputs(model, tokenizer, spec, args.out, batch_size=args.batch_size,
                                      shard=shard, watermark=watermark,
                                      progress=not args.no_progress)
    seconds = time.perf_counter() - start
    new = sum(result.written.values())
    where = f" shard {shard[0]}/{shard[1]}" if shard[1] > 1 else ""
    print(f"{dataset}{where}: seed {seed}, batch {result.batch_size}; {new} new samples ({result.tokens} tokens) "
          f"in {seconds:.1f}s"
          + (f", {new / seconds:.2f} samples/s, {result.tokens / seconds:.0f} tokens/s" if new else "")
          + f"; {sum(result.existing.values())} were already written")
    for split in result.written:
        print(f"  {outputs.split_path(args.out, dataset, split, shard)}")
    if shard[1] > 1:
        print(f"when every shard is done: gpt2 outputs --merge --out {args.out} --dataset {dataset}")
    return 0
