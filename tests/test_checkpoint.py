"""Checkpoints round-trip with transformers in both directions; bad input gives a CheckpointError naming
the file at fault."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from gpt2.checkpoint import read_metadata, save_pretrained
from gpt2.config import GPTConfig
from gpt2.errors import CheckpointError
from gpt2.model import GPT

TOL = dict(atol=1e-5, rtol=1e-5)
VOCAB = 97


def hf_model(seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=2, n_embd=64, n_head=4, vocab_size=VOCAB, n_positions=32, resid_pdrop=0.0,
                        embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=VOCAB - 1, eos_token_id=VOCAB - 1)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # non-constant biases/LayerNorms, so a mix-up cannot hide
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def tokens() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 20), generator=torch.Generator().manual_seed(7))


def assert_same_logits(ours: GPT, hf: GPT2LMHeadModel) -> None:
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens())[0], hf(tokens()).logits, **TOL)


def test_transformers_checkpoint_loads_with_equal_logits(tmp_path):
    hf = hf_model()
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path)
    assert ours.config.n_layer == 2 and ours.config.vocab_size == VOCAB
    assert ours.lm_head.weight is ours.transformer.wte.weight  # still tied after loading
    assert not ours.training
    assert_same_logits(ours, hf)


def test_our_checkpoint_loads_in_transformers_with_equal_logits(tmp_path):
    hf = hf_model(seed=1)
    hf.save_pretrained(tmp_path / "hf")
    ours = GPT.from_pretrained(tmp_path / "hf")
    save_pretrained(ours, tmp_path / "ours", metadata={"step": 12, "note": "test"})
    again = GPT2LMHeadModel.from_pretrained(tmp_path / "ours").eval()
    assert_same_logits(ours, again)
    assert read_metadata(tmp_path / "ours") == {"step": 12, "note": "test"}
    assert_same_logits(GPT.from_pretrained(tmp_path / "ours"), again)


def test_bf16_load(tmp_path):
    hf = hf_model(seed=2)
    hf.save_pretrained(tmp_path)
    ours = GPT.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert ours.dtype == torch.bfloat16
    with torch.no_grad():
        torch.testing.assert_close(ours(tokens())[0].float(), hf(tokens()).logits, atol=0.1, rtol=0.05)


def test_legacy_pytorch_bin_with_old_names_and_mask_buffers(tmp_path):
    hf = hf_model(seed=3)
    hf.config.save_pretrained(tmp_path)
    # As the hub's original gpt2 checkpoint: GPT2Model names (no "transformer."), mask buffers, no lm_head.
    state = {k.removeprefix("transformer."): v for k, v in hf.state_dict().items() if k != "lm_head.weight"}
    for i in range(hf.config.n_layer):
        state[f"h.{i}.attn.bias"] = torch.tril(torch.ones(32, 32)).view(1, 1, 32, 32)
        state[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(state, tmp_path / "pytorch_model.bin")
    assert_same_logits(GPT.from_pretrained(tmp_path), hf)


def test_sharded_safetensors_load(tmp_path):
    hf = hf_model(seed=4)
    hf.save_pretrained(tmp_path, max_shard_size="50KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    assert len(list(tmp_path.glob("model-*.safetensors"))) > 1
    assert_same_logits(GPT.from_pretrained(tmp_path), hf)


# ---- bad input ----

@pytest.fixture
def saved(tmp_path):
    directory = tmp_path / "ckpt"
    torch.manual_seed(0)
    save_pretrained(GPT(GPTConfig.from_preset("nano", vocab_size=VOCAB)), directory)
    return directory


def test_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        GPT.from_pretrained(tmp_path / "nowhere")


def test_file_instead_of_directory(saved):
    with pytest.raises(CheckpointError, match="is a file"):
        GPT.from_pretrained(saved / "config.json")


def test_directory_without_config(saved):
    (saved / "config.json").unlink()
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        GPT.from_pretrained(saved)


def test_directory_without_weights(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights"):
        GPT.from_pretrained(saved)


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_safetensors_names_the_file(saved, damage):
    path = saved / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x08\x00" + bytes(range(256)) * 4)
    with pytest.raises(CheckpointError, match="corrupt") as info:
        GPT.from_pretrained(saved)
    assert str(path) in str(info.value)


def test_corrupt_pytorch_bin_names_the_file(saved):
    (saved / "model.safetensors").unlink()
    (saved / "pytorch_model.bin").write_bytes(b"not a pickle")
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        GPT.from_pretrained(saved)


@pytest.mark.parametrize(
    "change, message",
    [({"n_attention_sinks": 4}, "unknown field 'n_attention_sinks'"),
     ({"n_head": 3}, "divisible"),
     ({"n_layer": -2}, "n_layer"),
     ({"activation_function": "relu"}, "activation_function")],
)
def test_bad_config_names_the_file(saved, change, message):
    path = saved / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    with pytest.raises(CheckpointError, match=message) as info:
        GPT.from_pretrained(saved)
    assert str(path) in str(info.value)


def test_invalid_json_names_the_file(saved):
    (saved / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="not valid JSON") as info:
        GPT.from_pretrained(saved)
    assert str(saved / "config.json") in str(info.value)


def test_shape_mismatch_names_the_tensor_and_checkpoint(saved):
    path = saved / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "vocab_size": VOCAB + 1}))
    with pytest.raises(CheckpointError, match=r"transformer\.wte\.weight.*shape") as info:
        GPT.from_pretrained(saved)
    assert str(saved) in str(info.value)


def test_missing_tensor(saved):
    path = saved / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "n_layer": 3}))
    with pytest.raises(CheckpointError, match=r"missing \['transformer\.h\.2"):
        GPT.from_pretrained(saved)


@pytest.mark.parametrize("name", ["gpt2", "someone/some-gpt2"])
def test_hub_name_offline_suggests_a_local_directory(name, monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import time
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.chdir(tmp_path)  # so "gpt2" is not a local directory
    with pytest.raises(CheckpointError, match="local directory") as info:
        GPT.from_pretrained(name)
    assert name in str(info.value)
