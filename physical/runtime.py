"""Process-level settings that make batched work on the CPU run at its speed.

glibc's malloc serves every block above ``M_MMAP_THRESHOLD`` (at most 32 MB by default, adapted
upwards as blocks are freed) with a fresh ``mmap`` and returns it to the system when it is freed,
and gives the heap's free top back whenever it exceeds ``M_TRIM_THRESHOLD`` (128 KB by default),
so every large activation of every forward and backward pass is page-faulted in anew. With a batch
of 64 images (an EOT step with N = 8 on 8 images) that makes EfficientNet-Lite0's forward + backward
about 2x slower per image than at batch 8 on 2 cores (85 vs 45 ms; 37 ms with the setting below).
`tune_cpu_allocator` keeps freed memory in the process for reuse (PyTorch's performance guide
suggests jemalloc or tcmalloc for the same reason; this needs no extra library). The price: the
process keeps its peak memory until it exits. A no-op off glibc (macOS, Windows, musl).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import math
import os
import sys
import time
from typing import Callable, Optional

import torch
from tqdm import tqdm

from physical.log import is_quiet, say

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
INT_MAX = 2**31 - 1  # mallopt's value is a C int: 1 << 40 would arrive as 0, i.e. trim on every free


@functools.cache
def tune_cpu_allocator() -> bool:
    """Serve large blocks from the heap and keep freed memory (glibc only); True when applied.
    Once per process."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]  # int mallopt(int, int): no silent truncation
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, INT_MAX))
    except (OSError, AttributeError):
        return False


# -- memory budget ---------------------------------------------------------------------------------
# Batched work (attack steps, EOT's B x N channel draws, classification) runs in micro-batches sized
# from a budget: `run.memory_gb`, or by default from the device's free memory. On the CPU the default
# is also capped: past a few dozen images a bigger batch buys no speed there (the network's passes
# cost the same per image at 16 and at 128), only resident memory.
CPU_DEFAULT_CAP_GB = 2.0
CPU_DEFAULT_FRACTION = 0.25  # of the memory the system says is available
CUDA_DEFAULT_FRACTION = 0.8  # of the device's free memory
# autograd's saved tensors are most of a step's memory; the rest (gradients flowing back, the
# largest temporaries) adds about this fraction on EfficientNet-Lite (measured with
# benchmarks/attacks.py --memory on the CPU)
TRANSIENT = 1.5
GB = 2**30


def available_bytes(device) -> int:
    """Memory free for work on `device`, in bytes: CUDA's free memory, MPS's recommended limit less
    what is allocated, or the system's available RAM (/proc/meminfo, psutil, sysconf)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return int(torch.cuda.mem_get_info(dev)[0])
    if dev.type == "mps":
        try:
            return int(torch.mps.recommended_max_memory() - torch.mps.current_allocated_memory())
        except (AttributeError, RuntimeError):
            pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import psutil  # deferred: optional (not a dependency): the fallback when /proc/meminfo is missing

        return int(psutil.virtual_memory().available)
    except ImportError:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


_MEMORY_GB: Optional[float] = None  # the run's `run.memory_gb`, set once by the pipeline


def set_memory_gb(memory_gb: Optional[float]) -> None:
    """The budget every batched stage of this process uses (`run.memory_gb`; None: the device's default)."""
    global _MEMORY_GB
    _MEMORY_GB = None if memory_gb is None else float(memory_gb)


def memory_budget(device, memory_gb: Optional[float] = None) -> int:
    """Bytes one micro-batch may use on `device`: `memory_gb` when given, else the run's
    `run.memory_gb`, else the device's default."""
    memory_gb = _MEMORY_GB if memory_gb is None else memory_gb
    if memory_gb is not None:
        return int(float(memory_gb) * GB)
    dev = torch.device(device)
    free = available_bytes(dev)
    if dev.type == "cuda":
        return int(CUDA_DEFAULT_FRACTION * free)
    return int(min(CPU_DEFAULT_FRACTION * free, CPU_DEFAULT_CAP_GB * GB))


def saved_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes autograd keeps for the backward pass while `fn()` runs (each storage counted once), plus
    the output's: the memory a forward + backward of that computation holds at its peak, less
    transients."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        seen[st.data_ptr()] = st.nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()) + out.numel() * out.element_size()


def budget_is_set(memory_gb: Optional[float] = None) -> bool:
    """Whether the budget is the user's (`run.memory_gb` or an attack's own): only then is a budget
    that holds not even one image an error. The default follows the memory free at the moment, so
    under it one image at a time always runs (a busy machine must not fail a run)."""
    return memory_gb is not None or _MEMORY_GB is not None


def chunk_size(per_item: int, budget: int) -> int:
    """How many items (each costing `per_item` bytes) fit in `budget` bytes (0: not even one)."""
    return 1 << 30 if per_item <= 0 else int(budget // per_item)


def too_small(per_item: int, budget: int, what: str) -> str:
    """The message for a budget that holds not even one item: it names the smallest that works."""
    need = math.ceil(per_item / GB * 100) / 100
    return (f"run.memory_gb: {budget / GB:.3g} GB is too small for one image of {what} "
            f"(it needs {need:.2f} GB); the smallest budget that works is {need:.2f}")


# -- time estimates --------------------------------------------------------------------------------

def fmt_seconds(s: float) -> str:
    s = max(0.0, float(s))
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


class Eta:
    """A stage's progress: a bar on the terminal (stderr; not with --quiet, nor when stderr is not a
    terminal) whose remaining time follows the recent rate, so the model's warm-up in the first batch
    fades from it; and one line after the first batch (it goes to run.log too): that batch's seconds
    per unit of work (an image, a photo, or an image x step x EOT draw) times the units left, an upper
    bound since the first batch includes the warm-up; and one more once a quarter is done, at the
    rate since the first batch (the warm-up left out)."""

    def __init__(self, stage: str, total: float, log: Optional[Callable[[str], None]] = None, unit: str = "unit"):
        self.stage, self.total = stage, float(total)
        self.log = log or say
        self.t0 = time.perf_counter()
        self.count = 0.0
        self.told = False
        self.first: Optional[tuple[float, float]] = None  # (time, units) at the first batch's end
        self.retold = False
        self.bar = tqdm(total=self.total, desc=f"[{stage}]", unit=unit, leave=False, smoothing=0.3,
                        disable=True if (is_quiet() or self.total <= 0) else None, dynamic_ncols=True,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit}s "
                                   "[{elapsed} spent, about {remaining} left]")

    def describe(self, what: str) -> None:
        """Name what the bar is doing now ('[generate] efficientnet_lite0 bim_eps16')."""
        self.bar.set_description_str(f"[{self.stage}] {what}")

    def done(self, units: float) -> None:
        self.count += units
        self.bar.update(units)
        if self.count >= self.total:
            self.bar.close()
        if self.count >= self.total or self.count <= 0:
            return
        now = time.perf_counter()
        if self.told:
            self._later(now)
            return
        self.told, self.first = True, (now, self.count)
        spent = now - self.t0
        left = spent / self.count * (self.total - self.count)
        self.log(f"[{self.stage}] first batch in {fmt_seconds(spent)}: about {fmt_seconds(left)} left at most, the "
                 f"warm-up included "
                 f"({self.count:g} of {self.total:g} units of work done)")

    def _later(self, now: float) -> None:
        """Once a quarter of the work is done: the time left at the rate since the first batch (the
        warm-up left out), the estimate to trust."""
        if self.retold or self.first is None or self.count < self.total / 4 or self.count <= self.first[1]:
            return
        self.retold = True
        rate = (self.count - self.first[1]) / max(now - self.first[0], 1e-9)
        self.log(f"[{self.stage}] {100 * self.count / self.total:.0f} % done in {fmt_seconds(now - self.t0)}: "
                 f"about {fmt_seconds((self.total - self.count) / rate)} left")
