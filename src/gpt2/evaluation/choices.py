"""Multiple choice with a shared context, scored in one pass: each example's context is read once.

HellaSwag gives four endings to one context; scoring the (context, ending) pairs separately, as the harness
does, runs the context through the model four times. Here an example becomes one packed row,

    context  ending_1[:-1]  ending_2[:-1]  ...        (the last token of an ending is only a target)

in which every ending attends to the whole context and to its own earlier tokens, never to another ending
(a 3-d attention mask), with positions that continue from the context for each ending (so every ending sees
exactly what it would see alone). The context's last position predicts the first token of every ending, so
its logits are computed once. The vocabulary projection runs only on the scored positions. The scores equal
`gpt2.scoring.score_continuations` on the separate pairs up to float accumulation order (tested: 1e-5 nats).

An example whose context plus an ending exceeds the context length, or whose packed row would, is scored
pair by pair through `score_continuations` (which cuts the context from the left, as the harness does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gpt2.scoring import ContinuationScore, context_length, model_device, score_continuations


@dataclass
class _Packed:
    ids: list[int]  # the packed row's input ids
    positions: list[int]  # each input's position id
    segment: list[int]  # 0 = context, j + 1 = ending j's earlier tokens
    scored: list[list[int]]  # per ending, the row positions whose logits predict its tokens
    targets: list[list[int]]  # per ending, its tokens


def pack(context: Sequence[int], endings: Sequence[Sequence[int]]) -> _Packed:
    """One example as a packed row (see the module doc)."""
    ids, positions, segment = list(context), list(range(len(context))), [0] * len(context)
    scored, targets = [], []
    for j, ending in enumerate(endings, 1):
        start = len(ids)
        body = list(ending[:-1])
        ids += body
        positions += range(len(context), len(context) + len(body))
        segment += [j] * len(body)
        scored.append([len(context) - 1, *range(start, start + len(body))])
        targets.append(list(ending))
    return _Packed(ids, positions, segment, scored, targets)


def _mask(rows: list[_Packed], width: int) -> torch.Tensor:
    """(B, T, T) True where a query may attend to a key: causal, within the context or its own ending;
    padding queries see themselves only (their outputs are never read)."""
    masks = torch.zeros(len(rows), width, width, dtype=torch.bool)
    for r, row in enumerate(rows):
        n = len(row.ids)
        seg = torch.tensor(row.segment)
        causal = torch.ones(n, n, dtype=torch.bool).tril()
        masks[r, :n, :n] = causal & ((seg[None, :] == 0) | (seg[None, :] == seg[:, None]))
        masks[r, n:, n:] = torch.eye(width - n, dtype=torch.bool)
    return masks


@torch.inference_mode()
def score_choices(
    model,
    examples: Sequence[tuple[Sequence[int], Sequence[Sequence[int]]]],
    *,
    batch_size: int = 8,
    progress: bool = False,
    desc: str = "scoring",
) -> list[list[ContinuationScore]]:
    """For each `(context_ids, [ending_ids, ...])`, every ending's `ContinuationScore` given the context, as
    `score_continuations` would give it, in order. `batch_size` packed rows go through the model at once,
    longest first (rows of about the same length together). Contexts and endings must hold a token each."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    n_ctx = context_length(model)
    if not callable(getattr(model, "hidden_states", None)):  # not our GPT (e.g. transformers'): pair by pair
        return [score_continuations(model, [(c, e) for e in ends], batch_size=len(ends)) for c, ends in examples]
    packed: dict[int, _Packed] = {}
    alone: list[int] = []
    for i, (context, endings) in enumerate(examples):
        if not context or not endings or not all(endings):
            raise ValueError(f"example {i}: empty context, no endings or an empty ending")
        row = pack(context, endings)
        fits = len(row.ids) <= n_ctx and all(len(context) + len(e) <= n_ctx for e in endings)
        if fits:
            packed[i] = row
        else:
            alone.append(i)
    results: list[list[ContinuationScore] | None] = [None] * len(examples)
    order = sorted(packed, key=lambda i: -len(packed[i].ids))
    bar = tqdm(total=len(examples), desc=desc, disable=not progress, unit="ex")
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        for i, scores in zip(batch, _score_rows(model, [packed[i] for i in batch]), strict=True):
            results[i] = scores
        bar.update(len(batch))
    for i in alone:
        context, endings = examples[i]
        results[i] = score_continuations(model, [(context, e) for e in endings], batch_size=len(endings))
        bar.update(1)
    bar.close()
    return results  # type: ignore[return-value]


def _score_rows(model, rows: list[_Packed]) -> list[list[ContinuationScore]]:
    """One forward over packed rows; the scores of every ending of every row."""
    device = model_device(model)
    width = max(len(r.ids) for r in rows)
    idx = torch.zeros(len(rows), width, dtype=torch.long)
    positions = torch.zeros(len(rows), width, dtype=torch.long)
    for r, row in enumerate(rows):
        idx[r, : len(row.ids)] = torch.tensor(row.ids)
        positions[r, : len(row.ids)] = torch.tensor(row.positions)
    hidden = model.hidden_states(idx.to(device), attention_mask=_mask(rows, width).to(device),
                                 position_ids=positions.to(device))
    at = [(r, p) for r, row in enumerate(rows) for s in row.scored for p in s]
    wanted = hidden[torch.tensor([r for r, _ in at]), torch.tensor([p for _, p in at])]
    logp = F.log_softmax(model.lm_head(wanted).float(), dim=-1)
    targets = torch.tensor([t for row in rows for ts in row.targets for t in ts], device=logp.device)
    chosen = logp.gather(1, targets[:, None])[:, 0].double().cpu()
    greedy = (logp.argmax(-1) == targets).cpu()
    out, k = [], 0
    for row in rows:
        scores = []
        for ts in row.targets:
            scores.append(ContinuationScore(logprobs=chosen[k : k + len(ts)].tolist(),
                                            greedy=greedy[k : k + len(ts)].tolist()))
            k += len(ts)
        out.append(scores)
    return out
