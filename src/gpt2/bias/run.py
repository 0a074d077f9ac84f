"""Running the bias probes on a model: sampled completions of every prompt, and the exact log-probability of
every attribute after every template (see gpt2.bias for the method).

    from gpt2.bias import run_probes
    report = run_probes(model, tokenizer, samples=20, seed=0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tqdm.auto import tqdm

from gpt2.bias.probes import (
    ATTRIBUTES,
    DIMENSIONS,
    LOGPROB,
    STATISTIC,
    TEMPLATES,
    ProbeSettings,
    check_groups,
    prompts,
)
from gpt2.bias.report import BiasReport
from gpt2.bias.stats import PRIOR_STRENGTH, LogprobGap, overrepresented_words
from gpt2.errors import DataError
from gpt2.sampling import SamplingError, generate_text
from gpt2.scoring import score_continuations


def run_probes(
    model,
    tokenizer,
    *,
    samples: int = 20,
    seed: int = 0,
    max_new_tokens: int = 24,
    top_k: int = 40,
    dimensions: Mapping[str, Sequence[str]] | None = None,
    templates: Mapping[str, str | None] | None = None,
    attributes: Mapping[str, Sequence[str]] | None = None,
    prior_strength: float = PRIOR_STRENGTH,
    batch_size: int = 8,
    progress: bool = False,
) -> BiasReport:
    """Sample and score every probe (same inputs and seed: same report)."""
    dimensions, templates, attributes = _checked(samples, dimensions, templates, attributes)
    completions = sample_completions(model, tokenizer, dimensions, templates, samples=samples, seed=seed,
                                     max_new_tokens=max_new_tokens, top_k=top_k, progress=progress)
    overrepresented = overrepresented_words(completions, prior_strength)
    gaps = score_gaps(model, tokenizer, dimensions, templates, attributes, batch_size=batch_size, progress=progress)
    settings = ProbeSettings(samples=samples, seed=seed, top_k=top_k, max_new_tokens=max_new_tokens, stop="\n",
                             prior_strength=prior_strength, statistic=STATISTIC, logprob=LOGPROB)
    return BiasReport(
        model_parameters=model.num_parameters() if hasattr(model, "num_parameters") else None,
        settings=settings, dimensions=dimensions, templates=templates, attributes=attributes,
        overrepresented=overrepresented, logprob_gaps=gaps, completions=completions,
    )


def _checked(samples: int, dimensions: Mapping[str, Sequence[str]] | None,
             templates: Mapping[str, str | None] | None, attributes: Mapping[str, Sequence[str]] | None
             ) -> tuple[dict[str, list[str]], dict[str, str | None], dict[str, list[str]]]:
    """The probes' groups, templates and attribute lists (defaults filled in), checked before any work."""
    dimensions = check_groups(dict(dimensions or DIMENSIONS))
    templates = dict(templates or TEMPLATES)
    attributes = dict(attributes or ATTRIBUTES)
    if not isinstance(samples, int) or samples < 1:
        raise SamplingError(f"samples must be an integer >= 1; got {samples!r}")
    for t, a in templates.items():
        if "{group}" not in t:
            raise DataError(f"template {t!r} has no {{group}} placeholder")
        if a is not None and a not in attributes:
            raise DataError(f"template {t!r} scores attribute list {a!r}, which is not one of {sorted(attributes)}")
    return dimensions, templates, attributes


def sample_completions(model, tokenizer, dimensions: Mapping[str, Sequence[str]], templates: Sequence[str], *,
                       samples: int, seed: int, max_new_tokens: int, top_k: int, progress: bool = False
                       ) -> dict[str, dict[str, dict[str, list[str]]]]:
    """dimension -> group -> template -> `samples` completions, each ending at the end of its line."""
    completions: dict[str, dict[str, dict[str, list[str]]]] = {d: {g: {} for g in gs} for d, gs in dimensions.items()}
    probes = prompts(dimensions, list(templates))
    for dim, group, template in tqdm(probes, desc="sampling", unit="prompt", disable=not progress):
        out = generate_text(model, tokenizer, template.format(group=group), max_new_tokens=max_new_tokens,
                            top_k=top_k, num_samples=samples, seed=seed, stop="\n")
        completions[dim][group][template] = [s.text for s in out]
    return completions


def attribute_logprobs(model, tokenizer, requests: Sequence[tuple[str, str]], batch_size: int = 8,
                       progress: bool = False) -> list[float]:
    """log p(" " + attribute | prompt) in nats for each (prompt, attribute), summed over its tokens."""
    encoded = [(tokenizer.encode(prompt), tokenizer.encode(" " + attr)) for prompt, attr in requests]
    scores = score_continuations(model, encoded, batch_size=batch_size, progress=progress, desc="attributes")
    return [s.logprob for s in scores]


def score_gaps(model, tokenizer, dimensions: Mapping[str, Sequence[str]], templates: Mapping[str, str | None],
               attributes: Mapping[str, Sequence[str]], batch_size: int = 8, progress: bool = False
               ) -> dict[str, list[LogprobGap]]:
    """Per dimension, a row per (template, attribute), widest spread first; all scored in one pass."""
    keys = [(dim, t, a, g) for dim, groups in dimensions.items() for t, name in templates.items() if name
            for a in attributes[name] for g in groups]
    values = attribute_logprobs(model, tokenizer, [(t.format(group=g), a) for _, t, a, g in keys],
                                batch_size=batch_size, progress=progress)
    table: dict[tuple[str, str, str], dict[str, float]] = {}
    for (dim, t, a, g), v in zip(keys, values, strict=True):
        table.setdefault((dim, t, a), {})[g] = v
    gaps: dict[str, list[LogprobGap]] = {dim: [] for dim in dimensions}
    for (dim, t, a), by_group in table.items():
        gaps[dim].append(LogprobGap.of(t, a, by_group))
    for rows in gaps.values():
        rows.sort(key=lambda r: (-r.spread, r.template, r.attribute))
    return gaps
