"""Host syncs per iteration of the optimisation loop: the former engine (a copy below) against nst/engine.py.

    python benchmarks/syncs.py [--device cpu|cuda] [--size 128] [--steps 10] [--repeats 3] [--optimizers lbfgs adam]

The paper layer set (content relu4_2, style relu1_1 ... relu5_1, paper convention, beta 1e3, VGG19 original weights)
on the embedded images (grace_hopper + kandinsky; --content/--style for others), white-noise start.

Counted, per iteration, in a run of --steps iterations after a warm-up run:
- host reads (any device): every read of a tensor value by the host, seen by a TorchDispatchMode as
  aten._local_scalar_dense (item(), float(), bool(), `if t > 0:`, a tensor given as a Scalar such as
  add_(alpha=tensor)) or as a copy from the device to the CPU, plus Tensor.tolist() calls on CPU tensors
  (patched here: they dispatch nothing). On CUDA each is a device sync; on the CPU it is the proxy for one.
- CUDA only: torch.cuda.set_sync_debug_mode("warn") warnings (the syncs CUDA itself sees).
Each is split by where it comes from, the innermost frame outside torch's internals: "engine" (nst/engine.py or the
former engine in this file), "torch.optim" (torch's LBFGS/Adam) or "other" (the model, nst/transfer.py ...).
Timed: seconds per iteration and per evaluation of runs without counters (medians of --repeats, former and current
alternating). The scale each engine gives L-BFGS changes its line search a little, hence evaluations per iteration:
compare s/eval for the cost of the reads themselves.
"""
from __future__ import annotations

import argparse
import inspect
import math
import platform
import statistics
import sys
import time
import warnings
import weakref
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nst.assets import embedded
from nst.backbones import backbone
from nst.engine import NonFiniteLoss, Progress, Result, make_optimizer, optimise
from nst.images import load_image
from nst.transfer import StyleTransfer, Terms

CONTENT_LAYERS = ["relu4_2"]
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
LR = {"lbfgs": 1.0, "adam": 5.0}  # conf/optimizer/*.yaml


def old_numbers(terms: Terms) -> dict[str, float]:
    """The former `numbers`: every term read back at each evaluation."""
    names = ["total_loss", "content_loss", "style_loss", "tv_loss"]
    names += [f"content/{k}" for k in terms.content_layers] + [f"style/{k}" for k in terms.style_layers]
    values = [terms.total, terms.content, terms.style, terms.tv, *terms.content_layers.values(),
              *terms.style_layers.values()]
    return dict(zip(names, torch.stack([v.detach().float() for v in values]).tolist()))


def old_optimise(model: Callable[[torch.Tensor], Terms], init: torch.Tensor, *, steps: int, optimizer: str = "lbfgs",
                 lr: float = 1.0) -> Result:
    """The former optimise() (commit 696b691), its reads and scaling unchanged: the 'before' of this table."""
    x = init.detach().clone().requires_grad_(True)
    opt = make_optimizer(optimizer, [x], steps=max(1, steps), lr=lr)
    history: list[Progress] = []
    pending: Progress | None = None
    evaluations, adam_iteration, start = 0, 0, time.perf_counter()

    def iteration() -> int:
        return opt.state[x].get("n_iter", 0) if optimizer == "lbfgs" else adam_iteration

    def record(terms: dict[str, float]) -> None:
        nonlocal pending
        if not math.isfinite(terms["total_loss"]):
            raise NonFiniteLoss(f"loss became {terms['total_loss']} at iteration {iteration()}")
        now = Progress(iteration(), evaluations, time.perf_counter() - start, terms)
        if pending is not None and pending.iteration != now.iteration:
            history.append(pending)
        pending = now

    scale: float | None = None

    def closure() -> torch.Tensor:
        nonlocal evaluations, scale
        opt.zero_grad(set_to_none=True)
        terms = model(x)
        evaluations += 1
        record(old_numbers(terms))  # a read per evaluation, before the backward
        loss = terms.total if scale is None else terms.total / scale
        loss.backward()
        if scale is None:
            scale = max(1.0, x.grad.abs().sum().item())
            x.grad.div_(scale)
            loss = loss.detach() / scale
        return loss

    if optimizer == "lbfgs":
        opt.step(closure)
    else:
        for adam_iteration in range(steps):
            opt.step(closure)
        adam_iteration = steps
    seconds = time.perf_counter() - start
    with torch.no_grad():
        final = old_numbers(model(x))
    record(final)
    history.append(pending)
    return Result(x.detach(), final, iteration(), evaluations, seconds, history)


def old_lines() -> range:
    """The lines of this file that hold the former engine (old_numbers and old_optimise)."""
    first, last = old_numbers.__code__.co_firstlineno, old_optimise.__code__.co_firstlineno
    return range(first, last + len(inspect.getsourcelines(old_optimise)[0]))


def where(path: str, line: int) -> str | None:
    """'engine', 'torch.optim' or 'other' for a frame; None for torch's own internals and this file's counters."""
    path = path.replace("\\", "/")
    if path.endswith("nst/engine.py") or (path.endswith("benchmarks/syncs.py") and line in OLD_LINES):
        return "engine"
    if "/torch/optim/" in path:
        return "torch.optim"
    if "/torch/" in path or path.endswith("benchmarks/syncs.py"):
        return None
    return "other"


def origin() -> str:
    """Where the current host read comes from: the innermost frame outside torch's internals and the counters."""
    frame = sys._getframe(1)
    while frame is not None:
        kind = where(frame.f_code.co_filename, frame.f_lineno)
        if kind:
            return kind
        frame = frame.f_back
    return "other"


class HostReads(TorchDispatchMode):
    """Counts reads of the device's tensor values by the host (see the module docstring), by origin().

    A tensor the host made itself (torch.tensor(3.0): aten.lift_fresh) holds no device value: reading it is no
    sync, so it is not counted (on the CPU every tensor is a CPU tensor, hence this bookkeeping)."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = device
        self.counts: Counter[str] = Counter()
        self.host_made: weakref.WeakSet[torch.Tensor] = weakref.WeakSet()

    def on_device(self, t: torch.Tensor) -> bool:
        return t.device.type == self.device.type and t not in self.host_made

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default and self.on_device(args[0]):
            self.counts[origin()] += 1
        elif func is torch.ops.aten._to_copy.default and self.device.type != "cpu":
            if args[0].device.type != "cpu" and str(kwargs.get("device", "")).startswith("cpu"):
                self.counts[origin()] += 1
        elif func is torch.ops.aten.copy_.default and self.device.type != "cpu":
            if args[1].device.type != "cpu" and args[0].device.type == "cpu":
                self.counts[origin()] += 1
        out = func(*args, **kwargs)
        if func in (torch.ops.aten.lift_fresh.default, torch.ops.aten.lift_fresh_copy.default):
            self.host_made.add(out)
        return out

    def __enter__(self):
        plain = torch.Tensor.tolist

        def tolist(t: torch.Tensor):
            if t.device.type == "cpu" and self.on_device(t):  # device tensors' tolist() dispatches a copy, above
                self.counts[origin()] += 1
            return plain(t)

        self._plain, torch.Tensor.tolist = plain, tolist
        return super().__enter__()

    def __exit__(self, *exc):
        torch.Tensor.tolist = self._plain
        return super().__exit__(*exc)


class CudaSyncs:
    """Counts torch.cuda.set_sync_debug_mode("warn") warnings, by the file they point at."""

    def __enter__(self):
        self.counts: Counter[str] = Counter()
        self._catch = warnings.catch_warnings(record=True)
        self._log = self._catch.__enter__()
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        return self

    def __exit__(self, *exc):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("default")
        self._catch.__exit__(*exc)
        for w in self._log:
            if "synchroniz" in str(w.message):
                self.counts[where(str(w.filename), w.lineno) or "other"] += 1


def cpu_model() -> str:
    """The CPU's model name and its vector/matrix flags that matter to torch, from /proc/cpuinfo."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    keep = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]
    return f"{name}; flags {' '.join(keep) or '-'}"


def setup(device: torch.device, size: int, content: str, style: str) -> tuple[StyleTransfer, torch.Tensor]:
    """The paper-layer model at `size` px on `device` and a white-noise start."""
    net, prep = backbone("vgg19", "original", pooling="max")
    c = load_image(content, size)
    s = load_image(style, (c.shape[-1], c.shape[-2]))
    model = StyleTransfer(net.to(device), prep(c).to(device), prep(s).to(device), content_layers=CONTENT_LAYERS,
                          style_layers=STYLE_LAYERS, alpha=1, beta=1e3, convention="paper")
    init = prep(0.5 + 0.1 * torch.randn(c.shape, generator=torch.Generator().manual_seed(0)))
    return model, init.to(device)


def run(version: str, model, init, optimizer: str, steps: int, device: torch.device) -> tuple[Result, float]:
    """One optimisation; (result, wall seconds with the device synchronised at both ends)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    if version == "before":
        result = old_optimise(model, init, steps=steps, optimizer=optimizer, lr=LR[optimizer])
    else:
        result = optimise(model, init, steps=steps, optimizer=optimizer, lr=LR[optimizer])
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--optimizers", nargs="+", default=["lbfgs", "adam"], choices=["lbfgs", "adam"])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--content", default=str(embedded("grace_hopper")))
    parser.add_argument("--style", default=str(embedded("kandinsky")))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    print(f"cpu: {cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads; python "
          f"{platform.python_version()}")
    if cuda:
        print(f"device: {torch.cuda.get_device_name(device)}")
    print(f"paper layers, {args.size} px, {args.steps} iterations per run, median of {args.repeats} timed runs\n")
    model, init = setup(device, args.size, args.content, args.style)

    header = ("optimizer", "engine", "evals/it", "reads/it engine", "torch.optim", "other", "total")
    header += ("CUDA syncs/it engine", "total") if cuda else ()
    header += ("s/it", "s/eval")
    rows = []
    for optimizer in args.optimizers:
        run("after", model, init, optimizer, 2, device)  # warm-up: kernels, allocator, lazy init
        seconds: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        for _ in range(args.repeats):
            for version in ("before", "after"):
                result, wall = run(version, model, init, optimizer, args.steps, device)
                seconds[version].append((wall / max(1, result.iterations), wall / max(1, result.evaluations)))
        for version in ("before", "after"):
            with HostReads(device) as reads:
                result, _ = run(version, model, init, optimizer, args.steps, device)
            n = max(1, result.iterations)
            row = [optimizer, version, f"{result.evaluations / n:.2f}"]
            row += [f"{reads.counts[k] / n:.2f}" for k in ("engine", "torch.optim", "other")]
            row += [f"{sum(reads.counts.values()) / n:.2f}"]
            if cuda:
                with CudaSyncs() as syncs:
                    result, _ = run(version, model, init, optimizer, args.steps, device)
                n = max(1, result.iterations)
                row += [f"{syncs.counts['engine'] / n:.2f}", f"{sum(syncs.counts.values()) / n:.2f}"]
            row += [f"{statistics.median(s[i] for s in seconds[version]):.4f}" for i in (0, 1)]
            rows.append(row)
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(v).rjust(w) for v, w in zip(r, widths)))


OLD_LINES = old_lines()

if __name__ == "__main__":
    main()
