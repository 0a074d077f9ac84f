"""Corpus → token shards (`gpt2 prepare`), and the deterministic batch loader that reads them back.

A prepared directory holds
    train_000000.bin, ...   raw token ids, uint16 (uint32 when the vocabulary exceeds 65,535 ids), no header
    val_000000.bin, ...
    tokenizer/              the tokenizer that made them (its `save_pretrained` files)
    manifest.json           written last: dtype, token/document counts per split and shard, input sha256s

`prepare_corpus` writes the same from a corpus on the Hugging Face Hub (FineWeb-Edu, OpenWebText),
streamed file by file (the next fetched while one is tokenized) and resumable (gpt2.data.corpora).

Documents: a `.jsonl` line `{"text": ...}` is one document; a text file is one document, or one per
blank-line-separated paragraph (`txt_split="paragraph"`) or per line (`"line"`). Each document is written
as `<|endoftext|>` followed by its tokens, as GPT-2 and nanoGPT do, so a split is one token stream in
which the end-of-text token separates documents. Whole documents go to train or val, chosen by a hash of
(seed, document index), so the split is stable across reruns and never cuts a document in two.

    from gpt2.data import prepare, TokenDataset, BatchLoader
    prepare(["input.txt"], "gpt2", "data/shakespeare", txt_split="paragraph", val_fraction=0.1)
    loader = BatchLoader(TokenDataset("data/shakespeare", "train"), batch_size=8, seq_len=256, seed=1)
    x, y = loader.next_batch()      # (8, 256) int64 inputs and next-token targets
"""

from gpt2.data.corpora import prepare_corpus
from gpt2.data.documents import TXT_SPLITS, expand_inputs, read_documents
from gpt2.data.loader import BatchLoader, TokenDataset, eval_batches
from gpt2.data.shards import (
    DEFAULT_SHARD_TOKENS,
    DEFAULT_VAL_FRACTION,
    MANIFEST,
    SPLITS,
    TOKENIZER_DIR,
    is_validation,
    load_manifest,
    prepare,
    token_dtype,
)

__all__ = [
    "BatchLoader", "DEFAULT_SHARD_TOKENS", "DEFAULT_VAL_FRACTION", "MANIFEST", "SPLITS", "TOKENIZER_DIR",
    "TXT_SPLITS", "TokenDataset", "eval_batches", "expand_inputs", "is_validation", "load_manifest",
    "prepare", "prepare_corpus", "read_documents", "token_dtype",
]
