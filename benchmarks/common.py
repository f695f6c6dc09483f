"""Shared helpers of the benchmark scripts: what machine measured, and interleaved timing.

Every script prints :func:`describe_machine` first. Timings use :func:`interleaved`: the
variants of one figure run in turns, round after round, so that a slow spell of a noisy
machine hits all of them alike; the median and the minimum over rounds are reported.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable

import torch


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    """The CPU's feature flags (empty where /proc/cpuinfo is missing)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def describe_machine(device: str = "cpu", threads: int | None = None) -> str:
    """One paragraph: machine, CPU and its vector units, torch version, threads (this
    process's, or ``threads`` when the timing runs in a child process), device."""
    flags = cpu_flags()
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16") if f in flags]
    lines = [
        f"machine  {platform.platform()}, {os.cpu_count()} CPUs: {cpu_model()}",
        f"         vector units: {', '.join(simd) or 'unknown'}",
        f"torch    {torch.__version__}, threads {threads or torch.get_num_threads()}, "
        f"device {device}",
    ]
    if device.startswith("cuda") and torch.cuda.is_available():
        lines.append(f"gpu      {torch.cuda.get_device_name(device)}")
    return "\n".join(lines)


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, B on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def interleaved(
    variants: dict[str, Callable[[], object]],
    rounds: int = 7,
    warmup: int = 1,
    device: str = "cpu",
) -> dict[str, dict[str, float]]:
    """Seconds per call of each variant, measured in turns (warm-up calls excluded), and the
    process's minor page faults per call (memory the kernel had to map afresh: a cost that
    timings on a noisy machine hide, and that depends on what ran before).

    Returns:
        ``{name: {"median": s, "min": s, "faults": median page faults per call}}``.
    """
    for fn in variants.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in variants}
    faults: dict[str, list[int]] = {k: [] for k in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            _sync(device)
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
            faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return {
        k: {"median": statistics.median(v), "min": min(v), "faults": statistics.median(faults[k])}
        for k, v in times.items()
    }


def sgemm_peak(threads: int | None = None, size: int = 2048, dtype=torch.float32) -> float:
    """Achieved GFLOP/s of a large matrix product: the practical compute ceiling of this CPU
    for ``dtype`` at the current thread count (vendor BLAS, cache-friendly blocking)."""
    a = torch.randn(size, size, dtype=dtype)
    b = torch.randn(size, size, dtype=dtype)
    for _ in range(2):
        a @ b
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best / 1e9
