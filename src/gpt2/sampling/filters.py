"""Logit filters and the inverse-CDF draw: pure functions on next-token logits (B, V).

The filters compose in the order HF and openai/gpt-2 use: temperature -> top-k -> top-p; a removed token's
logit becomes -inf. A draw picks, per row, the first token whose cumulative probability (in float64)
exceeds a given uniform number, so a row's token depends only on its logits and its own random number.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Probability mass within this of p counts as reaching it, so that rounding (e.g. float32 log-probabilities
# of a distribution whose head sums to exactly p) does not add a token to the nucleus.
_MASS_TOLERANCE = 1e-6
# Top-k sampling looks at k + this many candidates, so that tokens tied at the k-th value (common with
# bfloat16 logits) are all seen and the filter's tie rule can be applied without a full-vocabulary pass.
_TIE_ROOM = 24


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide by the temperature; temperature 0 keeps only the argmax (greedy; first index on ties)."""
    if temperature == 0:
        keep = F.one_hot(logits.argmax(-1), logits.size(-1)).bool()
        return logits.masked_fill(~keep, float("-inf"))
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits per row. Ties at the k-th value go to the lowest token ids, so exactly
    k tokens remain (min(k, V))."""
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    above = logits > kth
    at = logits == kth
    room = k - above.sum(-1, keepdim=True)  # how many of the tied tokens fit
    keep = above | (at & (at.cumsum(-1) <= room))
    return logits.masked_fill(~keep, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability mass reaches p
    (at least one token; p=1 keeps all). Ties in probability are ordered by token id."""
    if p >= 1:
        return logits
    probs, order = torch.sort(logits.double().softmax(-1), dim=-1, descending=True, stable=True)
    mass_before = F.pad(probs.cumsum(-1)[..., :-1], (1, 0))  # mass of the more likely tokens
    keep_sorted = mass_before < p - _MASS_TOLERANCE
    keep_sorted[..., 0] = True
    keep = torch.zeros_like(keep_sorted).scatter_(-1, order, keep_sorted)
    return logits.masked_fill(~keep, float("-inf"))


def filter_logits(
    logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:
    """Temperature, then top-k, then top-p (the order of HF's and openai/gpt-2's samplers)."""
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


def sample_from_logits(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Token per row by inverse CDF: the first token whose cumulative probability exceeds `uniforms` (B,)."""
    cdf = logits.double().softmax(-1).cumsum(-1)
    u = uniforms.to(cdf.device, torch.float64).unsqueeze(-1) * cdf[:, -1:]
    # right=True skips zero-probability tokens (filtered out) even when u is exactly a CDF value.
    return torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp(max=logits.size(-1) - 1)


def sample_top_k(logits: torch.Tensor, uniforms: torch.Tensor, temperature: float, top_k: int | None,
                 top_p: float | None) -> torch.Tensor | None:
    """`sample_from_logits(filter_logits(logits.double(), ...), uniforms)` computed on the top-k tokens only.

    The full-vocabulary path spends most of a batched step's sampling time on float64 passes over
    (B, 50257) logits of which all but k are -inf. Here the one full pass is topk in the logits' own dtype:
    dividing by a temperature in float64 preserves the order of float32/bfloat16 values, so the kept set
    (ties at the k-th value going to the lowest ids) is the same; the kept logits, in token-id order, then
    go through the same float64 temperature, top-p and inverse-CDF steps. The probabilities agree with the
    full path's up to float64 rounding. Returns None where this does not apply (no top-k, greedy, extreme
    temperatures, non-finite logits, more ties at the k-th value than the candidates hold); the caller
    then takes the full path.
    """
    B, V = logits.shape
    if top_k is None or top_k >= V or not 1e-200 <= temperature <= 1e200:
        return None
    n = min(V, top_k + _TIE_ROOM)
    vals, idx = torch.topk(logits, n, dim=-1)  # descending; tied tokens in no particular order
    kth = vals[:, top_k - 1 : top_k]
    if not bool(torch.isfinite(vals[:, :top_k]).all()) or (n < V and bool((vals[:, -1:] == kth).any())):
        return None
    # The filter keeps the tokens above the k-th value and, of those equal to it, the lowest ids.
    above = vals > kth
    room = top_k - above.sum(-1, keepdim=True)
    tied = torch.where(vals == kth, idx, V).sort(dim=-1).values
    tied = tied.masked_fill(torch.arange(n, device=idx.device) >= room, V)
    idx = torch.cat([torch.where(above, idx, V), tied], dim=-1).sort(dim=-1).values[:, :top_k]  # id order
    kept = logits.gather(-1, idx).double() / temperature
    if top_p is not None:
        kept = top_p_filter(kept, top_p)
    return idx.gather(-1, sample_from_logits(kept, uniforms).unsqueeze(-1)).squeeze(-1)
