"""Training against a reference, the check llm.c keeps (test_gpt2.c against PyTorch): our GPT and
transformers' GPT2LMHeadModel, holding the same weights (ours written by gpt2.checkpoint.save_pretrained and
read by transformers), take ten AdamW steps on the same fixed batches in float32. Their losses agree at
every step, and their gradients agree for every parameter after the first (the Conv1D transposes mapped by
gpt2.checkpoint.from_hf_state_dict). Two independent implementations of the forward and backward pass
agreeing is what says ours trains GPT-2 as GPT-2 is trained."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2LMHeadModel

from gpt2.checkpoint import from_hf_state_dict, save_pretrained
from gpt2.config import GPTConfig
from gpt2.model import GPT
from gpt2.training.optim import param_groups

STEPS, BATCH, SEQ_LEN = 10, 4, 31  # 31 inputs + 1 target: 32 = n_positions tokens per row
LOSS_RTOL = 1e-5  # fp32, the same weights and batches, different kernels (sdpa, Conv1D's addmm)
GRAD_ATOL, GRAD_RTOL = 1e-6, 1e-5  # measured: losses within 1 ulp (~1e-7), gradients within 5e-9


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a 2-layer model gains nothing from more, and reductions stay in one order
    yield
    torch.set_num_threads(before)


def same_weights(tmp_path) -> tuple[GPT, GPT2LMHeadModel]:
    """Ours with its own initialisation (biases and LayerNorms randomised, so that they are compared too)
    and transformers' model loaded from ours as saved."""
    config = GPTConfig(n_layer=2, n_head=4, n_embd=64, vocab_size=256, n_positions=32, resid_pdrop=0.0,
                       embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=255, eos_token_id=255)
    torch.manual_seed(0)
    ours = GPT(config)
    with torch.no_grad():
        for p in ours.parameters():
            if p.dim() == 1:
                p.add_(torch.randn_like(p) * 0.1)
    save_pretrained(ours, tmp_path / "ours")
    hf = GPT2LMHeadModel.from_pretrained(tmp_path / "ours", dtype=torch.float32)
    assert hf.lm_head.weight is hf.transformer.wte.weight  # tied, as ours
    return ours.train(), hf.train()


def adamw(model: torch.nn.Module) -> torch.optim.AdamW:
    """The Trainer's AdamW settings at a fixed learning rate; foreach off, so both update one tensor at a time."""
    return torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=False)


def batches() -> list[torch.Tensor]:
    """Two fixed batches of random tokens, in turn: random text has nothing to learn, two batches repeated
    have (so the steps are seen to train)."""
    g = torch.Generator().manual_seed(1)
    two = [torch.randint(0, 256, (BATCH, SEQ_LEN + 1), generator=g) for _ in range(2)]
    return [two[step % 2] for step in range(STEPS)]


def test_ten_adamw_steps_match_transformers(tmp_path):
    ours, hf = same_weights(tmp_path)
    ours_opt, hf_opt = adamw(ours), adamw(hf)
    ours_losses, hf_losses = [], []
    for step, rows in enumerate(batches()):
        _, loss = ours(rows[:, :-1], rows[:, 1:])
        hf_loss = hf(input_ids=rows, labels=rows).loss  # transformers shifts the labels itself
        loss.backward()
        hf_loss.backward()
        if step == 0:
            assert_same_gradients(ours, hf)
        for model, opt in ((ours, ours_opt), (hf, hf_opt)):
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
        ours_losses.append(loss.item())
        hf_losses.append(hf_loss.item())
    torch.testing.assert_close(torch.tensor(ours_losses), torch.tensor(hf_losses), rtol=LOSS_RTOL, atol=0)
    assert ours_losses[-1] < ours_losses[0] - 0.1, ours_losses  # and both did learn


def assert_same_gradients(ours: GPT, hf: GPT2LMHeadModel) -> None:
    expected = {name: tensor.shape for name, tensor in ours.state_dict().items() if name != "lm_head.weight"}
    hf_grads = from_hf_state_dict({name: p.grad for name, p in hf.named_parameters()}, expected, "HF grads")
    ours_grads = {name: p.grad for name, p in ours.named_parameters()}
    assert ours_grads.keys() <= hf_grads.keys() and len(ours_grads) == len(list(hf.parameters()))
    for name, grad in ours_grads.items():
        assert grad is not None and grad.abs().max() > 0, name
        torch.testing.assert_close(grad, hf_grads[name], atol=GRAD_ATOL, rtol=GRAD_RTOL,
                                   msg=lambda m, name=name: f"{name}: {m}")
