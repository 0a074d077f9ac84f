"""The reference side of every comparison: transformers' GPT2LMHeadModel holding exactly our model's weights."""

from __future__ import annotations

from transformers import GPT2Config, GPT2LMHeadModel

from gpt2.checkpoint import to_hf_state_dict
from gpt2.model import GPT


def hf_twin(ours: GPT, **config: object) -> GPT2LMHeadModel:
    """transformers' model of `ours`'s shape and weights (tied head), in `ours`'s train/eval mode; `config`
    adds GPT2Config fields (dropout, attention implementation)."""
    c = ours.config
    hf = GPT2LMHeadModel(GPT2Config(n_layer=c.n_layer, n_head=c.n_head, n_embd=c.n_embd, vocab_size=c.vocab_size,
                                    n_positions=c.n_positions, **config))
    missing, unexpected = hf.load_state_dict(to_hf_state_dict(ours), strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    hf.tie_weights()
    assert hf.lm_head.weight is hf.transformer.wte.weight
    return hf.train(ours.training)
