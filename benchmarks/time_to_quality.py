"""Time to quality: total loss against seconds for one scale and for coarse-to-fine multi-scale runs.

    python benchmarks/time_to_quality.py [--size 256] [--steps 500] [--plan 64:300,128:200,256:200] [--device cpu]

Paper layer set (content relu4_2, style relu1_1 ... relu5_1), tubingen + composition_vii, the default seed loss
and L-BFGS. The single-scale run does --steps iterations at --size; the multi-scale run follows --plan (its last
scale is --size). Reported: the single-scale final loss, and how long each run took to first reach it
(losses at --size only; seconds from the first iteration, later scales' set-up included).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_module
from machine import describe

from experiments.config import resolved
from nst.job import run_job
from nst.fetch import default_images_root

ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path(default_images_root(cwd=ROOT)).resolve()  # $NST_IMAGES, else ../shared/images, else the cache
PAPER = ["content_layers=[relu4_2]", "style_layers=[relu1_1,relu2_1,relu3_1,relu4_1,relu5_1]",
         f"content={IMAGES}/content/tubingen.jpg", f"style={IMAGES}/style/composition_vii.jpg", "progress=false"]


def history(overrides: list[str]) -> pd.DataFrame:
    """Run one job with the overrides; its history.csv."""
    with initialize_config_module("conf", version_base="1.3"), tempfile.TemporaryDirectory() as tmp:
        run_job(resolved(compose("config", overrides=PAPER + overrides)), tmp)
        return pd.read_csv(Path(tmp) / "history.csv")


def reached(h: pd.DataFrame, size: int, loss: float) -> float:
    """Seconds at which the run's loss at `size` first fell to `loss` (nan if never)."""
    at = h[(h["size"] == size) & (h["total_loss"] <= loss)]
    return float(at["seconds"].iloc[0]) if len(at) else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--plan", default="64:300,128:200,256:200")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    plan = [[int(v) for v in p.split(":")] for p in args.plan.split(",")]
    single = history([f"size={args.size}", f"steps={args.steps}", f"device={args.device}"])
    multi = history([f"multiscale={plan}".replace(" ", ""), f"device={args.device}"])
    target = float(single["total_loss"].iloc[-1])
    t_single, t_multi = float(single["seconds"].iloc[-1]), reached(multi, args.size, target)
    print(f"# {describe(args.device)}")
    print(f"single scale: {args.size} px x {args.steps} iterations, final total loss {target:.4g} in {t_single:.1f} s")
    print(f"multi-scale {plan}: final loss {multi['total_loss'].iloc[-1]:.4g} in {multi['seconds'].iloc[-1]:.1f} s")
    for size, block in multi.groupby("size", sort=False):
        print(f"  {size:4d} px: from {block['seconds'].iloc[0]:7.1f} s to {block['seconds'].iloc[-1]:7.1f} s, "
              f"loss {block['total_loss'].iloc[0]:.4g} -> {block['total_loss'].iloc[-1]:.4g}")
    print("loss reached by one scale at iteration   one scale s   multi-scale s   multi/one")
    for step in (10, 50, 100, 200, 300, 400, args.steps):
        if step <= args.steps:
            row = single[single["iteration"] <= step].iloc[-1]
            t = reached(multi, args.size, row["total_loss"])
            print(f"{row['total_loss']:10.4g} at {step:4d}  {row['seconds']:29.1f}  {t:14.1f}  "
                  f"{t / row['seconds']:10.2f}")
    print(f"multi-scale reaches the single-scale final loss after {t_multi:.1f} s: "
          f"{t_multi / t_single:.0%} of the single-scale time")


if __name__ == "__main__":
    main()
