"""Which items rater number n reads, in which order, and in which arm: balanced and reproducible.

Balance: every rater reads the same number of items from each source (items_per_rater split evenly; when
it does not divide, which sources get one more rotates with n), and walks each source's pool cyclically
from where the previous rater stopped, so items are read about equally often. Arms are assigned in
randomised blocks of two (one GLTR, one plain, in a random order per pair of raters), so the arms stay
equal in size whatever the number of raters. The order within a rater is shuffled; an attention-check
original comes in the first third and its repeat in the last third, a garbled text in between.
All of it is a function of (study seed, n); the database stores the result at invitation.
"""

from __future__ import annotations

import random

from gpt2.study.spec import ARMS, Study


def shares(study: Study, n: int) -> dict[str, int]:
    """Items from each source for rater n."""
    labels = [s["label"] for s in study.sources]
    base, extra = divmod(study.items_per_rater, len(labels))
    rotated = labels[n % len(labels):] + labels[: n % len(labels)]
    return {label: base + (1 if label in rotated[:extra] else 0) for label in labels}


def assignment(study: Study, n: int) -> list[str]:
    """Item ids for rater n (0, 1, ...), in the order they are shown."""
    rng = random.Random(f"{study.seed}/rater/{n}")
    chosen: list[str] = []
    for label, share in shares(study, n).items():
        pool = study.pool(label)
        start = sum(shares(study, m)[label] for m in range(n))  # where the raters before n stopped
        chosen += [pool[(start + j) % len(pool)].id for j in range(share)]
    rng.shuffle(chosen)
    sets = study.check_sets() if study.checks is not None else []
    if sets:
        original, repeat, garbled = sets[n % len(sets)]
        size = len(chosen)
        chosen.insert(rng.randint(0, size // 3), original.id)
        if garbled is not None:
            chosen.insert(rng.randint(size // 3 + 1, max(size // 3 + 1, 2 * size // 3)), garbled.id)
        chosen.insert(rng.randint(min(len(chosen), 2 * size // 3 + 2), len(chosen)), repeat.id)
    return chosen


def arm(study: Study, n: int) -> str:
    """'gltr' or 'plain' for rater n: randomised blocks of two; everyone 'plain' without a GLTR arm."""
    if not study.gltr_arm:
        return "plain"
    block = list(ARMS)
    random.Random(f"{study.seed}/arm/{n // 2}").shuffle(block)
    return block[n % 2]
