"""How far each result of a sweep is from its style image's colours: a network-neutral yardstick for "does the
style look right" across backbones (a Gram loss only compares results of one network).

    python benchmarks/style_colours.py SWEEP_DIR [SWEEP_DIR ...]

Per job (its report.csv row): the result's RGB mean μ and covariance Σ (over pixels, in [0, 1]) against the style
image's at the same size: d = ‖μ_r − μ_s‖ + ‖Σ_r − Σ_s‖_F (our choice; 0 when the colour distributions share
their first two moments). Against the embedded Kandinsky at 128 px: the white-noise start 0.325, the photo 0.580.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from nst.images import load_image


def moments(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (3,) and covariance (3, 3) of an image's pixels."""
    x = rgb.reshape(3, -1).double()
    return x.mean(1), torch.cov(x)


def colour_distance(result: Path, style: Path) -> float:
    """‖μ_r − μ_s‖ + ‖Σ_r − Σ_s‖_F of a result image against its style image resized to the result's size."""
    r = load_image(str(result), None)
    s = load_image(str(style), (r.shape[-1], r.shape[-2]))
    (mr, cr), (ms, cs) = moments(r[0]), moments(s[0])
    return ((mr - ms).norm() + (cr - cs).norm()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweeps", nargs="+", type=Path)
    args = parser.parse_args()
    print("| sweep | job | colour distance |")
    print("| --- | --- | --- |")
    for sweep in args.sweeps:
        report = pd.read_csv(sweep / "report.csv")
        for _, row in report.iterrows():
            if row["status"] == "ok" and isinstance(row.get("style_image"), str):
                d = colour_distance(sweep / row["result"], Path(row["style_image"]))  # result: relative to the sweep
                print(f"| {sweep.name} | {row['job']} | {d:.3f} |")


if __name__ == "__main__":
    main()
