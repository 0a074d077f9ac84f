"""benchmarks/gpu_suite.sh's dry mode: every step of the GPU suite runs on the CPU at toy size, so the day a
GPU is lent its minutes go on measuring, not on a typo. Figures are not checked (no wall-clock thresholds in
tests); that each step ran, compared the two sides and wrote its JSON is."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import GPT2_VOCAB_FILE

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_suite_runs_every_step_in_dry_mode(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable)
    steps = ["train", "decode", "eval"]
    if GPT2_VOCAB_FILE.is_file():  # the outputs step decodes samples: GPT-2's vocabulary, offline
        env["GPT2_VOCAB_FILE"] = str(GPT2_VOCAB_FILE)
        steps.append("outputs")
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--dry", str(tmp_path)],
                          env={**env, "GPU_SUITE_STEPS": ",".join(steps)}, capture_output=True, text=True)
    report = json.loads((tmp_path / "gpu_suite.json").read_text())
    failed = {name: step.get("traceback") for name, step in report["steps"].items() if not step["ok"]}
    assert done.returncode == 0 and not failed, (done.stdout[-2000:], done.stderr[-3000:], failed)
    assert report["dry"] is True and list(report["steps"]) == steps
    train = report["steps"]["train"]["sides"]
    assert set(train) >= {"ours", "transformers"} and all(s["tokens_per_s"] > 0 for s in train.values())
    # the two sides did the same work: same weights, same batches, so the same loss to float reassociation
    assert abs(train["ours"]["loss_last"] - train["transformers"]["loss_last"]) < 1e-3
    assert report["steps"]["decode"]["same_greedy_tokens"].split("/")[0] == str(report["steps"]["decode"]["new_tokens"])
    assert report["steps"]["eval"]["nll_relative_difference"] < 1e-5
    if "outputs" in steps:
        assert report["steps"]["outputs"]["ours"]["tokens"] > 0


def test_the_gpu_suite_refuses_to_run_without_a_gpu_unless_dry(tmp_path):
    import torch

    if torch.cuda.is_available():
        return  # on a GPU machine the real run is what this would start
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), str(tmp_path)],
                          env=dict(os.environ, PYTHON=sys.executable), capture_output=True, text=True)
    assert done.returncode == 2 and "no CUDA device" in done.stderr
