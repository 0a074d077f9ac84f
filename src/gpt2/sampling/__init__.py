"""Sampling: `GenerationConfig` (options.py), the logit filters (filters.py), the one decoding engine,
`DecodeBatch` (engine.py), and `generate`/`generate_text`/`stream` over it (generation.py)."""

from gpt2.sampling.engine import DecodeBatch, SampleRow, left_pad, sample_tokens
from gpt2.sampling.filters import (
    apply_temperature,
    filter_logits,
    sample_from_logits,
    sample_top_k,
    top_k_filter,
    top_p_filter,
)
from gpt2.sampling.generation import Sample, generate, generate_text, stream
from gpt2.sampling.options import MODEL_EOS, GenerationConfig, SamplingError, SamplingOptions

__all__ = [
    "MODEL_EOS",
    "DecodeBatch",
    "GenerationConfig",
    "Sample",
    "SampleRow",
    "SamplingError",
    "SamplingOptions",
    "apply_temperature",
    "filter_logits",
    "generate",
    "generate_text",
    "left_pad",
    "sample_from_logits",
    "sample_tokens",
    "sample_top_k",
    "stream",
    "top_k_filter",
    "top_p_filter",
]
