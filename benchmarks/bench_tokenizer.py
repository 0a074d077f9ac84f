"""Tokenizer speed: `gpt2.tokenizer.Tokenizer` encoding vs raw tiktoken, and BPE training vs Hugging Face's.

    .venv/bin/python benchmarks/bench_tokenizer.py [--repeats 21] [--train-repeats 5] [--vocab-sizes 4096 8192]
    .venv/bin/python benchmarks/bench_tokenizer.py --max-bytes 20000 --vocab-sizes 512   # a seconds-long smoke run

Encoding: GPT-2's vocabulary loaded the project's way (GPT2_VOCAB_FILE=../shared/vocab/r50k_base.tiktoken,
which builds our own tiktoken Encoding from the file) against tiktoken's own `get_encoding("r50k_base")` (its
cache seeded with the same file; nothing is downloaded). Texts: WikiText-2 test (wiki.test.raw) as one
string, and its non-empty lines as a batch of short documents (encoded one call each, and with
`encode_batch`, both sides with tiktoken's default 8 threads). Each case compares the same semantics:
`encode` (<|endoftext|> as plain text) with tiktoken's `encode_ordinary`, `allowed_special="all"` with
tiktoken's `encode(allowed_special="all")`. Reported: UTF-8 MB / median wall time over --repeats, after a
warm-up, the two sides run in turn; ratio = ours / tiktoken throughput (target >= 0.90); and whether the ids
are identical.

Training: `Tokenizer.train` (what `gpt2 tokenizer train` runs; documents read as that command reads them)
against Hugging Face `tokenizers`' own ByteLevel BPE recipe on the same documents (models.BPE,
ByteLevel pre-tokenizer, BpeTrainer with the byte alphabet, min_frequency 2, <|endoftext|> as a special
token), per corpus and vocabulary size. "train" times the training call alone; "train+save" adds writing
the files (ours: `save_pretrained`, HF: tokenizer.json + vocab.json + merges.txt). Ratio = ours / HF time
(target <= 2.0). "same tokens": whether both learned the same set of token byte strings.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from functools import partial
from pathlib import Path

from _machine import machine_details, time_alternately

SHARED = Path(__file__).resolve().parents[2] / "shared"
VOCAB_FILE = SHARED / "vocab" / "r50k_base.tiktoken"
R50K_CACHE_NAME = "0ea1e91bbb3a60f729a8dc8f777fd2fc07cd8df4"  # sha1 of tiktoken's r50k_base URL
WIKITEXT2_TEST = SHARED / "data" / "wikitext2" / "wiki.test.raw"
CORPORA = {
    "shakespeare": SHARED / "data" / "tinyshakespeare" / "input.txt",
    "wikitext2-test": WIKITEXT2_TEST,
}


def load_encoders():
    """(ours, tiktoken's r50k_base), both from ../shared/vocab, offline."""
    import tiktoken

    from gpt2.tokenizer import Tokenizer

    cache = Path(tempfile.mkdtemp(prefix="tiktoken-cache-"))
    shutil.copyfile(VOCAB_FILE, cache / R50K_CACHE_NAME)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    os.environ["GPT2_VOCAB_FILE"] = str(VOCAB_FILE)
    return Tokenizer.from_pretrained("gpt2"), tiktoken.get_encoding("r50k_base")


def bench_encode(text: str, repeats: int) -> None:
    ours, ref = load_encoders()
    docs = [line for line in text.split("\n") if line.strip()]
    n_text, n_docs = len(text.encode()), sum(len(d.encode()) for d in docs)
    cases = [  # (name, bytes, ours, reference)
        ("one text, encode", n_text, lambda: ours.encode(text), lambda: ref.encode_ordinary(text)),
        ("one text, allowed_special=all", n_text, lambda: ours.encode(text, allowed_special="all"),
         lambda: ref.encode(text, allowed_special="all")),
        ("docs, encode each", n_docs, lambda: [ours.encode(d) for d in docs],
         lambda: [ref.encode_ordinary(d) for d in docs]),
        ("docs, encode_batch", n_docs, lambda: ours.encode_batch(docs), lambda: ref.encode_ordinary_batch(docs)),
        ("docs, encode_batch all", n_docs, lambda: ours.encode_batch(docs, allowed_special="all"),
         lambda: ref.encode_batch(docs, allowed_special="all")),
    ]
    n_tokens = len(ref.encode_ordinary(text))
    print(f"Encoding: WikiText-2 test, {n_text / 1e6:.2f} MB, {n_tokens:,} tokens as one text; "
          f"{len(docs):,} non-empty lines ({n_docs / len(docs):.0f} bytes each on average) as documents. "
          f"Median of {repeats} after a warm-up, alternating.\n")
    print(f"{'case':<30} {'ours MB/s':>10} {'tiktoken MB/s':>14} {'ours/tiktoken':>14} {'same ids':>9}")
    for name, n_bytes, fn_ours, fn_ref in cases:
        (t_ours, t_ref), (out_ours, out_ref) = time_alternately([fn_ours, fn_ref], repeats)
        print(f"{name:<30} {n_bytes / 1e6 / t_ours:>10.2f} {n_bytes / 1e6 / t_ref:>14.2f} "
              f"{t_ref / t_ours:>13.3f}x {'yes' if out_ours == out_ref else 'NO':>9}")
    print()


def train_hf(docs: list[str], vocab_size: int):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|endoftext|>"])
    hf.train_from_iterator(docs, trainer)
    return hf


def save_hf(hf, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    hf.save(str(directory / "tokenizer.json"))
    hf.model.save(str(directory))  # vocab.json + merges.txt


def train_save_ours(docs: list[str], vocab_size: int, directory: Path) -> None:
    """What `gpt2 tokenizer train` does once it has read the documents."""
    from gpt2.tokenizer import Tokenizer

    Tokenizer.train(iter(docs), vocab_size).save_pretrained(directory)


def train_save_hf(docs: list[str], vocab_size: int, directory: Path) -> None:
    save_hf(train_hf(docs, vocab_size), directory)


def bench_train(corpora: dict[str, Path], vocab_sizes: list[int], repeats: int, max_bytes: int | None) -> None:
    from gpt2.data import read_documents
    from gpt2.tokenizer import Tokenizer
    from gpt2.tokenizer.vocab_files import unicode_to_token

    out = Path(tempfile.mkdtemp(prefix="bench-tokenizer-"))
    print(f"Training: median of {repeats} after a warm-up, alternating; ratio = ours / HF time.\n")
    print(f"{'corpus':<15} {'MB':>5} {'vocab':>6} {'step':<11} {'ours s':>8} {'HF s':>8} {'ours/HF':>8} "
          f"{'same tokens':>12}")
    for corpus, path in corpora.items():
        docs = list(read_documents(path))  # as `gpt2 tokenizer train` reads a .txt file: one document
        if max_bytes:
            docs = [d[:max_bytes] for d in docs]
        mb = sum(len(d.encode()) for d in docs) / 1e6
        for vocab_size in vocab_sizes:
            fns = [partial(Tokenizer.train, docs, vocab_size), partial(train_hf, docs, vocab_size),
                   partial(train_save_ours, docs, vocab_size, out / "ours"),
                   partial(train_save_hf, docs, vocab_size, out / "hf")]
            (t_ours, t_hf, s_ours, s_hf), (tok, hf, _, _) = time_alternately(fns, repeats)
            hf_tokens = {unicode_to_token(t, path) for t in hf.get_vocab() if t != "<|endoftext|>"}
            same = set(tok.mergeable_ranks()) == hf_tokens and tok.vocab_size == hf.get_vocab_size()
            for step, a, b in [("train", t_ours, t_hf), ("train+save", s_ours, s_hf)]:
                print(f"{corpus:<15} {mb:>5.2f} {vocab_size:>6} {step:<11} {a:>8.3f} {b:>8.3f} {a / b:>7.2f}x "
                      f"{'yes' if same else 'NO':>12}")
    shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=21, help="encoding runs per case")
    parser.add_argument("--train-repeats", type=int, default=5, help="training runs per case")
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--corpora", nargs="+", choices=list(CORPORA), default=list(CORPORA))
    parser.add_argument("--max-bytes", type=int, default=None, help="cut every text to this many characters")
    parser.add_argument("--skip", choices=["encode", "train"], default=None)
    args = parser.parse_args()
    for path in [VOCAB_FILE, *CORPORA.values()]:
        if not path.exists():
            sys.exit(f"{path} is absent: this benchmark needs ../shared (vocab and data) next to the project")

    print(machine_details(["tiktoken", "tokenizers"]))
    print()
    if args.skip != "encode":
        text = WIKITEXT2_TEST.read_text(encoding="utf-8")[: args.max_bytes]
        bench_encode(text, args.repeats)
    if args.skip != "train":
        bench_train({c: CORPORA[c] for c in args.corpora}, args.vocab_sizes, args.train_repeats, args.max_bytes)


if __name__ == "__main__":
    main()
