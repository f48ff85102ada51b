"""What a benchmark ran on, for the header of its table (imported by the scripts beside it)."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

from nst.metrics import cpu_model

FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what decides torch's CPU kernels (bf16 above all)


def describe(device: str | torch.device = "cpu") -> str:
    """The GPU's name, or the CPU model with its vector extensions and torch's thread count; torch, python."""
    if torch.device(device).type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        lines = info.splitlines()
        flags = set(next((ln.split(":", 1)[1].split() for ln in lines if ln.startswith("flags")), []))
        vector = ", ".join(f for f in FLAGS if f in flags) or "no AVX2"
        where = f"{cpu_model()} ({vector}), {torch.get_num_threads()} threads"
    return f"{where}, torch {torch.__version__}, python {platform.python_version()}"
