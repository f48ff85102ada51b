"""Peak memory of a job: the process's peak resident set (CPU) or the CUDA allocator's peak (GPU)."""
from __future__ import annotations

import resource
from pathlib import Path

import torch


def reset_peak(device: torch.device) -> None:
    """Start measuring a job's peak from now (Linux: /proc/self/clear_refs resets VmHWM)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux, or not permitted: the peak then covers the whole process's life
        pass


def peak_mb(device: torch.device) -> float:
    """Peak memory in MiB since `reset_peak`: CUDA max_memory_allocated, else the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
