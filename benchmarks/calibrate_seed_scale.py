"""The seed convention's style constant for the original weights (SEED_STYLE_SCALE in nst/losses.py).

    python benchmarks/calibrate_seed_scale.py [--size 96] [--steps 60] [--scales 1e-4 3e-4 1e-3]

Runs the write-up's grid (α = 1, β ∈ {1e2..1e6}, style rows [0], [0,1], ..., [0..4], content index 4) under the
seed convention (pre-ReLU tap, layers summed) on tubingen + composition_vii for each candidate constant s, and
prints per row the Spearman rank correlation of β with the final content loss (want +1) and style loss (want
−1), and the style share β·L_style / L_total at the row's two ends. A good s runs every row from content- to
style-dominated: correlations +1/−1 and the share low at β = 1e2, high at 1e6.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pandas as pd
import torch
from machine import describe

from nst.backbones import backbone
from nst.engine import optimise
from nst.images import load_image
from nst.losses import convention
from nst.transfer import StyleTransfer

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared/images"
ROWS = [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
BETAS = [1e2, 1e3, 1e4, 1e5, 1e6]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--scales", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=Path, default=IMAGES)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"{describe(device)}, {args.size} px, {args.steps} L-BFGS iterations")
    net, prep = backbone("vgg19", "original", pooling="max")
    net = net.to(device)
    content = load_image(args.images / "content/tubingen.jpg", args.size)
    style = load_image(args.images / "style/composition_vii.jpg", (content.shape[-1], content.shape[-2]))
    c, s = prep(content).to(device), prep(style).to(device)
    start = prep(0.5 + 0.1 * torch.randn(content.shape, generator=torch.Generator().manual_seed(0))).to(device)
    rows = []
    for scale in args.scales:
        conv = dataclasses.replace(convention("seed"), style_scale=scale)
        for layers in ROWS:
            for beta in BETAS:
                model = StyleTransfer(net, c, s, content_layers=[4], style_layers=layers, convention=conv,
                                      alpha=1.0, beta=beta)
                t = optimise(model, start, steps=args.steps).terms
                rows.append({"s": scale, "row": len(layers), "beta": beta, "content": t["content_loss"],
                             "style": t["style_loss"], "share": beta * t["style_loss"] / t["total_loss"]})
    df = pd.DataFrame(rows)
    out = []
    for (scale, row), g in df.groupby(["s", "row"]):
        out.append({"s": scale, "row": f"[0..{row - 1}]", "rho(beta, content)": g["beta"].corr(g["content"], "spearman"),
                    "rho(beta, style)": g["beta"].corr(g["style"], "spearman"),
                    "style share at 1e2": g["share"].iloc[0], "at 1e6": g["share"].iloc[-1]})
    print(pd.DataFrame(out).to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
