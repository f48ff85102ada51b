"""The write-up's grid through Hydra's basic launcher and through `hydra/launcher=batched`, in one run.

    python benchmarks/batched_grid.py [--size 128] [--steps 30] [--device cpu] [--precision fp32] [--repeats 1]
                                      [--keep DIR] [--autotune-every-size]

Prints each launcher's wall time (the whole command: start-up, targets, 25 optimisations, report, figures),
the sum of the jobs' optimisation seconds, and how far each batched job's final total loss is from the same job
run alone (fp32 rounding differs between a batch and a single image, and L-BFGS amplifies it), with the job
furthest from its solo run named (iterations, evaluations, stop reason of both). --keep DIR keeps the sweeps.
A batch shrinks once per distinct evaluation count of its jobs (each finished job leaves it): it prints how many
sizes that made (the grid is one batch here, unless a job fails or memory splits it). --autotune-every-size adds
a third run with cuDNN autotuning every batch size (nst/batch.py AUTOTUNE_EVERY_SIZE), the batched launcher's
behaviour before it autotuned the full batch only. For each batched run it prints the first evaluation and the
stretches between two jobs leaving the batch (batch size, evaluations, ms per evaluation: a first evaluation, or
a stretch of one evaluation at a new size, shows what autotuning that size cost), and the basic run's ms per
evaluation of one job.
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


GRID = ["-m", "experiments.grid"]
EVERY_SIZE = "batched, autotune every size"
# each run: how python starts `experiments.grid` (for EVERY_SIZE: with nst.batch.AUTOTUNE_EVERY_SIZE set first),
# and its launcher
RUNS = {"basic": (GRID, []), "batched": (GRID, ["hydra/launcher=batched"]),
        EVERY_SIZE: (["-c", "import runpy, sys; import nst.batch; nst.batch.AUTOTUNE_EVERY_SIZE = True; "
                      "sys.argv[0] = 'experiments.grid'; runpy.run_module('experiments.grid', run_name='__main__')"],
                     ["hydra/launcher=batched"])}


def grid(run: str, size: int, steps: int, device: str, precision: str, out: Path) -> float:
    """Wall seconds of one `experiments.grid` command."""
    start, launcher = RUNS[run]
    args = [sys.executable, *start, f"size={size}", f"steps={steps}", f"device={device}",
            f"precision={precision}", "progress=false", f"hydra.sweep.dir={out}", *launcher]
    t0 = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t0


def phases(sweep: Path) -> list[tuple[int, int, float]]:
    """(batch size, evaluations, seconds) of a one-batch run's first evaluation and of each stretch between two
    jobs leaving the batch, from the evaluation count and time of each job's history.csv rows (a batch evaluates
    all its jobs together)."""
    histories = [h for h in (pd.read_csv(p) for p in sweep.glob("*/history.csv")) if len(h)]
    if not histories:  # a job that fails at its start writes none, so it is missing from the batch sizes too
        return []
    lasts = [h.iloc[-1] for h in histories]
    finals = [int(last["evaluations"]) for last in lasts]
    ends = {e: max(float(last["seconds"]) for last, f in zip(lasts, finals) if f == e) for e in set(finals)}
    ends[1] = max(float(h.iloc[0]["seconds"]) for h in histories)  # the first evaluation apart: it autotunes
    out, done, then = [], 0, 0.0
    for e in sorted(e for e in ends if e > 0):
        out.append((sum(f >= e for f in finals), e - done, ends[e] - then))
        done, then = e, ends[e]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the sweeps here instead of a temporary directory")
    parser.add_argument("--autotune-every-size", action="store_true", help="add a batched run that autotunes "
                        "cuDNN for every batch size (the launcher's old behaviour)")
    args = parser.parse_args()
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):  # a sweep there would resume, not run
        parser.error(f"--keep {args.keep}: not empty (its finished jobs would be skipped, not timed)")
    print(f"{describe(args.device)}; 25 jobs, {args.size} px, {args.steps} iterations, {args.precision}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = args.keep or tmp
        walls: dict[str, list[float]] = {n: [] for n in RUNS if args.autotune_every_size or n != EVERY_SIZE}
        for r in range(args.repeats):
            for k, name in enumerate(walls):
                walls[name].append(grid(name, args.size, args.steps, args.device, args.precision,
                                        Path(tmp) / f"run{k}_{r}"))
        reports = {n: pd.read_csv(Path(tmp) / f"run{k}_0" / "report.csv").set_index("job")
                   for k, n in enumerate(walls)}
        basic, batched = reports["basic"], reports["batched"]
        diff = (batched["total_loss"] / basic["total_loss"] - 1).abs()
        print("| launcher | wall s (median) | jobs' optimisation s | ok |")
        print("| --- | --- | --- | --- |")
        for name, df in reports.items():
            seconds = df["seconds"].sum() if name == "basic" else df["seconds"].max()
            print(f"| {name} | {statistics.median(walls[name]):.1f} | {seconds:.1f} | {(df['status'] == 'ok').sum()} |")
        print(f"basic / batched wall: {statistics.median(walls['basic']) / statistics.median(walls['batched']):.2f}x; "
              f"batched final total loss vs alone: median {diff.median():.1%}, max {diff.max():.1%}; "
              f"batch sizes: {batched['evaluations'].nunique()} (evaluations per job "
              f"{batched['evaluations'].min()}-{batched['evaluations'].max()})")
        worst = diff.idxmax()
        for k, (name, df) in enumerate(reports.items()):
            row = df.loc[worst]
            history = pd.read_csv(Path(tmp) / f"run{k}_0" / worst / "history.csv").set_index("iteration")
            marks = sorted({i for i in (0, 1, 2, 5, 10, 20, 50, 100, 200) if i in history.index} | {history.index[-1]})
            trail = ", ".join(f"{i}: {history.loc[i, 'total_loss']:.3g}" for i in marks)
            stop = row.get("stop_reason")
            print(f"  furthest, {name}: {worst}: total loss {row['total_loss']:.4g}, {row['iterations']} iterations, "
                  f"{row['evaluations']} evaluations, stopped early: {stop if isinstance(stop, str) else 'no'}; "
                  f"by iteration {trail}")
        for k, name in enumerate(reports):  # where a batched run's time went: a new batch size's first evaluation
            if name != "basic":                # pays for cuDNN's autotuning, when it autotunes that size
                stretches = phases(Path(tmp) / f"run{k}_0")
                print(f"  {name}, batch size: evaluations x ms each: "
                      + "; ".join(f"{n}: {e} x {1000 * t / e:.0f} ms" for n, e, t in stretches))
        per_eval = (basic["seconds"] / basic["evaluations"]).median()
        print(f"  basic: {1000 * per_eval:.1f} ms per evaluation (median of the jobs)")


if __name__ == "__main__":
    main()
