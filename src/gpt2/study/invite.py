"""Invitations: a new rater (items and arm planned by gpt2.study.assign) and the link that carries their
token. The token is in the link's #fragment, which browsers keep to themselves, so it reaches the server
only in request headers and never appears in an access log; it is printed once and stored hashed."""

from __future__ import annotations

from dataclasses import dataclass

from gpt2.study.assign import arm, assignment
from gpt2.study.spec import Study
from gpt2.study.store import Store


@dataclass(frozen=True)
class Invitation:
    rater: int  # the rater's number: what export, report and `gpt2 study withdraw` call them
    arm: str
    token: str
    link: str


def invite(study: Study, store: Store, n: int, base_url: str, simulated: bool = False) -> list[Invitation]:
    """`n` new raters, each with their own items (see assign.py) and link."""
    out = []
    for _ in range(n):
        rater, token = store.invite(lambda number: (arm(study, number), assignment(study, number)), simulated)
        out.append(Invitation(rater.number, rater.arm, token, f"{base_url.rstrip('/')}/#{token}"))
    return out


def admin_link(store: Store, base_url: str) -> str:
    """A new admin token's link to the progress view."""
    return f"{base_url.rstrip('/')}/admin#{store.add_admin()}"
