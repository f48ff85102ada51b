"""Peak memory of a job: the process's peak resident set (CPU) or the CUDA allocator's peak (GPU)."""
from __future__ import annotations

import copy
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn


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
    hwm = _proc_mb("/proc/self/status", "VmHWM:")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peak_mb_or_none(device: torch.device) -> float | None:
    """peak_mb for a failed job's record, None where it cannot be read (after a CUDA error the context may refuse
    every call): reading it must not hide the job's own error."""
    try:
        return peak_mb(device)
    except Exception:
        return None


def _proc_mb(path: str, key: str) -> float | None:
    """The `key` line of a /proc file (a size in kB) in MiB; None where there is no such file or line."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def activation_bytes(cnn: nn.Module, layers: Sequence[Any], tap: str, size: tuple[int, int]) -> int:
    """Bytes autograd keeps for the backward of one fp32 evaluation (features + Gram matrices of `layers` of a
    (1, 3, H, W) image), counted by running `cnn` on the meta device: nothing is allocated or computed. Under bf16
    autocast the features take half of this: the estimate is then an upper bound."""
    return meta_pass(cnn, layers, tap, size)[0]


# The content loss's own memory at its largest feature map: the target held there and the loss's temporaries
# (difference, square, their gradients) beside the kept activations; a Gram loss's temporaries are Gram-sized.
# Measured (CPU, VGG19, 874x1024, content only, 3 iterations; the optimisation's peak above the process before
# its targets, MiB): content_layers=[0] 1718 against 489 estimated from the kept activations alone (3.5x under: a
# 24 GB job passed the check at 4000 px and the kernel killed the sweep), i.e. 5.6 x its feature map (218.5 MiB)
# more; 6 (rounded up) gives 1800. content_layers=[4] 1648 against 1848 (12% over). Our calibration, two points,
# CPU only.
CONTENT_FEATURE_MAPS = 6.0


def meta_pass(cnn: nn.Module, layers: Sequence[Any], tap: str, size: tuple[int, int],
              content_layers: Sequence[Any] = ()) -> tuple[int, int]:
    """(activation_bytes, bytes of the largest feature map among `content_layers`) from one meta-device pass."""
    from nst.features import Encoder
    from nst.losses import gram

    kept: dict[int, torch.Tensor] = {}  # held until the end, so that no id is reused

    def pack(t: torch.Tensor) -> torch.Tensor:
        base = t if t._base is None else t._base  # a view and its base, or one tensor saved twice, count once
        if id(base) not in weights:  # the conv weights are the network's, counted once by the caller
            kept[id(base)] = base
        return t

    net = cnn if next(cnn.parameters()).is_meta else copy.deepcopy(cnn).to("meta")
    weights = {id(p) for p in net.parameters()}
    x = torch.empty(1, 3, size[1], size[0], device="meta", requires_grad=True)
    largest = 0
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        for layer, f in Encoder(net, layers, tap)(x).items():
            gram(f)
            if layer in content_layers:
                largest = max(largest, f.numel() * 4)
    return sum(t.numel() * t.element_size() for t in kept.values()), largest


def estimate_mb(cnn: nn.Module, layers: Sequence[Any], tap: str, size: tuple[int, int], *, history: int,
                content_layers: Sequence[Any] = ()) -> float:
    """Estimated peak MiB of one job beyond the process's own: 1.4x the activations kept for the backward (the
    backward's transient gradients), the content loss's (CONTENT_FEATURE_MAPS x its largest feature map), the
    network's weights, and L-BFGS's `history` pairs of vectors plus five more (direction, gradients, image), each
    the image's size in fp32.

    Calibrated with benchmarks/memory.py (VGG19, default layers, 5 iterations): the measured peak less the weights
    and L-BFGS vectors was 1.14-1.19x the kept activations on a CPU (512-2048 px) and 1.19-1.24x on an H200
    (1024-2048 px; at <= 512 px the H200's peak is cuDNN's autotuning workspace, up to 16 GiB, not the job's)."""
    pixels = 3 * size[0] * size[1] * 4
    kept, largest = meta_pass(cnn, layers, tap, size, content_layers)
    return (1.4 * kept + CONTENT_FEATURE_MAPS * largest + (2 * history + 5) * pixels) / 2**20 + weights_mb(cnn)


def weights_mb(cnn: nn.Module) -> float:
    """The network's weights in MiB, fp32."""
    return sum(p.numel() * 4 for p in cnn.parameters()) / 2**20


def batch_job_mb(cnn: nn.Module, layers: Sequence[Any], tap: str, size: tuple[int, int], *, history: int,
                 content_layers: Sequence[Any] = ()) -> float:
    """Estimated MiB each job adds to a batch (nst/batch.py; the weights are shared): 1.4x one image's kept
    activations and the content loss's memory, as estimate_mb, and batched L-BFGS's image-sized fp32 vectors per
    job (nst/batched_lbfgs.py): its `history` pairs twice (the ring buffer and the newest-first copy a direction
    is computed from), x, d, g, the previous g, three line-search gradients and the trial point."""
    pixels = 3 * size[0] * size[1] * 4
    kept, largest = meta_pass(cnn, layers, tap, size, content_layers)
    return (1.4 * kept + CONTENT_FEATURE_MAPS * largest + (4 * history + 8) * pixels) / 2**20


def held_pairs(optimizer: Mapping[str, Any], steps: int) -> int:
    """Image-sized vector pairs an optimiser holds after `steps` iterations: L-BFGS at most steps - 1 of its
    history_size, Adam its two moments (one pair)."""
    return min(optimizer["history_size"], max(steps - 1, 0)) if optimizer["name"] == "lbfgs" else 1


def job_estimate_mb(cnn: nn.Module, layers: Sequence[Any], size: tuple[int, int], *, tap: str | None, loss: str,
                    optimizer: Mapping[str, Any], steps: int, content_layers: Sequence[Any] = ()) -> float:
    """estimate_mb for a job's settings: its tap (None: its loss convention's) and its optimiser's held pairs."""
    from nst.losses import convention

    return estimate_mb(cnn, layers, tap or convention(loss).tap, size, history=held_pairs(optimizer, steps),
                       content_layers=content_layers)


def available_mb(device: torch.device) -> float | None:
    """Memory a job can still take: free CUDA memory, else MemAvailable (Linux); None where unknown."""
    if device.type == "cuda":  # free on the card, and what torch's allocator holds cached but unused
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return (torch.cuda.mem_get_info(device)[0] + cached) / 2**20
    return _proc_mb("/proc/meminfo", "MemAvailable:")
