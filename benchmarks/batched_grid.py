"""The write-up's grid through Hydra's basic launcher and through `hydra/launcher=batched`, in one run.

    python benchmarks/batched_grid.py [--size 128] [--steps 30] [--device cpu] [--repeats 1] [--keep DIR]

Prints each launcher's wall time (the whole command: start-up, targets, 25 optimisations, report, figures),
the sum of the jobs' optimisation seconds, and how far each batched job's final total loss is from the same job
run alone (fp32 rounding differs between a batch and a single image, and L-BFGS amplifies it), with the job
furthest from its solo run named (iterations, evaluations, stop reason of both). --keep DIR keeps both sweeps.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from machine import describe

ROOT = Path(__file__).resolve().parents[1]


def grid(launcher: str | None, size: int, steps: int, device: str, out: Path) -> float:
    """Wall seconds of one `experiments.grid` command."""
    args = [sys.executable, "-m", "experiments.grid", f"size={size}", f"steps={steps}", f"device={device}",
            "progress=false", f"hydra.sweep.dir={out}"] + ([f"hydra/launcher={launcher}"] if launcher else [])
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the sweeps here instead of a temporary directory")
    args = parser.parse_args()
    print(f"{describe(args.device)}; 25 jobs, {args.size} px, {args.steps} iterations")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        walls = {"basic": [], "batched": []}
        for r in range(args.repeats):
            for name in walls:
                walls[name].append(grid(None if name == "basic" else name, args.size, args.steps, args.device,
                                        Path(tmp) / f"{name}{r}"))
        basic, batched = (pd.read_csv(Path(tmp) / f"{n}0" / "report.csv").set_index("job") for n in walls)
        diff = (batched["total_loss"] / basic["total_loss"] - 1).abs()
        print("| launcher | wall s (median) | jobs' optimisation s | ok |")
        print("| --- | --- | --- | --- |")
        for name, df in (("basic", basic), ("batched", batched)):
            seconds = df["seconds"].sum() if name == "basic" else df["seconds"].max()
            print(f"| {name} | {statistics.median(walls[name]):.1f} | {seconds:.1f} | {(df['status'] == 'ok').sum()} |")
        print(f"basic / batched wall: {statistics.median(walls['basic']) / statistics.median(walls['batched']):.2f}x; "
              f"batched final total loss vs alone: median {diff.median():.1%}, max {diff.max():.1%}")
        worst = diff.idxmax()
        for name, df in (("basic", basic), ("batched", batched)):
            row = df.loc[worst]
            print(f"  furthest, {name}: {worst}: total loss {row['total_loss']:.4g}, {row['steps']} iterations, "
                  f"{row['evaluations']} evaluations, stop reason {row.get('stop_reason')}")


if __name__ == "__main__":
    main()
