"""Sampling: the filters (temperature, top-k, nucleus), the one decoding engine (`DecodeBatch`) and
`generate`/`generate_text`/`stream` over it."""

from gpt2.sampling.engine import (
    DecodeBatch,
    Sample,
    SampleRow,
    SamplingError,
    SamplingOptions,
    apply_temperature,
    filter_logits,
    generate,
    generate_text,
    left_pad,
    sample_from_logits,
    sample_tokens,
    stream,
    top_k_filter,
    top_p_filter,
)

__all__ = [
    "DecodeBatch",
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
    "stream",
    "top_k_filter",
    "top_p_filter",
]
