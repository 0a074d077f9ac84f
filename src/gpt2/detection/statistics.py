"""Per-token statistics of texts under a scoring language model: what GLTR and the zero-shot detectors read.

Two conventions, as the detectors' published code reads a text (docs/detection.md):

`document`  as GPT-2 reads a document: conditioned on <|endoftext|>, so every token of the text (up to
            `max_tokens`, and at most the model's context) is predicted and scored. GLTR's code does this,
            and DetectGPT's OpenAI path (the prompt "<|endoftext|>" + text, echo's log-probs after it).
`hf`        the text as Hugging Face code feeds a tokenized text: no <|endoftext|> (GPT-2's tokenizer adds
            none), so the first token is context only and tokens 2..T are scored. DetectGPT's,
            Fast-DetectGPT's and Binoculars' code do this. Binoculars' x-ppl, as its code computes it, also
            averages the position after the last token, and leaves out every position whose input id is
            the pad id (pad = eos = <|endoftext|> for GPT-2): `TokenStats.cross_entropy_all`.

Rows of a batch are
right-padded (attention is causal, so a real token never sees the padding after it). Works with this
project's `GPT` and with transformers' `GPT2LMHeadModel` (the logits come from gpt2.scoring).
Log-softmax runs in float32 whatever the model's dtype; sums over tokens are float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gpt2.errors import DataError
from gpt2.hardware import auto_dtype, dtype_name, resolve_device
from gpt2.inference import load_for_inference
from gpt2.scoring import POSITION_CHUNK, context_length, encode_texts, row_logits


@dataclass
class TokenStats:
    """One text's tokens and, at each, statistics of the scoring model's distribution p_t."""

    ids: np.ndarray  # (T,) the text's token ids
    logprob: np.ndarray  # log p_t(x_t), nats
    rank: np.ndarray  # 1 + number of tokens strictly more likely than x_t (1 = the argmax)
    entropy: np.ndarray  # H(p_t) = -sum_v p_t(v) log p_t(v)
    expected_logprob: np.ndarray  # E_{v~q_t}[log p_t(v)], q = the reference model (p itself by default)
    var_logprob: np.ndarray  # Var_{v~q_t}[log p_t(v)]
    cross_entropy: np.ndarray | None = None  # -sum_v q_t(v) log p_t(v) with q = a second (observer) model
    # hf convention only: the cross-entropy at every input position whose input is not <|endoftext|>, the
    # one after the last token included (Binoculars' code's x-ppl positions); None in the document convention
    cross_entropy_all: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


CONVENTIONS = ("document", "hf")


def _cross_entropy(observer: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """-sum_v q(v) log p(v) per position, q = softmax of the observer's logits."""
    return -torch.linalg.vecdot(F.softmax(observer.float(), dim=-1), logp)


def _stats(logits: torch.Tensor, ids: list[int], reference: torch.Tensor | None,
           observer: torch.Tensor | None) -> TokenStats:
    """Statistics of the tokens `ids` from the logits (len(ids), V) that predict them (+ a reference's and
    an observer's at the same positions).

    Every full-vocabulary pass counts on CPU (memory-bound), so products are shared and sums fused
    (`vecdot`); with no reference, E_p[log p] is minus the entropy."""
    tgt = torch.tensor(ids, device=logits.device)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("lp", "rank", "ent", "mu", "var", "xent")}
    for a in range(0, len(ids), POSITION_CHUNK):
        b = a + POSITION_CHUNK
        logp = F.log_softmax(logits[a:b].float(), dim=-1)
        lp = logp.gather(1, tgt[a:b, None])
        p_logp = logp.exp() * logp
        entropy = -p_logp.sum(-1)
        if reference is None:
            mu, second = -entropy, torch.linalg.vecdot(p_logp, logp)
        else:
            q = F.softmax(reference[a:b].float(), dim=-1)
            mu, second = torch.linalg.vecdot(q, logp), torch.linalg.vecdot(q * logp, logp)
        parts["lp"].append(lp[:, 0])
        parts["rank"].append((logp > lp).sum(-1, dtype=torch.int32) + 1)
        parts["ent"].append(entropy)
        parts["mu"].append(mu)
        parts["var"].append((second - mu.square()).clamp(min=0))
        if observer is not None:
            parts["xent"].append(_cross_entropy(observer[a:b], logp))
    # Copies: numpy views of these small tensors were seen to keep ~20 MB per text alive (full-vocabulary
    # buffers), which added up to gigabytes over a dataset.
    cat = {k: torch.cat(v).double().cpu().numpy().copy() for k, v in parts.items() if v}
    return TokenStats(np.asarray(ids), cat["lp"], cat["rank"].astype(np.int64), cat["ent"], cat["mu"],
                      cat["var"], cat.get("xent"))


def token_stats(
    model,
    tokenizer,
    texts: Sequence[str],
    *,
    max_tokens: int | None = None,
    reference=None,
    observer=None,
    batch_tokens: int = 2048,
    progress: bool = False,
    convention: str = "document",
) -> list[TokenStats]:
    """Per-token statistics of each text under `model`, in `convention` (see the module doc). `reference`
    (Fast-DetectGPT's sampling model) replaces p by q in the expected log-prob and its variance; `observer`
    (Binoculars) adds the cross-entropy -sum q log p between the observer's q and `model`'s p. All models
    share `tokenizer`."""
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {', '.join(CONVENTIONS)}; got {convention!r}")
    n_ctx = min(context_length(m) for m in (model, reference, observer) if m is not None)
    for m in (reference, observer):
        if m is not None and m.config.vocab_size != model.config.vocab_size:
            raise DataError(f"the models' vocabularies differ ({model.config.vocab_size} vs "
                            f"{m.config.vocab_size} ids); they must share one tokenizer")
    ids = encode_texts(tokenizer, texts, n_ctx, max_tokens)
    hf = convention == "hf"
    short = next((i for i, x in enumerate(ids) if len(x) < 2), None) if hf else None
    if short is not None:
        raise DataError(f"text {short} has one token; the hf convention scores from the second token on, "
                        "so a text needs two tokens (or use the document convention)")
    models = [m for m in (model, reference, observer) if m is not None]
    out: list[TokenStats | None] = [None] * len(ids)
    bar = tqdm(total=len(ids), desc="scoring", unit="text", disable=not progress)
    eot = tokenizer.eot_token_id
    for i, logits in row_logits(models, ids, None if hf else eot, batch_tokens):
        ref = logits[1] if reference is not None else None
        obs = logits[-1] if observer is not None else None
        out[i] = _hf_stats(logits[0], ids[i], ref, obs, eot) if hf else _stats(logits[0], ids[i], ref, obs)
        bar.update(1)
    bar.close()
    return out  # type: ignore[return-value]


def _hf_stats(logits: torch.Tensor, ids: list[int], reference: torch.Tensor | None,
              observer: torch.Tensor | None, eot: int) -> TokenStats:
    """The hf convention from the logits (T, V) of the text read as it is: position t predicts token t + 1,
    so tokens 2..T are scored; the last position predicts nothing of the text, but Binoculars' code averages
    its cross-entropy too (`cross_entropy_all`, positions whose input is <|endoftext|> = pad left out)."""
    stats = _stats(logits[:-1], ids[1:], None if reference is None else reference[:-1],
                   None if observer is None else observer[:-1])
    if observer is not None:
        last = _cross_entropy(observer[-1:], F.log_softmax(logits[-1:].float(), dim=-1))
        every = np.r_[stats.cross_entropy, last.double().cpu().numpy()]
        stats.cross_entropy_all = every[np.asarray(ids) != eot]
    return stats


# ---- per-text statistics: higher = more machine-like (the literature's orientation) ----

def mean_logprob(s: TokenStats) -> float:
    """Mean log-likelihood (Solaiman et al. 2019; Gehrmann et al. 2019)."""
    return float(s.logprob.mean())


def mean_logrank(s: TokenStats) -> float:
    """Minus the mean log-rank (Mitchell et al. 2023's log-rank baseline): machine text ranks higher."""
    return float(-np.log(s.rank).mean())


def mean_entropy(s: TokenStats) -> float:
    """Mean predictive entropy, oriented as in DetectGPT's and Fast-DetectGPT's entropy baselines
    (higher = machine)."""
    return float(s.entropy.mean())


def sampling_discrepancy(s: TokenStats) -> float:
    """Fast-DetectGPT's analytic criterion (Bao et al. 2023): (log p(x) - sum_t E[log p_t]) /
    sqrt(sum_t Var[log p_t]), expectations under the sampling (reference) model."""
    return float((s.logprob.sum() - s.expected_logprob.sum()) / np.sqrt(max(s.var_logprob.sum(), 1e-12)))


XPPL_POSITIONS = ("all", "scored")


def binoculars(s: TokenStats, xppl: str = "all") -> float:
    """Binoculars (Hans et al. 2024): log-perplexity under the performer over the observer/performer
    cross-perplexity. Lower = machine; needs `token_stats(performer, ..., observer=observer)`.
    `xppl="all"` averages the cross-entropy where the authors' code does (in the hf convention: every
    non-pad input position, the one after the last token included); `"scored"` over the log-perplexity's
    own positions."""
    if s.cross_entropy is None:
        raise ValueError("binoculars needs token_stats(..., observer=...)")
    if xppl not in XPPL_POSITIONS:
        raise ValueError(f"xppl must be one of {', '.join(XPPL_POSITIONS)}; got {xppl!r}")
    cross = s.cross_entropy_all if xppl == "all" and s.cross_entropy_all is not None else s.cross_entropy
    return float(-s.logprob.mean() / cross.mean())


# ---- scoring models, loaded once per process ----

class Scorer:
    """A scoring model (+ an optional reference or observer sharing its tokenizer), with per-text
    statistics memoised so that several detectors over the same texts run the model once."""

    def __init__(self, model, tokenizer, *, reference=None, observer=None, max_tokens: int | None = None,
                 batch_tokens: int = 2048, convention: str = "document") -> None:
        self.model, self.tokenizer = model, tokenizer
        self.reference, self.observer = reference, observer
        self.max_tokens, self.batch_tokens, self.convention = max_tokens, batch_tokens, convention
        self._memo: dict[str, TokenStats] = {}

    def stats(self, texts: Sequence[str], progress: bool = False) -> list[TokenStats]:
        todo = list(dict.fromkeys(t for t in texts if t not in self._memo))
        if todo:
            new = token_stats(self.model, self.tokenizer, todo, max_tokens=self.max_tokens,
                              reference=self.reference, observer=self.observer,
                              batch_tokens=self.batch_tokens, progress=progress, convention=self.convention)
            self._memo.update(zip(todo, new, strict=True))
        return [self._memo[t] for t in texts]


def used_dtype(dtype: str, device: str) -> str:
    """The dtype `auto` stands for on this machine: what a detector's detector.json records, so that a
    threshold calibrated in one dtype is applied in that dtype elsewhere."""
    return dtype_name(auto_dtype(resolve_device(device))) if dtype == "auto" else dtype


_SCORERS: dict[tuple, Scorer] = {}
_MODELS: dict[tuple, object] = {}


def load_model(path: str, device: str = "auto", dtype: str = "auto"):
    """A checkpoint loaded once per (path, device, dtype) in this process, for scoring only (packed on CPU:
    see gpt2.inference)."""
    key = (str(path), device, dtype)
    if key not in _MODELS:
        _MODELS[key] = load_for_inference(path, device=device, dtype=dtype)
    return _MODELS[key]


def get_scorer(model: str, *, reference: str | None = None, observer: str | None = None,
               max_tokens: int | None = None, device: str = "auto", dtype: str = "auto",
               batch_tokens: int = 2048, convention: str = "document") -> Scorer:
    """The process-wide `Scorer` for these checkpoints and settings."""
    key = (str(model), reference and str(reference), observer and str(observer), max_tokens, device, dtype,
           convention)
    if key not in _SCORERS:
        m, tok = load_model(model, device, dtype)
        extra = {}
        for role, path in (("reference", reference), ("observer", observer)):
            if path is not None:
                other, other_tok = load_model(path, device, dtype)
                if other_tok.mergeable_ranks() != tok.mergeable_ranks():
                    raise DataError(f"{path}: its tokenizer differs from {model}'s; the {role} model must "
                                    "share the scoring model's tokenizer")
                extra[role] = other
        _SCORERS[key] = Scorer(m, tok, max_tokens=max_tokens, batch_tokens=batch_tokens, convention=convention,
                               **extra)
    return _SCORERS[key]
