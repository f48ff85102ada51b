"""How evenly the paper's five style layers pull at the white-noise start (issue: the normalised VGG19).

    python benchmarks/style_balance.py [--sizes 128 256 512] [--weights normalized original]

For each weights file, size and painting (the paper's four, ../shared/images) it builds the paper convention's style
loss at relu1_1 ... relu5_1 (w_l = 1/5, average pooling) and evaluates it at the start the paper presets use:
Gaussian noise 0.5 + 0.1·N(0, 1), seed 0, on Tübingen's canvas. It prints each layer's share of the style
gradient, ‖∇_x w_l E_l‖ / Σ_k ‖∇_x w_k E_k‖ (x: the RGB image), and the spreads (max / min over the
layers) of the E_l and of the shares. On a balanced network every layer pulls: issue 9 asks for shares within 20x.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from machine import describe

from nst.assets.vgg19_normalization import style_balance
from nst.backbones import backbone
from nst.images import load_image

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared/images"
PAINTINGS = ["composition_vii", "shipwreck", "starry_night", "the_scream"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--weights", nargs="+", default=["normalized", "original"])
    parser.add_argument("--images", type=Path, default=IMAGES)
    args = parser.parse_args()
    print(describe())
    print(f"{'weights':10s} {'size':>4s} {'painting':16s} {'E spread':>9s} {'grad spread':>11s}  "
          "gradient shares 1_1 2_1 3_1 4_1 5_1")
    for weights in args.weights:
        net, prep = backbone("vgg19", weights, pooling="avg")
        for size in args.sizes:
            content = load_image(args.images / "content/tubingen.jpg", size)
            for painting in PAINTINGS:
                energies, shares = style_balance(net, prep, content.shape,
                                                 load_image(args.images / f"style/{painting}.jpg", size))
                print(f"{weights:10s} {size:4d} {painting:16s} {max(energies) / min(energies):9.3g} "
                      f"{max(shares) / min(shares):11.3g}  {' '.join(f'{s:4.0%}' for s in shares)}", flush=True)


if __name__ == "__main__":
    main()
