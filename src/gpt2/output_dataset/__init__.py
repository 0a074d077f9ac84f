"""The output dataset: unconditional samples in gpt-2-output-dataset's jsonl schema, and its human side.

    from gpt2 import output_dataset as outputs
    spec = outputs.OutputSpec(name="small-117M", sampling=outputs.parse_sampling("topk:40"),
                              splits=outputs.parse_splits("8:1:1"), max_new_tokens=256, seed=0)
    outputs.generate_outputs(model, tokenizer, spec, "data/outputs")   # small-117M-k40.{train,valid,test}.jsonl

Each line is `{"id", "ended", "length", "text"}` as in OpenAI's files: `id` is the sample's index, counted
across the splits in the order train, valid, test (the originals' valid ids also start after the train
ids); `ended` says the sample stopped at <|endoftext|> rather than at `max_new_tokens`; `length` is its
number of tokens (the <|endoftext|> not counted). Every sample starts from <|endoftext|>, as the
originals do, and its randomness is a function of (seed, id) only: sample `id` is exactly sample `id` of
`gpt2 generate --seed SEED --num-samples N ""` with the same filters.

Runs are resumable: lines are appended and flushed batch by batch; a rerun reads the ids already written
(dropping a trailing partial line from a killed run) and generates only the missing ones, which, since a
sample depends only on (seed, id), gives the same files as an uninterrupted run. Work can be split into
shards (`shard=(i, n)`, or torchrun's RANK/WORLD_SIZE): shard i writes `<dataset>.<split>.shard-i-of-n.jsonl`
holding the i-th contiguous block of every split's ids, and `merge_shards` joins them into the final files.

spec.py: names, splits, shards and the manifest; jsonl.py: the files' rows; generation.py: writing samples;
shards.py: merging; human.py: the human side.
"""

from gpt2.output_dataset.generation import (
    AUTO_CACHE_BUDGET,
    MAX_AUTO_BATCH,
    Progress,
    auto_batch_size,
    generate_outputs,
    sample_rows,
)
from gpt2.output_dataset.human import HUMAN_NAME, human_chunks, write_human_side
from gpt2.output_dataset.jsonl import read_samples
from gpt2.output_dataset.shards import merge_shards
from gpt2.output_dataset.spec import (
    FORMAT_VERSION,
    SPLITS,
    OutputSpec,
    existing_seed,
    manifest_path,
    parse_sampling,
    parse_shard,
    parse_splits,
    sampling_name,
    sampling_suffix,
    split_path,
)

__all__ = [
    "AUTO_CACHE_BUDGET",
    "FORMAT_VERSION",
    "HUMAN_NAME",
    "MAX_AUTO_BATCH",
    "OutputSpec",
    "Progress",
    "SPLITS",
    "auto_batch_size",
    "existing_seed",
    "generate_outputs",
    "human_chunks",
    "manifest_path",
    "merge_shards",
    "parse_sampling",
    "parse_shard",
    "parse_splits",
    "read_samples",
    "sample_rows",
    "sampling_name",
    "sampling_suffix",
    "split_path",
    "write_human_side",
]
