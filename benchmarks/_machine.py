"""What every benchmark shares: the machine-details block it prints first (so a figure can be tied to where it
was taken), and interleaved timing."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import time


def cpu_model() -> str:
    """The CPU's name, class and the flags that decide it (gpt2.hardware): every figure is tied to a class."""
    from gpt2.hardware import cpu

    return cpu().describe()


def default_dtypes() -> list[str]:
    """fp32, and bf16 where this CPU multiplies it natively: emulated bf16 (AVX2, AVX-512 without BF16) is
    10-80x slower and would only time the emulation. Ask for it with --dtypes to see that."""
    from gpt2.hardware import cpu

    return ["fp32", "bf16"] if cpu().native_bf16 else ["fp32"]


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine_details(packages: list[str]) -> str:
    """CPU model, class and flags, cores, torch threads, load average (1/5/15 min) and the versions of `packages`."""
    lines = [f"CPU: {cpu_model()}; {os.cpu_count()} cores"]
    threads = ""
    if "torch" in packages:
        import torch

        threads = f"torch threads {torch.get_num_threads()}; "
    lines.append(f"{threads}OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}, "
                 f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '-')}; load average {load_average()}")
    versions = []
    for name in ["python", *packages]:
        if name == "python":
            versions.append(f"python {platform.python_version()}")
            continue
        try:
            versions.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} absent")
    lines.append(", ".join(versions))
    return "\n".join(lines)


def time_alternately(fns: list, repeats: int, warmup: int = 1) -> tuple[list[float], list]:
    """Median wall time and last output of each function, run in turn (after `warmup` rounds) so that load
    from elsewhere on the machine hits all of them alike."""
    for _ in range(warmup):
        for fn in fns:
            fn()  # allocator, kernels, lazy initialisation, caches
    times: list[list[float]] = [[] for _ in fns]
    outputs = [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            outputs[i] = fn()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times], outputs
