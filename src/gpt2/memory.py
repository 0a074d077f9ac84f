"""Keep freed memory in a CPU process (training, evaluation) instead of handing it back to the kernel every step.

glibc's malloc serves every block above its mmap threshold (at most 32 MiB) with a fresh `mmap` and returns
it with `munmap` when freed. A training step on CPU allocates gigabytes of such blocks (the logits over
GPT-2's 50,257-id vocabulary and their gradients alone are 4 x batch x seq_len x 50,257 bytes each), so
every step page-faults them all back in, and the kernel zeroes each 4 KiB page on the way: for a small
model that can be half the wall time of its steps. With mmap off and
trimming off, large blocks come from the heap and stay there after `free`, so from the second step on a
step reuses the memory of the last one. The process then keeps its peak footprint until `restore` (the
Trainer calls it in `close`). docs/training.md has the paired-step measurements
(benchmarks/bench_train.py --malloc-defaults is the other side).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
from collections.abc import Callable

# mallopt parameters (glibc's malloc.h) and their defaults
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
_DEFAULT_TRIM_THRESHOLD, _DEFAULT_MMAP_MAX = 128 * 1024, 65536
_NEVER_TRIM = 2**31 - 1  # mallopt takes an int: ~2 GiB of free heap top is kept, more is trimmed
_holders = 0  # Trainers in this process that asked for it; the defaults come back when the last one is done


def retain_freed_memory() -> Callable[[], None] | None:
    """Make glibc keep freed large blocks for reuse; returns a function that undoes it (restoring the
    defaults and returning the kept memory to the kernel once no other caller still wants it), or None
    where this is not glibc and nothing was changed."""
    global _holders
    libc = _glibc()
    if libc is None or not _apply(libc, retain=True):
        return None
    _holders += 1
    released = False

    def restore() -> None:
        global _holders
        nonlocal released
        if not released:
            released = True
            _holders -= 1
            if _holders == 0:
                _apply(libc, retain=False)

    return restore


def _apply(libc: ctypes.CDLL, retain: bool) -> bool:
    if retain:
        if libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM):
            return True
    libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
    libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
    libc.malloc_trim(0)
    return False


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
