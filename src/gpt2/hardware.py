"""What this machine computes fast, and the one `auto` rule for device and dtype that every command uses.

x86-64 CPUs fall into classes that differ by two orders of magnitude in bfloat16:

    class          instructions                               bf16 matrix products
    amx            AMX-BF16 tiles (Xeon 4th gen on)           native: several times fp32's speed
    avx512-bf16    AVX512-BF16 (EPYC Zen 4 on, Xeon 3rd gen)  native: two to three times fp32's speed
    avx512         AVX-512 without BF16 (Skylake-SP)          emulated by conversions: slower than fp32
    avx2           AVX2 + FMA only                            emulated: an order of magnitude slower
    baseline       neither

(docs/benchmarks.md has the measured figures for each class.)

`auto` picks bfloat16 where the products are native (CUDA with compute capability >= 8.0, or the first two
CPU classes) and float32 elsewhere; asking for bfloat16 where it is emulated works but warns with the cost.

The class is what PyTorch's kernels will really use, not only what the processor has: ATen's dispatch level
(`ATEN_CPU_CAPABILITY`) and oneDNN's ISA limit (`ONEDNN_MAX_CPU_ISA`) can lower it. So
`ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2` runs any AVX-512 machine as an AVX2 one, which is how
CI checks the AVX2 paths (`gpt2 info --machine` prints what the process sees).
"""

from __future__ import annotations

import functools
import os
import platform
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from gpt2.errors import ConfigError

# The names every command's --dtype accepts, and the torch dtype each stands for ("auto" is resolved first).
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DTYPE_CHOICES = ("auto", *DTYPES)
_NAMES = {v: k for k, v in DTYPES.items()}

# Instruction-set flags that decide the class (names as Linux's /proc/cpuinfo spells them).
FLAGS_THAT_MATTER = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx512bw", "avx512vl", "avx512dq",
                     "avx512_fp16", "amx_fp16", "avx_ne_convert", "avx2", "fma")
_AVX512 = {"amx_bf16", "amx_tile", "amx_fp16", "avx512_bf16", "avx512f", "avx512bw", "avx512vl", "avx512dq",
           "avx512_fp16"}
# torch.cpu.get_capabilities() spells a few flags differently from /proc/cpuinfo.
_TORCH_NAMES = {"avx512_f": "avx512f", "avx512_bw": "avx512bw", "avx512_vl": "avx512vl", "avx512_dq": "avx512dq",
                "fma3": "fma"}


class SlowDtypeWarning(UserWarning):
    """A dtype was asked for that this device only emulates."""


@dataclass(frozen=True)
class CPU:
    """The processor as PyTorch's kernels see it."""

    name: str
    flags: frozenset[str]  # the subset of FLAGS_THAT_MATTER the kernels may use
    mhz: float = 2000.0

    @property
    def kind(self) -> str:
        if "amx_bf16" in self.flags:
            return "amx"
        if "avx512_bf16" in self.flags:
            return "avx512-bf16"
        if "avx512f" in self.flags:
            return "avx512"
        if "avx2" in self.flags:
            return "avx2"
        return "baseline"

    @property
    def native_bf16(self) -> bool:
        """bf16 matrix products run in hardware (AMX tiles or AVX512-BF16 dot products), faster than fp32."""
        return self.kind in ("amx", "avx512-bf16")

    @property
    def bf16_without_emulation(self) -> bool:
        """bf16 runs without emulation, though maybe no faster than fp32 (AVX-NE-CONVERT converts natively)."""
        return self.native_bf16 or "avx_ne_convert" in self.flags

    def describe(self) -> str:
        shown = [f for f in FLAGS_THAT_MATTER if f in self.flags]
        return f"{self.name} [{self.kind}] ({' '.join(shown) or 'no vector extensions'})"


@functools.cache
def cpu() -> CPU:
    """This machine's CPU, read once: its flags, lowered to what ATen's dispatch and oneDNN will use."""
    flags, name, mhz = _processor()
    aten = torch.backends.cpu.get_cpu_capability()  # "DEFAULT", "AVX2", "AVX512", "ZVECTOR", ...
    if aten in ("DEFAULT", "AVX2"):
        flags -= _AVX512
    if aten == "DEFAULT":
        flags -= {"avx2", "fma"}
    flags -= _above_onednn_limit(os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA"))
    if not _onednn_bf16():
        flags -= {"amx_bf16", "avx512_bf16", "avx_ne_convert"}
    return CPU(name=name, flags=frozenset(flags), mhz=mhz)


def _above_onednn_limit(limit: str | None) -> set[str]:
    """The flags that oneDNN's ISA limit (names as in its documentation: AVX2, AVX512_CORE_BF16, ...) rules out."""
    limit = (limit or "ALL").upper()
    if limit == "ALL" or "AMX" in limit:
        return set()
    if limit == "AVX512_CORE_FP16":
        return {"amx_bf16", "amx_tile", "amx_fp16"}
    if limit == "AVX512_CORE_BF16":
        return {"amx_bf16", "amx_tile", "amx_fp16", "avx512_fp16"}
    if limit.startswith("AVX512"):
        return {"amx_bf16", "amx_tile", "amx_fp16", "avx512_fp16", "avx512_bf16"}
    if limit == "AVX2_VNNI_2":
        return set(_AVX512)
    return {*_AVX512, "avx_ne_convert"}


def _processor() -> tuple[set[str], str, float]:
    """(flags that matter, model name, MHz) from torch's cpuinfo where it has it, else /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    info: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())  # the first processor's lines
    flags, name = set(info.get("flags", "").split()), info.get("model name") or platform.processor() or "CPU"
    get = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.6: cpuinfo's reading, on every OS
    if get is not None:
        caps = get()
        flags = {_TORCH_NAMES.get(k, k) for k, v in caps.items() if v is True}
        name = caps.get("cpu_name") or name
    try:
        mhz = float(info.get("cpu MHz", ""))
    except ValueError:
        mhz = 2000.0
    return flags & set(FLAGS_THAT_MATTER), name, mhz


def _onednn_bf16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# ---- device and dtype ----

def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """`auto` (or None): CUDA when PyTorch sees a GPU, else the CPU. Any other name is torch's own (`cpu`,
    `cuda:1`, `mps`); a bare `cuda` under torchrun is GPU LOCAL_RANK."""
    if name is None or name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and "LOCAL_RANK" in os.environ:  # one GPU per process under torchrun
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a torch device; expected auto, cpu, cuda or cuda:N") from None


def int8_activations() -> str:
    """What `--dtype int8` feeds its int8 weights on this CPU (gpt2.quantize): `int8` (fbgemm's integer GEMMs)
    where bfloat16 is emulated, `bf16` (the weight-only kernel) where it is native."""
    return "bf16" if cpu().native_bf16 else "int8"


def auto_dtype(device: torch.device | str) -> torch.dtype:
    """bfloat16 where this device multiplies it natively, float32 elsewhere: the same rule for training
    (as autocast's compute dtype) and inference (as the weights' dtype)."""
    device = torch.device(device)
    if device.type == "cuda":  # tensor cores with bf16 from compute capability 8.0 (Ampere); earlier ones emulate
        return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float32
    if device.type == "cpu":
        return torch.bfloat16 if cpu().native_bf16 else torch.float32
    return torch.float32


def resolve_dtype(name: str | torch.dtype | None, device: torch.device | str) -> torch.dtype:
    """The torch dtype for a --dtype value (`auto`, `fp32`, `bf16`, `fp16`, or a torch dtype) on `device`.
    Asking for a half-precision type that the device only emulates warns (SlowDtypeWarning) with the cost."""
    if name is None or name == "auto":
        return auto_dtype(device)
    if isinstance(name, torch.dtype):
        dtype = name
    elif name in DTYPES:
        dtype = DTYPES[name]
    elif isinstance(getattr(torch, str(name), None), torch.dtype) and getattr(torch, name) in _NAMES:
        dtype = getattr(torch, name)  # "float32", "bfloat16": the spelling saved detectors use
    else:
        raise ConfigError(f"dtype must be one of {', '.join(DTYPE_CHOICES)}; got {name!r}")
    reason = emulation_cost(dtype, device)
    if reason:
        warnings.warn(reason, SlowDtypeWarning, stacklevel=2)
    return dtype


def emulation_cost(dtype: torch.dtype, device: torch.device | str) -> str | None:
    """Why `dtype` on `device` is emulated and what that costs, or None where it runs natively."""
    device = torch.device(device)
    if device.type != "cpu" or dtype == torch.float32:
        return None
    c = cpu()
    if dtype == torch.bfloat16 and not c.bf16_without_emulation:
        return (f"bf16 on this CPU ({c.name}, class {c.kind}: no AMX-BF16 or AVX512-BF16) is emulated: "
                "matrix products go through conversions, measured about 80x slower than fp32 for training "
                "on an AVX2-only EPYC; use --dtype fp32 (what auto picks here)")
    if dtype == torch.float16 and not {"avx512_fp16", "amx_fp16"} & c.flags:
        return (f"fp16 on this CPU ({c.name}, class {c.kind}: no AVX512-FP16 or AMX-FP16) is emulated and "
                "slower than fp32; use --dtype fp32 or auto")
    return None


def dtype_name(dtype: torch.dtype) -> str:
    """`fp32`, `bf16` or `fp16`: how commands and reports name a dtype."""
    return _NAMES.get(dtype, str(dtype).removeprefix("torch."))


# ---- oneDNN's packed layouts ----

@functools.cache
def packed_dtypes() -> frozenset[torch.dtype]:
    """The dtypes whose linear weights oneDNN can prepack here, tried once on a small layer (some builds
    list oneDNN but lack a kernel; on AVX2-only CPUs the bf16 layout is refused)."""
    if not torch.backends.mkldnn.is_available():
        return frozenset()
    works = set()
    for dtype in (torch.float32, torch.bfloat16):
        if dtype == torch.bfloat16 and not _onednn_bf16():
            continue
        try:
            with torch.no_grad(), torch.random.fork_rng(devices=[]):  # leaves the caller's random stream alone
                w, x = torch.randn(8, 16, dtype=dtype), torch.randn(3, 16, dtype=dtype)
                packed = torch.ops.mkldnn._reorder_linear_weight(w, 32)
                y = torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
                if torch.allclose(y.float(), (x @ w.T).float(), rtol=0.02, atol=0.02):
                    works.add(dtype)
        except (RuntimeError, NotImplementedError, AttributeError):
            pass
    return frozenset(works)


# ---- peak throughput, for MFU ----

# Dense peak throughput (FLOP/s) of tensor-core matmuls in bf16 / TF32, from the vendors' datasheets
# (without sparsity). The first entry whose key the device name contains wins, so specific names go first.
_GPU_PEAKS = [
    ("H200", 989e12, 494e12), ("H100 PCIe", 756e12, 378e12), ("H100", 989e12, 494e12),
    ("A100", 312e12, 156e12), ("L40S", 362e12, 183e12), ("L4", 121e12, 60e12),
    ("A10", 125e12, 62e12), ("RTX 4090", 165e12, 83e12), ("RTX 3090", 71e12, 36e12),
]
# CPU FLOPs per cycle per core: AMX does 1024 bf16 FLOPs/cycle (Intel's figure); AVX-512 with two FMA
# units does 2 x 16 lanes x 2 = 64 fp32 FLOPs, AVX2 half that.
# AVX512-BF16's dot product (vdpbf16ps) does two bf16 products per fp32 lane: twice AVX-512's FLOPs.
_CPU_FLOPS_PER_CYCLE = {"amx_bf16": 1024, "avx512_bf16": 128, "avx512f": 64, "avx2": 32}


def peak_flops(device: torch.device, bf16: bool) -> tuple[float | None, str]:
    """(peak FLOP/s of one device or, for CPU, of this process's threads; how it was obtained)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, bf16_peak, tf32_peak in _GPU_PEAKS:
            if key in name:
                return (bf16_peak if bf16 else tf32_peak), f"{name} datasheet"
        return None, f"{name}: no datasheet peak known; pass --peak-tflops"
    if device.type == "cpu":
        c = cpu()
        kind = ("amx_bf16" if bf16 and c.kind == "amx" else
                "avx512_bf16" if bf16 and c.kind == "avx512-bf16" else
                "avx512f" if "avx512f" in c.flags else "avx2")
        threads = torch.get_num_threads()
        per_cycle = _CPU_FLOPS_PER_CYCLE[kind]
        how = f"CPU estimate: {threads} threads x {c.mhz:.0f} MHz x {per_cycle} FLOPs/cycle ({kind})"
        return threads * c.mhz * 1e6 * per_cycle, how
    return None, f"{device.type}: no peak known; pass --peak-tflops"


# ---- what to print ----

def summary() -> dict[str, str]:
    """What this process sees, for `gpt2 info --machine` and CI logs."""
    c = cpu()
    out = {
        "cpu": c.describe(),
        "threads": str(torch.get_num_threads()),
        "torch": torch.__version__,
        "aten kernels": torch.backends.cpu.get_cpu_capability(),
        "bf16 on cpu": "native" if c.native_bf16 else ("not emulated" if c.bf16_without_emulation else "emulated"),
        "packed layouts": ", ".join(dtype_name(d) for d in sorted(packed_dtypes(), key=str)) or "none",
        "int8 products": {"int8": "int8 activations (fbgemm)", "bf16": "bf16 activations (weight-only kernel)"}[
            int8_activations()],
    }
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        out["cuda"] = f"{torch.cuda.get_device_name()} (compute capability {major}.{minor})"
    device = resolve_device("auto")
    out["auto"] = f"device {device}, dtype {dtype_name(auto_dtype(device))}"
    return out


def report() -> str:
    return "\n".join(f"{key:<15} {value}" for key, value in summary().items())
