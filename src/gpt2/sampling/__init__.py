"""Sampling: `GenerationConfig` (options.py), the logit filters (filters.py), the one decoding engine,
`DecodeBatch` (engine.py), `generate`/`generate_text`/`stream` over it (generation.py), and the green-list
watermark a config may carry, with its z-test (watermark.py)."""

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
from gpt2.sampling.watermark import Watermark, WatermarkError, WatermarkScore, read_key, score_ids

__all__ = [
    "MODEL_EOS",
    "DecodeBatch",
    "GenerationConfig",
    "Sample",
    "SampleRow",
    "SamplingError",
    "SamplingOptions",
    "Watermark",
    "WatermarkError",
    "WatermarkScore",
    "apply_temperature",
    "filter_logits",
    "generate",
    "generate_text",
    "left_pad",
    "read_key",
    "sample_from_logits",
    "sample_tokens",
    "sample_top_k",
    "score_ids",
    "stream",
    "top_k_filter",
    "top_p_filter",
]
