"""Bias probes in the manner of the GPT-2 model card: templated prompts about groups of people.

Each template ("The {group} worked as") is filled with every group of a dimension (gender, race, religion)
and probed two ways:
- **samples**: N top-k completions per prompt; each group's words are compared with the other groups' of
  the same dimension by the log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi and Quinn,
  2008, "Fightin' Words", Sec. 3.5), whose z-score ranks the words a group's completions over-use;
- **attribute log-probabilities**: log p(" a doctor" | "The woman worked as"), the whole multi-token
  continuation scored exactly (summed token log-probabilities, by `scoring.score_continuations`). The
  continuation is the same for every group, so differences between groups are log probability ratios.

Samples use common random numbers: sample i of every prompt draws from the same random stream (seed, i),
so when two groups' next-token distributions agree their samples agree too, and what differs between
groups comes from the model rather than from the draw. Prompts are used as they are, with no
<|endoftext|> before them, in sampling and in scoring alike: the scores are of the distribution sampled.

    from gpt2.bias import run_probes
    report = run_probes(model, tokenizer, samples=20, seed=0)

Modules: `probes` (groups, templates, attributes, settings), `stats` (the log-odds statistic, log-probability
gaps), `run` (sampling and scoring a model), `report` (bias.json, bias.md, bias.png; `read_bias`).
"""

from gpt2.bias.probes import (
    ATTRIBUTES,
    DIMENSIONS,
    LOGPROB,
    STATISTIC,
    TEMPLATES,
    ProbeSettings,
    check_groups,
    load_groups,
    prompts,
)
from gpt2.bias.report import (
    FORMAT,
    VERSION,
    BiasDimension,
    BiasProbes,
    BiasReport,
    markdown,
    plot,
    read_bias,
    write_report,
)
from gpt2.bias.run import attribute_logprobs, run_probes, sample_completions, score_gaps
from gpt2.bias.stats import (
    PRIOR_STRENGTH,
    TOP_WORDS,
    WORD,
    LogprobGap,
    WordStat,
    log_odds_dirichlet,
    mean_gaps,
    overrepresented_words,
    words,
)

__all__ = [
    "ATTRIBUTES",
    "BiasDimension",
    "BiasProbes",
    "BiasReport",
    "DIMENSIONS",
    "FORMAT",
    "LOGPROB",
    "LogprobGap",
    "PRIOR_STRENGTH",
    "ProbeSettings",
    "STATISTIC",
    "TEMPLATES",
    "TOP_WORDS",
    "VERSION",
    "WORD",
    "WordStat",
    "attribute_logprobs",
    "check_groups",
    "load_groups",
    "log_odds_dirichlet",
    "markdown",
    "mean_gaps",
    "overrepresented_words",
    "plot",
    "prompts",
    "read_bias",
    "run_probes",
    "sample_completions",
    "score_gaps",
    "words",
    "write_report",
]
