"""Wall time of the 5x5 grid (one sweep, one process) next to 25 separate pastiche runs with the same settings.

    python benchmarks/grid.py [--size 128] [--steps 50]

Ours: `python -m experiments.grid size=S steps=N` (its start-up, report and figures included), as is (basic
launcher, strong-Wolfe line search), with plain L-BFGS steps like pastiche's (`optimizer.line_search=null`),
and with plain steps on the joblib launcher, one thread per job (`hydra/launcher=parallel threads=1`).
pastiche: 25 command-line runs, each with the grid cell's style layers (conv 0..k -> block1_relu1 ...),
content layer conv 4 (block3_relu1), size, steps and images; each run loads its model and computes its targets.
Both use the embedded default images and L-BFGS from white noise on this machine's CPU, one after the other.
"""
from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
import time

import torch

from nst.assets import embedded
from nst.vgg import layer_names

BETAS = ["1e2", "1e3", "1e4", "1e5", "1e6"]
VARIANTS = {"as is (line search)": [], "plain L-BFGS": ["optimizer.line_search=null"],
            "plain L-BFGS, parallel, 1 thread/job": ["optimizer.line_search=null", "hydra/launcher=parallel",
                                                     "threads=1"]}


def pastiche_layer(index: int) -> str:
    """Our conv index -> pastiche's name of the rectified output (3 -> block2_relu2)."""
    name = [n for n in layer_names() if n.startswith("relu")][index]  # relu2_2
    block, i = name[4:].split("_")
    return f"block{block}_relu{i}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    content, style = str(embedded("grace_hopper")), str(embedded("kandinsky"))
    ours = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in VARIANTS.items():
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "experiments.grid", f"size={args.size}", f"steps={args.steps}",
                            "progress=false", *extra, f"hydra.sweep.dir={tmp}/{len(ours)}"], check=True,
                           capture_output=True)
            ours[name] = time.perf_counter() - start
        start = time.perf_counter()
        for depth in range(1, 6):
            for beta in BETAS:
                subprocess.run([sys.executable, "-m", "pastiche", "--device", "cpu", "--size", str(args.size),
                                "--num-steps", str(args.steps), "--random-init", "--seed", "0", "--no-verbose",
                                "--content-layers", pastiche_layer(4),
                                "--style-layers", *[pastiche_layer(i) for i in range(depth)],
                                "--style-weights", beta, "--content", content, "--styles", style,
                                "--output", f"{tmp}/pastiche.png"], check=True, capture_output=True)
        theirs = time.perf_counter() - start
    print(f"# {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"{args.size} px, {args.steps} L-BFGS iterations per job")
    print(f"pastiche x25: {theirs:.1f} s")
    print("ours                                   grid s  pastiche/ours")
    for name, seconds in ours.items():
        print(f"{name:37s}  {seconds:7.1f}  {theirs / seconds:13.2f}")


if __name__ == "__main__":
    main()
