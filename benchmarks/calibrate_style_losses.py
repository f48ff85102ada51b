"""The calibration constants of nst/style_losses.py: each loss's value next to the seed Gram loss's.

    python benchmarks/calibrate_style_losses.py [--size 128]

At the content image (tubingen) against the style (composition_vii), style layers conv 0..4 (the default),
the constant that makes a loss equal the seed-convention Gram loss is gram / loss (printed with the loss at
white noise as a second opinion). SCALES in nst/style_losses.py hold these, rounded to one significant digit.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from nst import style_losses
from nst.images import load_image
from nst.transfer import StyleTransfer
from nst.vgg import vgg19

ROOT = Path(__file__).resolve().parents[1]
CONTENT = ROOT.parent / "shared/images/content/tubingen.jpg"
STYLE = ROOT.parent / "shared/images/style/composition_vii.jpg"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    net, prep = vgg19()
    content = load_image(CONTENT, args.size)
    style = load_image(STYLE, (content.shape[-1], content.shape[-2]))
    noise = 0.5 + 0.1 * torch.randn(content.shape, generator=torch.Generator().manual_seed(0))
    print("style_loss   current scale   E(content)    E(noise)   gram/E at content (unscaled)")
    values = {}
    for name in style_losses.STYLE_LOSSES:
        model = StyleTransfer(net, None, prep(style), content_layers=[], style_layers=[0, 1, 2, 3, 4], beta=1,
                              style_loss=name)
        scale = style_losses.SCALES[name]
        with torch.no_grad():
            values[name] = [model(prep(x)).style.item() / scale for x in (content, noise)]
        ratio = values["gram"][0] / values[name][0]
        print(f"{name:11s}  {scale:13.3g}  {values[name][0] * scale:10.4g}  {values[name][1] * scale:10.4g}"
              f"  {ratio:10.3g}")


if __name__ == "__main__":
    main()
