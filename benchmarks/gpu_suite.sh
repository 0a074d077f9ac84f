#!/usr/bin/env bash
# The GPU suite (issue #24): one command, at most ~8 minutes on one GPU, no network; writes OUT/gpu_suite.json.
#
#   bash benchmarks/gpu_suite.sh OUT          # on a lent GPU machine (see benchmarks/gpu_suite.py for the steps)
#   bash benchmarks/gpu_suite.sh --dry OUT    # on the CPU, toy sizes: every step runs (CI does this)
#
# GPU_SUITE_STEPS picks steps (default: all). PYTHON picks the interpreter (default: .venv/bin/python where it exists, else python3); NANOGPT names a
# karpathy/nanoGPT checkout to add its model to the training step. On the GPU machine nothing can be
# downloaded: the working tree travels, with GPT-2's vocabulary copied into a carried, ignored folder and
# named by GPT2_VOCAB_FILE, and src/ put on PYTHONPATH when the package is not installed there.
set -euo pipefail
cd "$(dirname "$0")/.."
dry=()
if [[ "${1:-}" == "--dry" ]]; then dry=(--dry); shift; fi
out=${1:?usage: gpu_suite.sh [--dry] OUT}
python=${PYTHON:-$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)}
nanogpt=()
if [[ -n "${NANOGPT:-}" ]]; then nanogpt=(--nanogpt "$NANOGPT"); fi
export PYTHONPATH="$PWD/src:$PWD/benchmarks${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# each step is bounded, so a hang cannot eat the lease: 8 minutes for the suite in all
exec timeout 480 "$python" benchmarks/gpu_suite.py "${dry[@]}" "${nanogpt[@]}" \
  --steps "${GPU_SUITE_STEPS:-train,decode,outputs,eval}" "$out"
