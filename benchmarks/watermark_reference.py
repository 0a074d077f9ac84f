"""Our watermark against the authors' reference, jwkirchenbauer/lm-watermarking, on one tiny random model and
key: the green-list bias on the same logits, and z-scores of the same watermarked (and plain) sequences.

    python benchmarks/watermark_reference.py                           # their logic, re-stated below
    python benchmarks/watermark_reference.py --reference-repo DIR      # their code itself, from a checkout

Their code is not vendored and is not on PyPI. With --reference-repo (a checkout of
https://github.com/jwkirchenbauer/lm-watermarking; its requirements: torch, transformers, tokenizers, scipy)
the script imports `extended_watermark_processor` from it and runs their `WatermarkLogitsProcessor.__call__`
and `WatermarkDetector._score_sequence`. Without it, `restated_score_sequence` and `restated_bias` below
follow their code step by step, at commit fb602de9f5ac4d70099e43d3c0d7ce93616a78b3:

- alternative_prf_schemes.py L39-44: "lefthash" (= "simple_1") is additive_prf, context width 1, no
  self-salt, hash_key 15485863; L81-82: additive_prf(ids, salt) = salt * ids.sum().
- extended_watermark_processor.py L61-69 `_seed_rng`: rng.manual_seed(prf(ids[-h:], salt) % (2**64 - 1));
  L71-81 `_get_greenlist_ids`: torch.randperm(vocab_size, generator=rng)[:int(vocab_size * gamma)];
  L129-139 and L170-197 `__call__`: scores[green] += delta for each row (its whole input_ids as context).
- L305-322 `_score_ngrams_in_passage`: the (h+1)-grams of the ids, counted (collections.Counter); each
  distinct one's last token checked against the green list its prefix seeds; L353-380 `_score_sequence`:
  with ignore_repeated_ngrams T = the number of distinct n-grams and green = how many of them are green,
  else T = all n-grams (len(ids) - h) and green weighted by count; L286-296: z = (green - gamma T) /
  sqrt(T gamma (1 - gamma)), p = scipy.stats.norm.sf(z).

Ours (gpt2.sampling.watermark) is run with seeding="lefthash" and the key "15485863" (their salt), so the
green lists must be the same lists; the z-scores must agree to 1e-9 (both are float64 arithmetic on the
same integer counts), and the biased logits exactly.
"""

from __future__ import annotations

import argparse
import collections
import math
import sys
from pathlib import Path

import torch

from gpt2 import GPT, GPTConfig
from gpt2.sampling import Watermark, generate, score_ids

SALT = 15485863
TOLERANCE = 1e-9


def restated_greenlist(prefix: list[int], vocab_size: int, gamma: float) -> torch.Tensor:
    rng = torch.Generator()
    rng.manual_seed((SALT * sum(prefix)) % (2**64 - 1))  # additive_prf, _seed_rng
    return torch.randperm(vocab_size, generator=rng)[: int(vocab_size * gamma)]


def restated_bias(input_ids: torch.Tensor, scores: torch.Tensor, gamma: float, delta: float) -> torch.Tensor:
    scores = scores.clone()
    for b, seq in enumerate(input_ids):
        green = restated_greenlist(seq[-1:].tolist(), scores.size(-1), gamma)
        mask = torch.zeros(scores.size(-1), dtype=torch.bool)
        mask[green] = True
        scores[b][mask] = scores[b][mask] + delta
    return scores


def restated_score_sequence(ids: list[int], vocab_size: int, gamma: float, ignore_repeated: bool) -> float:
    h = 1
    table = collections.Counter(zip(*[ids[i:] for i in range(h + 1)], strict=False))  # ngrams(ids, h + 1)
    lookup = {g: int(g[-1] in restated_greenlist(list(g[:-1]), vocab_size, gamma).tolist()) for g in table}
    if ignore_repeated:
        scored, green = len(table), sum(lookup.values())
    else:
        scored = sum(table.values())
        green = sum(n * lookup[g] for g, n in table.items())
    return (green - gamma * scored) / math.sqrt(scored * gamma * (1 - gamma))


def their_code(repo: Path, vocab_size: int, gamma: float, delta: float):
    sys.path.insert(0, str(repo))
    from extended_watermark_processor import WatermarkDetector, WatermarkLogitsProcessor  # their checkout

    processor = WatermarkLogitsProcessor(vocab=list(range(vocab_size)), gamma=gamma, delta=delta,
                                         seeding_scheme="lefthash")
    detectors = {flag: WatermarkDetector(vocab=list(range(vocab_size)), gamma=gamma, delta=delta,
                                         seeding_scheme="lefthash", device="cpu", tokenizer=object(),
                                         normalizers=[], ignore_repeated_ngrams=flag) for flag in (True, False)}

    def bias(input_ids, scores):
        return processor(input_ids, scores.clone())

    def score(ids, ignore_repeated):
        result = detectors[ignore_repeated]._score_sequence(torch.tensor(ids), return_z_at_T=False)
        return float(result["z_score"])

    return bias, score


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference-repo", type=Path, default=None, help="a checkout of lm-watermarking")
    p.add_argument("--sequences", type=int, default=8)
    p.add_argument("--tokens", type=int, default=200)
    p.add_argument("--gamma", type=float, default=0.25)
    p.add_argument("--delta", type=float, default=2.0)
    args = p.parse_args()
    torch.manual_seed(0)
    vocab = 1000
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=64, n_positions=256, vocab_size=vocab)).eval()
    with torch.no_grad():  # sharper than the 0.02 init, so that not every watermarked token is green
        model.transformer.wte.weight.mul_(6)
    ours = Watermark(str(SALT), gamma=args.gamma, delta=args.delta, seeding="lefthash")
    if args.reference_repo:
        bias, score = their_code(args.reference_repo, vocab, args.gamma, args.delta)
        source = f"their code ({args.reference_repo})"
    else:
        def bias(input_ids, scores):
            return restated_bias(input_ids, scores, args.gamma, args.delta)

        def score(ids, ignore_repeated):
            return restated_score_sequence(ids, vocab, args.gamma, ignore_repeated)
        source = "their _score_sequence re-stated (commit fb602de)"

    contexts = torch.randint(0, vocab, (16, 5))
    logits = torch.randn(16, vocab)
    same_bias = torch.equal(ours.apply(logits, contexts.tolist()), bias(contexts, logits))
    print(f"reference: {source}\ngreen-list bias on 16 rows of random logits: {'equal' if same_bias else 'DIFFERENT'}")

    prompts = [[int(t)] for t in torch.randint(0, vocab, (args.sequences,))]
    worst = 0.0
    print("| sequence | watermark | repeats | ours z | reference z | abs diff |\n| --- | --- | --- | --- | --- | --- |")
    for marked in (True, False):
        samples = generate(model, prompts, max_new_tokens=args.tokens, top_k=40, seed=1, eos_token_id=None,
                           watermark=ours if marked else None)
        for i, s in enumerate(samples):
            ids = prompts[i] + s.tokens
            for ignore in (True, False):
                z_ours = score_ids(ids, ours, vocab, ignore_repeated=ignore).z
                z_ref = score(ids, ignore)
                worst = max(worst, abs(z_ours - z_ref))
                print(f"| {i} | {'yes' if marked else 'no'} | {'once' if ignore else 'all'} | {z_ours:.6f} | "
                      f"{z_ref:.6f} | {abs(z_ours - z_ref):.1e} |")
    ok = same_bias and worst <= TOLERANCE
    print(f"largest |z difference| {worst:.2e} (tolerance {TOLERANCE:g}): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
