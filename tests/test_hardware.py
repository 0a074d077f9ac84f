"""The machine's capabilities and the `auto` rule, with each CPU class faked: no test assumes this CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from gpt2 import hardware
from gpt2.cli import build_parser, main
from gpt2.errors import ConfigError
from gpt2.hardware import CPU, SlowDtypeWarning, auto_dtype, resolve_device, resolve_dtype

# The flags each class has, as Linux spells them (a real processor of the class has these and more).
CLASSES = {
    "amx": {"amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"},
    "avx512-bf16": {"avx512_bf16", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"},
    "avx512": {"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx2", "fma"},
    "avx2": {"avx2", "fma"},
    "baseline": set(),
}
NATIVE_BF16 = {"amx", "avx512-bf16"}


@pytest.fixture(params=list(CLASSES))
def cpu_class(request, monkeypatch) -> str:
    """Run the test as on a CPU of each class, on the CPU, with no GPU."""
    fake = CPU(name=f"fake {request.param}", flags=frozenset(CLASSES[request.param]))
    monkeypatch.setattr(hardware, "cpu", lambda: fake)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return request.param


def test_each_class_is_named_and_knows_whether_bf16_is_native(cpu_class):
    c = hardware.cpu()
    assert c.kind == cpu_class
    assert c.native_bf16 == (cpu_class in NATIVE_BF16)
    assert f"[{cpu_class}]" in c.describe()


def test_auto_picks_bf16_only_where_it_is_native(cpu_class):
    assert resolve_device("auto") == torch.device("cpu")
    expected = torch.bfloat16 if cpu_class in NATIVE_BF16 else torch.float32
    assert auto_dtype("cpu") == resolve_dtype("auto", "cpu") == resolve_dtype(None, "cpu") == expected


def test_asking_for_emulated_bf16_warns_with_the_reason_and_the_cost(cpu_class, recwarn):
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16  # still honoured
    warned = [w for w in recwarn if issubclass(w.category, SlowDtypeWarning)]
    if cpu_class in NATIVE_BF16:
        assert not warned
    else:
        (w,) = warned
        assert f"class {cpu_class}" in str(w.message) and "80x slower" in str(w.message)
        assert "--dtype fp32" in str(w.message)
    assert resolve_dtype("fp32", "cpu") == torch.float32


def test_avx_ne_convert_runs_bf16_without_emulation_but_auto_keeps_fp32(monkeypatch, recwarn):
    fake = CPU(name="fake client core", flags=frozenset({"avx2", "fma", "avx_ne_convert"}))
    monkeypatch.setattr(hardware, "cpu", lambda: fake)
    assert resolve_dtype("bf16", "cpu") == torch.bfloat16 and not recwarn.list
    assert auto_dtype("cpu") == torch.float32


def test_fp16_on_a_cpu_without_fp16_arithmetic_warns(monkeypatch):
    monkeypatch.setattr(hardware, "cpu", lambda: CPU(name="fake", flags=frozenset(CLASSES["amx"])))
    with pytest.warns(SlowDtypeWarning, match="fp16 on this CPU"):
        resolve_dtype("fp16", "cpu")


def test_cuda_auto_rule(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun: one GPU per process
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    assert resolve_device("cuda:0") == torch.device("cuda", 0) and resolve_device("cpu") == torch.device("cpu")
    for capability, expected in (((9, 0), torch.bfloat16), ((8, 0), torch.bfloat16), ((7, 5), torch.float32)):
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None, c=capability: c)
        assert auto_dtype("cuda") == expected  # a T4 (7.5) emulates bf16: fp32 there
    assert resolve_dtype("bf16", "cuda") == torch.bfloat16  # honoured as asked


def test_bad_names_are_refused_with_the_choices():
    with pytest.raises(ConfigError, match="auto, fp32, bf16, fp16; got 'fp64'"):
        resolve_dtype("fp64", "cpu")
    with pytest.raises(ConfigError, match="'gpu0' is not a torch device"):
        resolve_device("gpu0")
    assert resolve_dtype("float32", "cpu") == torch.float32  # the spelling saved detectors use


def test_onednn_isa_limit_lowers_the_class():
    assert hardware._above_onednn_limit(None) == hardware._above_onednn_limit("ALL") == set()
    assert "avx512_bf16" in hardware._above_onednn_limit("AVX512_CORE")
    assert "avx512_bf16" not in hardware._above_onednn_limit("AVX512_CORE_BF16")
    assert {"avx512f", "avx_ne_convert"} <= hardware._above_onednn_limit("AVX2")


def test_a_process_limited_to_avx2_sees_an_avx2_machine():
    """What CI's second pass relies on: these variables make any AVX-512 machine an AVX2 one for PyTorch's
    kernels, and the hardware module follows them (on an AVX2 machine nothing changes)."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
    out = subprocess.run([sys.executable, "-m", "gpt2", "info", "--machine"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "[avx2]" in out or "[baseline]" in out, out
    assert "bf16 on cpu     emulated" in out and "dtype fp32" in out
    assert "int8 products   int8 activations (fbgemm)" in out, out
    if torch.backends.mkldnn.is_available():
        assert "packed layouts  fp32\n" in out, out  # oneDNN refuses bf16's layout there


@pytest.mark.parametrize("command", ["generate", "eval", "bias", "outputs", "serve"])
def test_inference_commands_default_to_auto(command):
    required = {"eval": ["--task", "lambada"], "outputs": ["--out", "x"]}.get(command, [])
    args = build_parser().parse_args([command, *required])
    assert (args.dtype, args.device, args.no_pack) == ("auto", "auto", False)


def test_detect_and_train_default_to_auto():
    args = build_parser().parse_args(["detect", "train", "--out", "x"])
    assert (args.dtype, args.device) == ("auto", "auto")
    args = build_parser().parse_args(["train", "--data", "d", "--out", "o", "--model-size", "nano",
                                      "--max-steps", "1"])
    assert args.dtype is None and args.device is None  # TrainConfig's defaults: auto


def test_cli_prints_the_emulation_warning_as_one_line(monkeypatch, capsys, tmp_path):
    from gpt2.checkpoint import save_pretrained
    from gpt2.config import GPTConfig
    from gpt2.model import GPT
    from gpt2.tokenizer import Tokenizer

    monkeypatch.setattr(hardware, "cpu", lambda: CPU(name="fake", flags=frozenset(CLASSES["avx2"])))
    tokenizer = Tokenizer.train(["hello world, hello again " * 50], vocab_size=280)
    torch.manual_seed(0)
    save_pretrained(GPT(GPTConfig.from_preset("nano", vocab_size=tokenizer.vocab_size)), tmp_path,
                    tokenizer=tokenizer)
    assert main(["generate", "-m", str(tmp_path), "--dtype", "bf16", "--device", "cpu", "-n", "3",
                 "--seed", "0", "hello"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("gpt2 generate: warning: bf16 on this CPU (fake, class avx2") and err.count("\n") == 1
