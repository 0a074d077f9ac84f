"""`gpt2 demo` end to end on a small budget: every artifact is written and the numbers are consistent."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from gpt2.demo import DemoConfig, run_demo, unigram_cross_entropy


def test_unigram_cross_entropy_matches_a_direct_count():
    train = np.array([0, 0, 1, 2, 2, 2])
    val = np.array([0, 2, 3])
    counts = np.array([2, 1, 3, 0]) + 1.0  # add-one smoothing over a 4-token vocabulary
    probs = counts / counts.sum()
    expected = -np.mean(np.log(probs[[0, 2, 3]]))
    assert unigram_cross_entropy(train, val, 4) == pytest.approx(expected, rel=1e-12)


@pytest.mark.slow
def test_demo_writes_every_artifact_and_beats_the_unigram_baseline(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small trains faster on one thread
    try:
        cfg = DemoConfig(out=str(tmp_path / "demo"), time_budget_s=25, corpus_bytes=300_000, vocab_size=512,
                         n_layer=2, n_head=2, n_embd=64, seq_len=64, batch_size=8, lr=3e-3, max_new_tokens=12)
        summary = run_demo(cfg, progress=False, log=lambda *_: None)
    finally:
        torch.set_num_threads(threads)

    out = tmp_path / "demo"
    for name in ("summary.json", "samples.md", "tokenizer/tokenizer.json", "data/manifest.json",
                 "run/metrics.jsonl", "run/checkpoint/config.json", "run/checkpoint/model.safetensors"):
        assert (out / name).is_file(), name
    assert list((out / "run").glob("*.png")), "no loss curve picture"
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    assert summary["vocab_size"] == 512
    assert len(summary["samples"]) == 4 and all(isinstance(s["text"], str) for s in summary["samples"])
    assert math.isclose(summary["val_perplexity"], math.exp(summary["val_loss"]))
    # 25 s of training on Python source is enough to learn more than token frequencies.
    assert summary["val_loss"] < summary["unigram_val_loss"], summary

    # The checkpoint is a normal HF directory: transformers loads it with equal logits.
    transformers = pytest.importorskip("transformers")
    from gpt2 import GPT

    ours = GPT.from_pretrained(out / "run" / "checkpoint")
    theirs = transformers.GPT2LMHeadModel.from_pretrained(out / "run" / "checkpoint").eval()
    x = torch.randint(0, 512, (1, 32))
    with torch.no_grad():
        torch.testing.assert_close(ours(x)[0], theirs(x).logits, atol=1e-5, rtol=1e-5)
