"""Training: a tiny model learns real text (validation loss below the data's unigram entropy), its
checkpoint loads in transformers with equal logits, resume is bit-identical to an uninterrupted run (also
after kill -9), two DDP processes match one process with the same global batch, and the schedule,
optimizer groups, configuration checks and crash-safe checkpoints behave as documented."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import real_text
from gpt2 import hardware
from gpt2.cli import main
from gpt2.config import GPTConfig
from gpt2.data import TokenDataset, prepare
from gpt2.errors import ConfigError
from gpt2.model import GPT
from gpt2.tokenizer import Tokenizer
from gpt2.training import TrainConfig, Trainer, TrainingError, checkpointing, schedule, train
from gpt2.training.metrics import flops_per_token
from gpt2.training.optim import make_optimizer, param_groups
from gpt2.training.schedule import cosine_progress, lr_at

# Small and fast: every run below is the "nano" preset (2 layers, 64 wide) on 64-token windows.
TINY = dict(model_size="nano", seq_len=64, batch_size=8, dtype="fp32", lr=3e-3, warmup_steps=5,
            eval_tokens=4096)


# One thread per process: these models are too small to gain from two, and on a busy machine a second
# OpenMP thread that gets descheduled stalls every kernel (10x slower steps were measured). Subprocesses get
# the same through OMP_NUM_THREADS.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A prepared directory: a 512-id BPE trained on the corpus, paragraphs as documents, 10% held out."""
    root = tmp_path_factory.mktemp("train-data")
    text = real_text()
    (root / "corpus.txt").write_text(text, encoding="utf-8")
    Tokenizer.train([text], vocab_size=512).save_pretrained(root / "tok")
    prepare([root / "corpus.txt"], root / "tok", root / "data", val_fraction=0.1, txt_split="paragraph",
            progress=False)
    return root / "data"


def metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def losses(run: Path) -> list[tuple[int, float]]:
    return [(r["step"], r["loss"]) for r in metrics(run) if "loss" in r]


def unigram_entropy(data: TokenDataset) -> float:
    counts = np.bincount(data.read(0, len(data)), minlength=data.manifest["tokenizer"]["vocab_size"])
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> Path:
    """A run trained through the CLI: 100 steps of 1,024 tokens."""
    run = tmp_path_factory.mktemp("runs") / "nano"
    code = main(["train", "--data", str(dataset), "--out", str(run), "--model-size", "nano", "--seq-len",
                 "64", "--batch-size", "16", "--max-steps", "100", "--lr", "3e-3", "--warmup-steps", "10",
                 "--eval-interval", "50", "--eval-tokens", "16384", "--dtype", "fp32", "--quiet"])
    assert code == 0
    return run


def test_validation_loss_falls_below_the_unigram_entropy(trained, dataset):
    records = metrics(trained)
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    assert [s for s, _ in val] == [0, 50, 100]
    entropy = unigram_entropy(TokenDataset(dataset, "train"))
    assert val[0][1] > entropy  # a fresh model is worse than counting tokens ...
    assert val[-1][1] < entropy - 0.3, (val, entropy)  # ... and a trained one uses context
    assert all(b < a for (_, a), (_, b) in zip(val, val[1:], strict=False))
    last = records[-1]
    assert last["step"] == 100 and last["tokens"] == 100 * 16 * 64
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "mfu", "step_time_s"} <= set(last)
    assert 0 < last["mfu"] < 1
    assert (trained / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert TrainConfig.load(trained).max_steps == 100
    assert os.readlink(trained / "checkpoint") == "checkpoints/step_00000100"
    assert [p.name for p in (trained / "checkpoints").iterdir()] == ["step_00000100"]  # older ones pruned


def test_checkpoint_loads_in_transformers_with_equal_logits(trained):
    from transformers import GPT2LMHeadModel

    from gpt2.checkpoint import read_metadata
    from gpt2.model import GPT

    ours = GPT.from_pretrained(trained / "checkpoint")
    hf = GPT2LMHeadModel.from_pretrained(trained / "checkpoint").eval()
    ids = torch.randint(0, ours.config.vocab_size, (2, 48), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids)[0], hf(ids).logits, atol=1e-5, rtol=1e-5)
    assert read_metadata(trained / "checkpoint")["step"] == 100


def test_checkpoint_generates_with_its_tokenizer(trained, capsys):
    assert main(["generate", "-m", str(trained / "checkpoint"), "-n", "8", "--seed", "0", "ROMEO:"]) == 0
    assert "SAMPLE 1" in capsys.readouterr().out


def run_config(dataset: Path, out: Path, **overrides) -> TrainConfig:
    return TrainConfig(data=str(dataset), out=str(out), **{**TINY, **overrides})


def test_resume_is_bit_identical(dataset, tmp_path):
    """Dropout and gradient accumulation on, so RNG and loader state must both be restored exactly."""
    settings = dict(max_steps=16, eval_interval=5, save_interval=3, dropout=0.1, batch_size=4, seq_len=32,
                    total_batch_tokens=256)
    full = Trainer(run_config(dataset, tmp_path / "full", **settings), progress=False)
    full.train()
    first = Trainer(run_config(dataset, tmp_path / "split", **settings), progress=False)
    first.train(stop_at_step=7)  # checkpoints at 3, 6 and 7 (the end of this invocation)
    # What a run killed after its checkpoint leaves behind: log lines past it, the last one cut short.
    with open(tmp_path / "split" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 8, "loss": 0.0}) + '\n{"step": 9, "lo')
    second = Trainer.resume(tmp_path / "split", progress=False)
    assert second.step == 7 and second.tokens == 7 * 256
    second.train()
    assert losses(tmp_path / "split") == losses(tmp_path / "full")  # exact float equality, every step
    val_full = {r["step"]: r["val_loss"] for r in metrics(tmp_path / "full") if "val_loss" in r}
    val_split = {r["step"]: r["val_loss"] for r in metrics(tmp_path / "split") if "val_loss" in r}
    assert val_split.items() >= val_full.items()  # plus step 7's, from the stop
    for a, b in zip(full.raw_model.parameters(), second.raw_model.parameters(), strict=True):
        assert torch.equal(a, b)


def test_muon_learns_and_resumes_bit_identically(dataset, tmp_path):
    """--optimizer muon: Muon on the blocks' matrices, AdamW on the rest; its momentum is in the checkpoint."""
    settings = dict(max_steps=8, eval_interval=8, save_interval=4, optimizer="muon", lr=3e-3)
    full = Trainer(run_config(dataset, tmp_path / "full", **settings), progress=False)
    muon, adamw = full.optimizer.optimizers
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    blocks = {id(p) for p in full.raw_model.transformer.h.parameters() if p.dim() == 2}
    assert {id(p) for g in muon.param_groups for p in g["params"]} == blocks
    assert full.raw_model.transformer.wte.weight in adamw.param_groups[0]["params"]
    full.train()
    curve = [loss for _, loss in losses(tmp_path / "full")]
    assert curve[-1] < curve[0] - 0.3, curve  # 8 steps, 5 of them warmup
    first = Trainer(run_config(dataset, tmp_path / "split", **settings), progress=False)
    first.train(stop_at_step=4)
    second = Trainer.resume(tmp_path / "split", progress=False)
    second.train()
    assert losses(tmp_path / "split") == losses(tmp_path / "full")
    with pytest.raises(ConfigError, match="optimizer must be one of adamw, muon"):
        run_config(dataset, tmp_path / "x", max_steps=1, optimizer="sgd")


def test_muon_runs_newton_schulz_in_fp32_where_bf16_is_emulated(monkeypatch):
    """On an AVX2-class CPU torch's bf16 Newton-Schulz is emulated (about 100x slower); ours runs it in fp32
    and takes the same steps, to bf16's precision."""
    from torch.optim._muon import _zeropower_via_newtonschulz

    from gpt2.training.optim import Muon, newton_schulz

    g = torch.randn(64, 192, generator=torch.Generator().manual_seed(0))
    for m in (g, g.T):
        ours, torchs = newton_schulz(m, (3.4445, -4.775, 2.0315), 5, 1e-7), _zeropower_via_newtonschulz(
            m, (3.4445, -4.775, 2.0315), 5, 1e-7).float()
        assert ours.dtype == torch.float32 and ours.shape == m.shape
        assert (ours - torchs).norm() / torchs.norm() < 0.02  # bf16's rounding
        singular = torch.linalg.svdvals(ours)
        assert 0.5 < singular.min() and singular.max() < 1.5  # approximately orthogonal, as Muon's iteration
    params = {}
    for kind, flags in (("avx2", {"avx2", "fma"}), ("avx512-bf16", {"avx512_bf16", "avx512f", "avx2"})):
        monkeypatch.setattr(hardware, "cpu", lambda f=flags: hardware.CPU(name="fake", flags=frozenset(f)))
        torch.manual_seed(1)
        w = torch.nn.Parameter(torch.randn(48, 96))
        opt = Muon([w], lr=0.02, weight_decay=0.1, adjust_lr_fn="match_rms_adamw")
        for step in range(3):
            w.grad = torch.randn(48, 96, generator=torch.Generator().manual_seed(step))
            opt.step()
        params[kind] = w.detach().clone()
        assert set(opt.state[w]) == {"momentum_buffer"}  # the same checkpoint state either way
    torch.testing.assert_close(params["avx2"], params["avx512-bf16"], rtol=0.02, atol=2e-3)


@pytest.mark.slow
def test_kill_9_at_any_moment_then_resume_matches(dataset, tmp_path):
    """SIGKILL a CLI run mid-training (possibly mid-checkpoint); --resume then ends where an
    uninterrupted run ends, loss for loss."""
    args = ["--data", str(dataset), "--model-size", "nano", "--seq-len", "64", "--batch-size", "8",
            "--max-steps", "30", "--save-interval", "3", "--eval-interval", "10", "--eval-tokens", "4096",
            "--lr", "3e-3", "--dtype", "fp32", "--quiet"]
    command = [sys.executable, "-m", "gpt2", "train", "--out", str(tmp_path / "killed"), *args]
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ONE_THREAD)
    link = tmp_path / "killed" / "checkpoint"
    deadline = time.monotonic() + 120
    while not (link.is_symlink() and os.readlink(link) >= "checkpoints/step_00000006"):
        assert victim.poll() is None, victim.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = checkpointing.load_state(link)["step"]
    assert 6 <= killed_at < 30
    # Both in this process, also one thread: the same kernels as the killed run, so the same bits.
    assert main(["train", "--out", str(tmp_path / "killed"), "--resume", *args]) == 0
    assert main(["train", "--out", str(tmp_path / "ref"), *args]) == 0
    assert losses(tmp_path / "killed") == losses(tmp_path / "ref")
    assert [r["step"] for r in metrics(tmp_path / "killed")] == list(range(31))


@pytest.mark.slow
def test_two_ddp_processes_match_one_process_with_the_same_global_batch(dataset, tmp_path):
    """torchrun with 2 gloo processes x 8 sequences vs 1 process accumulating 2 x 8 sequences: the same
    windows per step (see BatchLoader), so the same mean gradient up to float summation order. Over 12
    steps fp32 reassociation (~1e-7 relative per step, amplified by Adam's normalisation) stays far below
    the 2e-5 relative tolerance; a wrong data split or a missing gradient average would be ~1e-2 off."""
    args = ["--data", str(dataset), "--model-size", "nano", "--seq-len", "64", "--batch-size", "8",
            "--total-batch-tokens", "1024", "--max-steps", "12", "--eval-interval", "6", "--eval-tokens",
            "4096", "--lr", "3e-3", "--dtype", "fp32", "--quiet"]
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "gpt2", "train", "--out", str(tmp_path / "ddp"), *args],
                         capture_output=True, text=True, env=ONE_THREAD)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert main(["train", "--out", str(tmp_path / "one"), *args]) == 0
    a, b = metrics(tmp_path / "ddp"), metrics(tmp_path / "one")
    assert [r["step"] for r in a] == [r["step"] for r in b] == list(range(13))
    for ra, rb in zip(a, b, strict=True):
        for key in ("loss", "val_loss"):
            if key in rb:
                assert ra[key] == pytest.approx(rb[key], rel=2e-5), (ra["step"], key)
    assert b[-1]["loss"] < b[1]["loss"] - 0.5  # it did learn, so agreement is not trivial
    state = checkpointing.load_state(tmp_path / "ddp" / "checkpoint")
    assert state["world_size"] == 2 and len(state["rng"]) == 2  # each rank's random state is kept
    assert state["loader"]["position"] == 12 * 16


def test_fine_tuning_keeps_the_checkpoint_tokenizer(trained, dataset, tmp_path):
    checkpoint = trained / "checkpoint"
    data = tmp_path / "ft-data"
    prepare([dataset.parent / "corpus.txt"], checkpoint, data, val_fraction=0.1, txt_split="paragraph",
            progress=False)
    config = TrainConfig(data=str(data), out=str(tmp_path / "ft"), init_from=str(checkpoint), max_steps=3,
                         batch_size=8, seq_len=64, lr=1e-4, eval_interval=3, eval_tokens=4096, dtype="fp32")
    summary = train(config, progress=False)
    start = metrics(tmp_path / "ft")[0]["val_loss"]
    pretrained_val = [r["val_loss"] for r in metrics(trained) if "val_loss" in r][-1]
    assert start == pytest.approx(pretrained_val, abs=0.15)  # it starts from the trained weights
    assert summary["step"] == 3
    for name in ("vocab.json", "merges.txt"):
        assert (tmp_path / "ft" / "checkpoint" / name).read_bytes() == (checkpoint / name).read_bytes()


def test_fine_tuning_on_data_from_another_tokenizer_is_refused(trained, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("\n\n".join(f"line {i} of some other text, numbered" for i in range(300)))
    Tokenizer.train([text.read_text()], vocab_size=300).save_pretrained(tmp_path / "tok")
    prepare([text], tmp_path / "tok", tmp_path / "d", val_fraction=0.1, txt_split="paragraph", progress=False)
    config = TrainConfig(data=str(tmp_path / "d"), out=str(tmp_path / "ft"),
                         init_from=str(trained / "checkpoint"), max_steps=1, seq_len=16)
    with pytest.raises(TrainingError, match="encodes text differently.*gpt2 prepare .* --tokenizer"):
        Trainer(config, progress=False)


def test_run_directory_rules_and_resume_overrides(dataset, tmp_path, capsys):
    run = tmp_path / "run"
    base = ["train", "--data", str(dataset), "--out", str(run), "--model-size", "nano", "--seq-len", "32",
            "--batch-size", "4", "--dtype", "fp32", "--eval-tokens", "1024", "-q"]
    assert main([*base, "--max-steps", "2", "--resume"]) == 0  # --resume with nothing to resume: fresh
    assert "starting the run from scratch" in capsys.readouterr().out
    assert main([*base, "--max-steps", "4"]) == 2
    assert "already holds a checkpoint; pass --resume" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--lr", "1e-2"]) == 2
    assert "cannot change lr when resuming" in capsys.readouterr().err
    assert main(["train", "--out", str(run), "--resume", "--max-steps", "4"]) == 0  # extend the run
    assert [r["step"] for r in metrics(run)] == [0, 1, 2, 3, 4]
    assert TrainConfig.load(run).max_steps == 4


def test_time_budget_fixes_a_decay_length_stops_and_saves(dataset, tmp_path, monkeypatch):
    monkeypatch.setattr(schedule, "_CALIBRATION_SKIP", 1)  # time steps 2 and 3, not 20
    monkeypatch.setattr(schedule, "_CALIBRATION_STEPS", 2)
    trainer = Trainer(run_config(dataset, tmp_path / "t", time_budget_s=2.0, eval_interval=1000,
                                 warmup_steps=2), progress=False)
    assert trainer.total_steps is None and trainer.decay_steps is None
    summary = trainer.train()
    decay = trainer.decay_steps
    assert summary["step"] >= 3 and decay is not None and decay >= 3
    records = metrics(tmp_path / "t")
    assert "val_loss" in records[-1]  # evaluated at the end
    for r in records[1:]:  # lr of step s is the schedule's at index s - 1; from step 4 on, with the decay
        expected = lr_at(r["step"] - 1, lr=3e-3, min_lr=3e-4, warmup_steps=2,
                         decay_steps=decay if r["step"] > 3 else None)
        assert r["lr"] == pytest.approx(expected)
    state = checkpointing.load_state(tmp_path / "t" / "checkpoint")
    assert state["step"] == summary["step"] and state["decay_steps"] == decay


def test_time_budget_refits_the_decay_when_steps_slow_down(dataset, tmp_path, monkeypatch):
    """A fake clock: 0.1 s per step, 0.2 s from step 31 on (load arriving), a 10 s budget. Calibrated at
    step 3 for 90 steps, the run can do only 65; without re-fitting it would stop at 72% of the cosine
    (lr 18% of the way from min_lr to the peak). Re-fitting at evaluations brings it to min_lr by the end,
    the learning rate falling continuously; a resume restores the re-fitted schedule."""
    monkeypatch.setattr(schedule, "_CALIBRATION_SKIP", 1)
    monkeypatch.setattr(schedule, "_CALIBRATION_STEPS", 2)
    clock = [0.0]

    class FakeTime:
        monotonic = staticmethod(lambda: clock[0])
        perf_counter = staticmethod(time.perf_counter)  # tokens/s stays real

    monkeypatch.setattr(schedule, "time", FakeTime)  # the time budget's clock
    original = Trainer._train_step

    def slow_step(self):
        clock[0] += 0.1 if self.step < 30 else 0.2
        return original(self)

    monkeypatch.setattr(Trainer, "_train_step", slow_step)
    trainer = Trainer(run_config(dataset, tmp_path / "t", time_budget_s=10.0, eval_interval=5, warmup_steps=2,
                                 lr=3e-3, min_lr=3e-4), progress=False)
    summary = trainer.train()
    assert summary["step"] in (65, 66)
    lrs = [r["lr"] for r in metrics(tmp_path / "t") if "lr" in r]
    after_warmup = lrs[2:]
    assert all(b <= a + 1e-12 for a, b in zip(after_warmup, after_warmup[1:], strict=False))
    assert max(a - b for a, b in zip(after_warmup, after_warmup[1:], strict=False)) < 0.1 * 2.7e-3
    assert lrs[-1] < 3e-4 + 0.02 * 2.7e-3, lrs[-5:]
    state = checkpointing.load_state(tmp_path / "t" / "checkpoint")
    assert state["decay_steps"] == trainer.schedule.decay_steps and state["schedule_anchor"] is not None
    resumed = Trainer.resume(tmp_path / "t", progress=False)
    assert (resumed.schedule.decay_steps, resumed.schedule.anchor) == (trainer.schedule.decay_steps,
                                                                       trainer.schedule.anchor)


def test_a_failed_save_leaves_the_previous_checkpoint(dataset, tmp_path, monkeypatch):
    trainer = Trainer(run_config(dataset, tmp_path / "r", max_steps=4, eval_interval=2), progress=False)
    trainer.train(stop_at_step=2)
    before = os.readlink(tmp_path / "r" / "checkpoint")
    (tmp_path / "r" / "checkpoints" / ".step_00000003.x.tmp").mkdir()  # as a kill mid-save leaves it

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        trainer.train(stop_at_step=3)
    assert os.readlink(tmp_path / "r" / "checkpoint") == before
    assert checkpointing.load_state(tmp_path / "r" / "checkpoint")["step"] == 2
    monkeypatch.undo()
    trainer.train()
    assert sorted(p.name for p in (tmp_path / "r" / "checkpoints").iterdir()) == ["step_00000004"]


def test_bf16_autocast_tracks_fp32(dataset, tmp_path):
    """bf16 autocast (native on AMX / AVX512-BF16 CPUs and CUDA, emulated elsewhere) keeps fp32 master
    weights; its losses stay within bf16's ~3 significant digits of the fp32 run's over a few steps."""
    runs = {}
    for dtype in ("fp32", "bf16"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer = Trainer(run_config(dataset, tmp_path / dtype, max_steps=3, eval_interval=3, dtype=dtype),
                              progress=False)
        emulated = dtype == "bf16" and not hardware.cpu().native_bf16
        assert any(issubclass(w.category, hardware.SlowDtypeWarning) for w in caught) == emulated
        assert trainer.bf16 == (dtype == "bf16")
        trainer.train()
        assert trainer.raw_model.transformer.wte.weight.dtype == torch.float32
        runs[dtype] = [loss for _, loss in losses(tmp_path / dtype)]
    assert runs["bf16"] == pytest.approx(runs["fp32"], abs=0.05)


@pytest.mark.parametrize("kind, flags, bf16", [("amx", {"amx_bf16", "avx512_bf16", "avx512f", "avx2"}, True),
                                               ("avx512-bf16", {"avx512_bf16", "avx512f", "avx2"}, True),
                                               ("avx2", {"avx2", "fma"}, False)])
def test_auto_dtype_trains_in_bf16_only_where_the_cpu_has_it(dataset, tmp_path, monkeypatch, kind, flags, bf16):
    monkeypatch.setattr(hardware, "cpu", lambda: hardware.CPU(name=f"fake {kind}", flags=frozenset(flags)))
    trainer = Trainer(run_config(dataset, tmp_path / kind, max_steps=1, dtype="auto", device="cpu"),
                      progress=False)
    assert trainer.bf16 == bf16


# ---- pieces ----

def test_lr_schedule():
    kw = dict(lr=1.0, min_lr=0.1, warmup_steps=10, decay_steps=110)
    assert lr_at(0, **kw) == pytest.approx(1 / 11) and lr_at(9, **kw) == pytest.approx(10 / 11)
    assert lr_at(10, **kw) == 1.0
    assert lr_at(60, **kw) == pytest.approx(0.55)  # halfway down the cosine: the midpoint
    assert lr_at(110, **kw) == pytest.approx(0.1) and lr_at(500, **kw) == 0.1
    values = [lr_at(s, **kw) for s in range(10, 111)]
    assert all(b <= a for a, b in zip(values, values[1:], strict=False))
    assert lr_at(1000, lr=1.0, min_lr=0.1, warmup_steps=10, decay_steps=None) == 1.0


def test_anchored_lr_schedule_continues_the_cosine():
    """Anchoring at a step with the progress reached there gives the same value at that step, and the
    default anchor is the plain schedule."""
    kw = dict(lr=1.0, min_lr=0.1, warmup_steps=10)
    assert all(lr_at(s, **kw, decay_steps=110, anchor=(10, 0.0)) == lr_at(s, **kw, decay_steps=110)
               for s in range(0, 130))
    p = cosine_progress(40, 10, 110)
    assert p == pytest.approx(0.3)
    assert lr_at(40, **kw, decay_steps=70, anchor=(40, p)) == pytest.approx(lr_at(40, **kw, decay_steps=110))
    assert lr_at(55, **kw, decay_steps=70, anchor=(40, p)) == pytest.approx(  # halfway through the rest
        0.1 + 0.45 * (1 + math.cos(math.pi * 0.65)))
    assert lr_at(70, **kw, decay_steps=70, anchor=(40, p)) == 0.1


def test_weight_decay_groups_follow_nanogpt():
    model = GPT(GPTConfig.from_preset("nano", vocab_size=100))
    opt = make_optimizer(model, lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8, device_type="cpu")
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == model.num_parameters()
    assert any(p is model.transformer.wte.weight for p in decay["params"])  # tied with lm_head: once
    assert len(decay["params"]) == 2 + 4 * 2  # wte, wpe; c_attn, c_proj, c_fc, c_proj per block
    head = torch.nn.Linear(64, 1)  # the detection classifier's groups: backbone and head together
    decay, no_decay = param_groups(torch.nn.ModuleList([model, head]), 0.01)
    assert decay["weight_decay"] == 0.01 and any(p is head.weight for p in decay["params"])
    assert any(p is head.bias for p in no_decay["params"]) and len(decay["params"]) == 2 + 4 * 2 + 1
    hidden = [model.transformer.h[0].attn.c_attn.weight]
    assert all(p is not hidden[0] for p in param_groups(model, 0.1, exclude=hidden)[0]["params"])


def test_flops_per_token_matches_nanogpt_for_124m():
    config = GPTConfig.from_preset("124M")
    n = 124_439_808  # parameters, tied embedding counted once
    assert flops_per_token(config, n, 1024) == 6 * (n - 1024 * 768) + 12 * 12 * 768 * 1024


def test_config_checks():
    with pytest.raises(ConfigError, match="give exactly one of model_size"):
        TrainConfig(data="d", out="o", max_steps=1)
    with pytest.raises(ConfigError, match="give a length for the run"):
        TrainConfig(data="d", out="o", model_size="nano")
    with pytest.raises(ConfigError, match="cannot be combined with init_from"):
        TrainConfig(data="d", out="o", init_from="x", n_layer=3, max_steps=1)
    config = TrainConfig(data="d", out="o", model_size="nano", max_steps=1, batch_size=4,
                         total_batch_tokens=1000)
    with pytest.raises(ConfigError, match=r"multiple of batch_size x seq_len x processes = 4 x 64 x 2 = 512"):
        config.grad_accum(seq_len=64, world_size=2)
    assert TrainConfig(data="d", out="o", model_size="nano", max_tokens=10_000).total_steps(1024) == 10
    assert math.isclose(TrainConfig(data="d", out="o", model_size="nano", max_steps=1).final_lr, 6e-5)


def _page_faults_of_reallocation(megabytes: int = 64, rounds: int = 4) -> int:
    """Minor page faults while a large tensor is allocated, written and freed again `rounds` times, after
    four times as many untimed rounds: what each training step does with its logits and their gradients.
    With freed memory retained, the first rounds may still grow the heap (small objects settle in the freed
    block), then it is reused: after a Trainer was built, rounds 1 and 3-5 faulted, later ones never; in a
    fresh clone's full run (after gpt2 eval had trimmed the heap) one of rounds 9-12 faulted once, so the
    warm-up is longer than that."""
    import resource

    def once() -> None:
        t = torch.ones(megabytes * 2**18)  # float32: 4 bytes each
        del t

    for _ in range(4 * rounds):
        once()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        once()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_cpu_training_reuses_freed_memory_instead_of_faulting_it_back_in(dataset, tmp_path, monkeypatch):
    """glibc hands blocks above 32 MiB back with munmap, so each reallocation faults every page in again
    (64 MiB = 16,384 pages of 4 KiB); while a Trainer holds the setting they are reused, and close()
    restores glibc's defaults once no other holder is left."""
    from gpt2 import memory

    libc = memory._glibc()
    if libc is None:
        pytest.skip("not glibc: malloc is left alone")
    monkeypatch.setattr(memory, "_holders", 0)  # Trainers of other tests that were never closed hold it
    memory._apply(libc, retain=False)
    assert _page_faults_of_reallocation() > 4 * 16_384 * 0.9  # the default: fresh pages every time
    trainer = Trainer(run_config(dataset, tmp_path / "m", max_steps=1), progress=False)
    assert trainer._restore_malloc is not None and memory._holders == 1
    second = memory.retain_freed_memory()  # another holder: the first one's close must not undo it
    trainer.close()
    assert _page_faults_of_reallocation() < 1000
    applied = []
    monkeypatch.setattr(memory, "_apply", lambda libc, retain: applied.append(retain) or False)
    second()
    second()  # idempotent
    # The defaults come back once, with the last holder. (Page faults cannot show it here: freed holes left
    # inside the heap by earlier tests keep serving large blocks until the heap's top is trimmed.)
    assert memory._holders == 0 and applied == [False]
