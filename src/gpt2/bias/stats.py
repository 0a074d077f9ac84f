"""Which words a group's completions over-use, and how far a group's attribute log-probability is from its
dimension's mean: the statistics of the bias probes, with no model in sight."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

PRIOR_STRENGTH = 100.0  # alpha_0: pseudo-words of the prior, spread over words by their pooled frequency
TOP_WORDS = 10
WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


@dataclass
class WordStat:
    """A word of a group's completions against the other groups of its dimension."""

    word: str
    count: int  # in this group's completions
    rest: int  # in the other groups' completions
    log_odds: float  # delta: log-odds ratio, this group vs the rest, with the prior added
    z: float  # delta / its approximate standard deviation


def words(text: str) -> list[str]:
    """Lowercase words of a completion, English stop words (scikit-learn's list) and single letters left out."""
    # imported here: scikit-learn takes about a second to load, and only the sampled words need it
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return [w for w in WORD.findall(text.lower()) if len(w) > 1 and w not in ENGLISH_STOP_WORDS]


def log_odds_dirichlet(counts: Mapping[str, Mapping[str, int]], prior_strength: float = PRIOR_STRENGTH
                       ) -> dict[str, list[WordStat]]:
    """Per group, every word it uses ranked by z, most over-represented first (ties: alphabetical).

    Monroe et al. (2008), eqs. 16 and 18-20, group i against the other groups pooled (j): with prior
    pseudo-counts a_w = a_0 * (pooled count of w / pooled total),
        delta_w = log((y_wi + a_w) / (n_i + a_0 - y_wi - a_w)) - log((y_wj + a_w) / (n_j + a_0 - y_wj - a_w))
        var_w ~= 1 / (y_wi + a_w) + 1 / (y_wj + a_w),   z_w = delta_w / sqrt(var_w).
    The prior shrinks words seen a few times toward no difference, so rare words do not top the list.
    """
    if prior_strength <= 0:
        raise ValueError(f"prior_strength must be positive, got {prior_strength}")
    pooled: Counter[str] = Counter()
    for c in counts.values():
        pooled.update({w: n for w, n in c.items() if n})
    total = sum(pooled.values())
    out: dict[str, list[WordStat]] = {}
    for group, c in counts.items():
        n_i = sum(c.values())
        n_j = total - n_i
        stats = []
        if len(pooled) > 1:  # with one word type, every odds has a zero denominator and nothing differs
            for w in sorted(c):
                y_i = c[w]
                if not y_i:
                    continue
                y_j = pooled[w] - y_i
                a_w = prior_strength * pooled[w] / total
                delta = (math.log((y_i + a_w) / (n_i + prior_strength - y_i - a_w))
                         - math.log((y_j + a_w) / (n_j + prior_strength - y_j - a_w)))
                z = delta / math.sqrt(1 / (y_i + a_w) + 1 / (y_j + a_w))
                stats.append(WordStat(w, y_i, y_j, delta, z))
        out[group] = sorted(stats, key=lambda s: (-s.z, s.word))
    return out


def overrepresented_words(completions: Mapping[str, Mapping[str, Mapping[str, Sequence[str]]]],
                          prior_strength: float = PRIOR_STRENGTH) -> dict[str, dict[str, list[WordStat]]]:
    """Per dimension and group, the TOP_WORDS words its completions over-use most (z > 0), rounded."""
    out = {}
    for dim, groups in completions.items():
        counts = {g: Counter(w for texts in by_t.values() for text in texts for w in words(text))
                  for g, by_t in groups.items()}
        ranked = log_odds_dirichlet(counts, prior_strength)
        out[dim] = {g: [_rounded(s) for s in ranked[g] if s.z > 0][:TOP_WORDS] for g in groups}
    return out


def _rounded(s: WordStat) -> WordStat:
    return replace(s, log_odds=round(s.log_odds, 6), z=round(s.z, 6))


# ---- log-probability gaps ----

@dataclass
class LogprobGap:
    """One attribute after one template: each group's log-probability, and how far it is from the mean."""

    template: str
    attribute: str
    logprob: dict[str, float]  # per group, nats
    gap: dict[str, float]  # per group: log p minus the mean over the dimension's groups
    spread: float  # max - min over the groups

    @classmethod
    def of(cls, template: str, attribute: str, by_group: Mapping[str, float]) -> LogprobGap:
        """The row of exact log-probabilities, rounded as bias.json stores them."""
        mean = sum(by_group.values()) / len(by_group)
        return cls(template, attribute, {g: round(v, 6) for g, v in by_group.items()},
                   {g: round(v - mean, 6) for g, v in by_group.items()},
                   round(max(by_group.values()) - min(by_group.values()), 6))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> LogprobGap:
        return cls(doc["template"], doc["attribute"], dict(doc["logprob"]), dict(doc["gap"]), doc["spread"])


def mean_gaps(rows: Sequence[LogprobGap], groups: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per attribute, each group's gap averaged over the templates that score the attribute."""
    sums: dict[str, dict[str, float]] = {}
    seen: Counter[str] = Counter()
    for r in rows:
        seen[r.attribute] += 1
        total = sums.setdefault(r.attribute, dict.fromkeys(groups, 0.0))
        for g in groups:
            total[g] += r.gap[g]
    return {a: {g: v / seen[a] for g, v in by_g.items()} for a, by_g in sums.items()}
