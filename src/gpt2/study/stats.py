"""The statistics of a human study, each written out so it can be checked by hand: a percentile bootstrap
CI of a mean, a human ROC from confidence, the two-proportion z-test and a rater-level permutation test for
the GLTR arm against the plain arm, and Krippendorff's alpha (nominal, ordinal, interval).

Tested against independent computations (scipy, scikit-learn, Krippendorff's own worked example) in
tests/test_study.py.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

import numpy as np


def bootstrap_mean_ci(values: Sequence[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0
                      ) -> tuple[float, float, float]:
    """(mean, low, high): the percentile bootstrap interval of the mean, resampling the values (answers)
    with replacement `n_boot` times. Answers by one rater are not independent; this interval treats them
    as if they were, as the published studies' per-condition means do."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(x.mean()), float(low), float(high)


def human_score(origin: str, confidence: int | None) -> float:
    """A rater's answer as a detector score (higher = more machine): +confidence for "machine",
    -confidence for "person" (confidence 1 when not asked), so confident answers sit at the ends of the
    ROC and unsure ones in the middle."""
    c = 1 if confidence is None else confidence
    return float(c if origin == "machine" else -c)


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) for H0: p1 == p2, with the pooled variance. Assumes independent answers; see
    `permutation_p` for a test that respects raters."""
    if min(n1, n2) == 0:
        return math.nan, math.nan
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (k1 / n1 - k2 / n2) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def permutation_p(a: Sequence[float], b: Sequence[float], n_perm: int = 5000, seed: int = 0) -> float:
    """Two-sided p for a difference in means between groups `a` and `b` (e.g. each rater's accuracy in the
    GLTR and the plain arm): the share of random relabellings of the pooled values whose |difference| is
    at least the observed one (counting the observed labelling, so p > 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0 or b.size == 0:
        return math.nan
    pooled = np.concatenate([a, b])
    observed = abs(a.mean() - b.mean())
    rng = np.random.default_rng(seed)
    perms = np.argsort(rng.random((n_perm, pooled.size)), axis=1)
    diffs = np.abs(pooled[perms[:, : a.size]].mean(axis=1) - pooled[perms[:, a.size:]].mean(axis=1))
    return float((1 + np.sum(diffs >= observed - 1e-12)) / (n_perm + 1))


def krippendorff_alpha(units: Sequence[Sequence[Hashable]], metric: str = "nominal") -> float:
    """Krippendorff's alpha over `units` (items), each the values its raters gave (missing ratings left
    out). Pairable values are those of units with at least two: alpha = 1 - D_o / D_e, with the observed
    disagreement D_o from the coincidence matrix o_ck (each unit's ordered pairs of values weighted by
    1 / (m_u - 1)) and the expected D_e from its margins n_c. Metrics: nominal (values equal or not),
    interval ((c - k)^2) and ordinal (the squared count of values between c and k, Krippendorff 2011)."""
    if metric not in ("nominal", "ordinal", "interval"):
        raise ValueError(f"metric must be nominal, ordinal or interval, got {metric!r}")
    pairable = [list(u) for u in units if len(u) >= 2]
    values = sorted({v for u in pairable for v in u})
    if len(values) < 2:
        return math.nan  # no variation: alpha is undefined
    index = {v: i for i, v in enumerate(values)}
    o = np.zeros((len(values), len(values)))
    for u in pairable:
        counts = np.bincount([index[v] for v in u], minlength=len(values)).astype(np.float64)
        o += (np.outer(counts, counts) - np.diag(counts)) / (len(u) - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    delta = _delta(values, n_c, metric)
    d_o = (o * delta).sum() / n
    d_e = (np.outer(n_c, n_c) * delta).sum() / (n * (n - 1))
    return float(1 - d_o / d_e)


def _delta(values: list, n_c: np.ndarray, metric: str) -> np.ndarray:
    """The squared difference function delta^2(c, k) between the sorted values."""
    k = len(values)
    if metric == "nominal":
        return 1.0 - np.eye(k)
    if metric == "interval":
        v = np.asarray(values, dtype=np.float64)
        return (v[:, None] - v[None, :]) ** 2
    cum = np.concatenate([[0.0], np.cumsum(n_c)])  # ordinal: sum of n_g for g from c to k, minus the ends' halves
    d = np.zeros((k, k))
    for c in range(k):
        for e in range(c, k):
            d[c, e] = d[e, c] = (cum[e + 1] - cum[c] - (n_c[c] + n_c[e]) / 2) ** 2
    return d
