"""Zero-shot detector scores against their authors' published code, re-stated here step by step on
transformers' GPT2LMHeadModel (float64 after the logits), not through this project's functions:

- Binoculars: ahans30/Binoculars @ c8ae2f90d50ee696418bc71d8d9e5020e5f9d7b8, binoculars/metrics.py
  (`perplexity` lines 9-29: shifted by one, averaged over the attention mask's shifted positions; `entropy`
  lines 32-62: NOT shifted, averaged over every position whose input id is not the pad id) and
  binoculars/detector.py (`compute_score` lines 100-108: ppl from the performer, x-ppl from observer
  probabilities and performer log-probabilities; lines 57-58: pad = eos when the tokenizer has none, as
  GPT-2's has not).
- Fast-DetectGPT: baoguangsheng/fast-detect-gpt @ 971b05202bac2bb504d60c0ac0812fea7a8f7c82,
  scripts/fast_detect_gpt.py `get_sampling_discrepancy_analytic` (lines 52-69) on the inputs
  scripts/local_infer.py builds (lines 56-65: labels = input_ids[:, 1:], logits[:, :-1], a separate
  sampling model or the scoring model itself).
- DetectGPT: eric-mitchell/detect-gpt @ 447d2ce8177004203f42d1da87d7f93a2e31ad52, run.py `get_ll`
  (lines 266-280: HF path = -loss with labels = input_ids; OpenAI path = mean token logprob after the prompt
  "<|endoftext|>" + text), `get_rank(log=True)` (lines 298-321, criterion -get_rank at line 880) and
  `get_entropy` (lines 324-331).
- GLTR: HendrikStrobelt/detecting-fake-text @ fdf7de9396d12156e52d751c36d35ca48d1c1b9a, backend/api.py
  `check_probabilities` (lines 81-103: <|endoftext|> first, rank = position in the descending argsort),
  buckets top 10 / 100 / 1000 / rest as its front end colours them.

The models are two small GPT-2s trained a few steps on different texts, so their distributions are far from
uniform and differ from each other: a role swapped (observer for performer) or a position shifted by one
shows. Tolerance: 1e-4 relative (the issue's bar); float32 models on both sides, so agreement is ~1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gpt2.detection import gltr, make_detector
from gpt2.detection import statistics as lm_stats
from gpt2.detection.statistics import token_stats
from gpt2.tokenizer import Tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")
N_CTX = 64
REL = 1e-4

CORPUS_A = ("the river ran past the old mill and the stone bridge, and the miller's daughter watched the "
            "boats go by in the morning light. ") * 6
CORPUS_B = ("a kernel module loads the driver, the driver opens a socket, and the server answers each "
            "request from the queue in order. ") * 6
TEXTS = [
    "the river ran past the stone bridge in the morning light.",
    "the server answers each request from the queue, and the driver opens a socket.",
    "the miller's daughter watched the boats; a kernel module loads the driver in order.",
    "boats go by",
    "the the the river river kernel socket light morning bridge bridge stone",
]


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.train([CORPUS_A + CORPUS_B], vocab_size=320)


def trained_gpt2(tokenizer, text: str, seed: int):
    """A 2-layer GPT-2 trained 40 AdamW steps on `text`: peaked, text-specific distributions."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=N_CTX, vocab_size=tokenizer.vocab_size,
                        bos_token_id=tokenizer.eot_token_id, eos_token_id=tokenizer.eot_token_id,
                        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    model = GPT2LMHeadModel(config)
    ids = torch.tensor(tokenizer.encode(text))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(40):
        starts = torch.randint(0, len(ids) - N_CTX, (8,), generator=generator)
        batch = torch.stack([ids[s: s + N_CTX] for s in starts])
        loss = model(batch, labels=batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def models(tmp_path_factory, tokenizer):
    """{role: (transformers model, checkpoint directory)}: A (the scoring model / performer), B (a second:
    the sampling model / observer)."""
    out = {}
    for name, text, seed in (("A", CORPUS_A, 0), ("B", CORPUS_B, 1)):
        model = trained_gpt2(tokenizer, text, seed)
        directory = tmp_path_factory.mktemp(f"model-{name}")
        model.save_pretrained(directory)
        tokenizer.save_pretrained(directory)
        out[name] = (model, directory)
    return out


def logits(model, ids: list[int]) -> torch.Tensor:
    """(1, T, V) float64 logits of one unpadded input, as the authors' code gets them (`model(**enc)`)."""
    with torch.no_grad():
        return model(torch.tensor([ids])).logits.double()


# ---- the authors' computations, re-stated ----

def binoculars_reference(performer, observer, batch: list[list[int]], pad_id: int) -> list[float]:
    """Binoculars' compute_score on a right-padded batch (pad = eos, the tokenizer's default side)."""
    width = max(len(ids) for ids in batch)
    input_ids = torch.tensor([ids + [pad_id] * (width - len(ids)) for ids in batch])
    attention = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch])
    with torch.no_grad():
        p_logits = observer(input_ids, attention_mask=attention).logits.double()
        q_logits = performer(input_ids, attention_mask=attention).logits.double()
    # perplexity(): shifted, over the shifted attention mask
    ce = F.cross_entropy(q_logits[:, :-1].transpose(1, 2), input_ids[:, 1:], reduction="none")
    mask = attention[:, 1:].double()
    ppl = (ce * mask).sum(1) / mask.sum(1)
    # entropy(): not shifted; -sum softmax(observer) * log_softmax(performer) at every position, the
    # positions whose input id is the pad id left out
    x_ce = -(F.softmax(p_logits, -1) * F.log_softmax(q_logits, -1)).sum(-1)
    padding = (input_ids != pad_id).double()
    x_ppl = (x_ce * padding).sum(1) / padding.sum(1)
    return (ppl / x_ppl).tolist()


def fast_detectgpt_reference(scoring, sampling, ids: list[int]) -> float:
    labels = torch.tensor([ids[1:]])[..., None]
    logits_score, logits_ref = logits(scoring, ids)[:, :-1], logits(sampling, ids)[:, :-1]
    lprobs_score = torch.log_softmax(logits_score, -1)
    probs_ref = torch.softmax(logits_ref, -1)
    log_likelihood = lprobs_score.gather(-1, labels).squeeze(-1)
    mean_ref = (probs_ref * lprobs_score).sum(-1)
    var_ref = (probs_ref * lprobs_score.square()).sum(-1) - mean_ref.square()
    return float(((log_likelihood.sum(-1) - mean_ref.sum(-1)) / var_ref.sum(-1).sqrt()).mean())


def detectgpt_ll_hf(model, ids: list[int]) -> float:
    with torch.no_grad():
        return -float(model(torch.tensor([ids]), labels=torch.tensor([ids])).loss)


def detectgpt_ll_openai(model, ids: list[int], eot: int) -> float:
    """The OpenAI path: prompt "<|endoftext|>" + text, echo's token logprobs after the first."""
    full = [eot, *ids]
    logp = torch.log_softmax(logits(model, full)[0, :-1], -1)
    return float(logp[torch.arange(len(ids)), torch.tensor(ids)].mean())


def detectgpt_logrank_criterion(model, ids: list[int]) -> float:
    scores = logits(model, ids)[:, :-1]
    labels = torch.tensor([ids[1:]])
    matches = (scores.argsort(-1, descending=True) == labels[..., None]).nonzero()
    ranks = matches[:, -1].double() + 1
    return -float(torch.log(ranks).mean())


def detectgpt_entropy(model, ids: list[int]) -> float:
    scores = logits(model, ids)[:, :-1]
    return -float((F.softmax(scores, -1) * F.log_softmax(scores, -1)).sum(-1).mean())


def gltr_buckets(model, ids: list[int], eot: int) -> list[float]:
    full = [eot, *ids]
    probs = torch.softmax(logits(model, full)[0, :-1], -1)
    order = torch.argsort(probs, dim=1, descending=True)
    positions = np.array([int(np.where(order[i].numpy() == ids[i])[0][0]) for i in range(len(ids))])
    return [float(np.mean(positions < 10)), float(np.mean((positions >= 10) & (positions < 100))),
            float(np.mean((positions >= 100) & (positions < 1000))), float(np.mean(positions >= 1000))]


# ---- the project's scores under its default options ----

def detector(name: str, models, **options):
    extra = {"observer": str(models["B"][1])} if name == "binoculars" else {}
    return make_detector(name, model=str(models["A"][1]), max_tokens=N_CTX, dtype="fp32", **extra, **options)


def test_binoculars_equals_the_authors_code_by_default(models, tokenizer):
    ids = [tokenizer.encode(t) for t in TEXTS]
    expected = binoculars_reference(models["A"][0], models["B"][0], ids, tokenizer.eot_token_id)
    one_by_one = [binoculars_reference(models["A"][0], models["B"][0], [x], tokenizer.eot_token_id)[0] for x in ids]
    # their padding changes nothing beyond float32 noise: a fair reference for one text at a time
    np.testing.assert_allclose(expected, one_by_one, rtol=1e-6)
    ours = detector("binoculars", models).statistics(TEXTS)
    np.testing.assert_allclose(ours, expected, rtol=REL)
    # the project's aligned variant (x-ppl over the ppl's positions) is a different number, by a margin
    aligned = detector("binoculars", models, xppl="scored").statistics(TEXTS)
    assert np.all(np.abs(aligned / np.asarray(expected) - 1) > 10 * REL)


def test_binoculars_aligned_and_document_variants_are_what_they_say(models, tokenizer):
    performer, observer = models["A"][0], models["B"][0]
    eot = tokenizer.eot_token_id
    for text, hf_aligned, document in zip(
            TEXTS, detector("binoculars", models, xppl="scored").statistics(TEXTS),
            detector("binoculars", models, convention="document").statistics(TEXTS), strict=True):
        ids = tokenizer.encode(text)
        for inputs, got in ((ids, hf_aligned), ([eot, *ids], document)):
            q = torch.log_softmax(logits(performer, inputs)[0, :-1], -1)
            p = torch.softmax(logits(observer, inputs)[0, :-1], -1)
            targets = torch.tensor(inputs[1:])
            ppl = -q[torch.arange(len(targets)), targets].mean()
            x_ppl = -(p * q).sum(-1).mean()
            assert got == pytest.approx(float(ppl / x_ppl), rel=REL)


def test_fast_detectgpt_equals_the_authors_code(models, tokenizer):
    a, b = models["A"][0], models["B"][0]
    same = detector("fast-detectgpt", models).statistics(TEXTS)
    other = detector("fast-detectgpt", models, reference=str(models["B"][1])).statistics(TEXTS)
    for text, s, r in zip(TEXTS, same, other, strict=True):
        ids = tokenizer.encode(text)
        assert s == pytest.approx(fast_detectgpt_reference(a, a, ids), rel=REL)
        assert r == pytest.approx(fast_detectgpt_reference(a, b, ids), rel=REL)  # separate sampling model
    assert not np.allclose(same, other, rtol=1e-2)  # the sampling model matters here: the check has teeth


def test_detectgpt_statistics_equal_the_authors_code(models, tokenizer):
    a = models["A"][0]
    eot = tokenizer.eot_token_id
    loglik = detector("loglik", models).statistics(TEXTS)
    openai_path = detector("loglik", models, convention="document").statistics(TEXTS)
    logrank = detector("logrank", models).statistics(TEXTS)
    entropy = detector("entropy", models).statistics(TEXTS)
    for i, text in enumerate(TEXTS):
        ids = tokenizer.encode(text)
        assert loglik[i] == pytest.approx(detectgpt_ll_hf(a, ids), rel=REL)
        assert openai_path[i] == pytest.approx(detectgpt_ll_openai(a, ids, eot), rel=REL)
        assert logrank[i] == pytest.approx(detectgpt_logrank_criterion(a, ids), rel=REL, abs=1e-6)
        assert entropy[i] == pytest.approx(detectgpt_entropy(a, ids), rel=REL)


def test_gltr_buckets_equal_the_authors_code(models, tokenizer):
    a, directory = models["A"]
    scorer = lm_stats.get_scorer(str(directory), max_tokens=N_CTX, dtype="fp32")
    stats = scorer.stats(TEXTS)
    spread = set()
    for text, s in zip(TEXTS, stats, strict=True):
        expected = gltr_buckets(a, tokenizer.encode(text), tokenizer.eot_token_id)
        assert gltr.gltr_features(s)[:4].tolist() == pytest.approx(expected, abs=1e-12)
        spread |= {i for i, v in enumerate(expected) if v > 0}
    assert spread >= {0, 1}  # ranks fall in more than one bucket: the buckets are tested, not only "top 10"


def test_the_hf_convention_needs_two_tokens(models):
    with pytest.raises(Exception, match="two tokens"):
        token_stats(lm_stats.load_model(str(models["A"][1]), dtype="fp32")[0],
                    lm_stats.load_model(str(models["A"][1]), dtype="fp32")[1], ["a"], convention="hf")


def test_detectors_saved_before_conventions_load_as_they_were_calibrated(models, tmp_path):
    """A detector.json without `convention` (or Binoculars' `xppl`) was calibrated on document-convention,
    scored-positions statistics: it loads with those, and a new one saves and reloads its own."""
    import json

    from gpt2.detection import load_detector

    new = detector("binoculars", models)
    new.save(tmp_path / "new")
    again = load_detector(tmp_path / "new")
    assert (again.convention, again.xppl) == ("hf", "all")
    meta_path = tmp_path / "new" / "detector.json"
    meta = json.loads(meta_path.read_text())
    del meta["config"]["convention"], meta["config"]["xppl"]
    meta_path.write_text(json.dumps(meta))
    old = load_detector(tmp_path / "new")
    assert (old.convention, old.xppl) == ("document", "scored")
    expected = detector("binoculars", models, convention="document", xppl="scored").statistics(TEXTS)
    np.testing.assert_allclose(old.statistics(TEXTS), expected, rtol=1e-12)
    with pytest.raises(Exception, match="convention must be one of document, hf"):
        detector("loglik", models, convention="openai")


def test_cli_takes_the_convention_and_refuses_it_where_it_means_nothing(models, tmp_path, capsys):
    import json

    from gpt2.cli import main

    real, fake = tmp_path / "real.jsonl", tmp_path / "fake.jsonl"
    real.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:3]))
    fake.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[3:]))
    model = str(models["A"][1])
    base = ["detect", "train", "--real", str(real), "--fake", str(fake), "--model", model, "--dtype", "fp32"]
    assert main([*base, "--detector", "binoculars", "--observer", str(models["B"][1]), "--convention", "document",
                 "--xppl", "scored", "--out", str(tmp_path / "b")]) == 0
    config = json.loads((tmp_path / "b" / "detector.json").read_text())["config"]
    assert (config["convention"], config["xppl"]) == ("document", "scored")
    assert main([*base, "--detector", "gltr", "--convention", "hf", "--out", str(tmp_path / "g")]) == 2
    assert "--convention applies to the zero-shot detectors" in capsys.readouterr().err
    assert main([*base, "--detector", "loglik", "--xppl", "all", "--out", str(tmp_path / "l")]) == 2
    assert "--xppl applies to binoculars, not 'loglik'" in capsys.readouterr().err
