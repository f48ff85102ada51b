"""How peaky are a backbone's activations at its style layers? (Wang et al., CVPR 2021, "Rethinking and Improving
the Robustness of Image Style Transfer": residual networks give peaky, low-entropy feature maps, and the Gram loss
of such maps transfers style badly.)

    python benchmarks/activation_peaks.py [--size 128] [--image kandinsky]

Per layer, for the features F (N channels x M positions) of one image, as the style loss sees them:
  entropy  H(p) / log(N M) of p = |F| / Σ|F|: 1 for a flat map, 0 for a single peak (our choice of measure: Wang
           et al. compare entropies of the maps; normalising by log(N M) makes layers of any size comparable)
  top1%    the share of Σ F² (the Gram matrix's trace) held by the largest 1% of the activations
  max/mean max |F| / mean |F|
  softmax  the entropy measure of softmax(F) over the whole map (what style_loss=gram_softmax compares, Wang et
           al.'s remedy): above `entropy` where the softmax flattens the map, below where it sharpens it
Rows: VGG19 (original weights) at the write-up's style layers 0..4 and the paper's relu{1..5}_1, EfficientNet-Lite0
(pretrained) at its default style layers (conf/backbone/efficientnet_lite0.yaml) and index 23, both taps (conv:
before the activation; relu: after it, ReLU6 for EfficientNet).
"""
from __future__ import annotations

import argparse
import math

import torch
from machine import describe

from nst.assets import embedded
from nst.backbones import backbone
from nst.features import Encoder, layer_key
from nst.images import load_image
from nst.inputs import image_size

LAYERS = {("vgg19", "original"): [0, 1, 2, 3, 4, 8, 12],
          ("efficientnet_lite0", "pretrained"): [0, 1, 3, 7, 11, 23]}  # its default style layers, and 23


def entropy(p: torch.Tensor) -> float:
    """H(p) / log(len(p)) of a distribution (>= 0; a one-hot p rounds to -0.0, shown as 0)."""
    return max(0.0, -(p * p.clamp_min(1e-30).log()).sum().item() / math.log(p.numel()))


def peaks(f: torch.Tensor) -> tuple[float, float, float, float]:
    """(normalised entropy of |F|, share of Σ F² in the top 1% of activations, max/mean of |F|, entropy of
    softmax(F))."""
    a = f.detach().float().abs().flatten()
    energy = a.pow(2).sort(descending=True).values
    top = energy[: max(1, a.numel() // 100)].sum() / energy.sum()
    return entropy(a / a.sum()), top.item(), (a.max() / a.mean()).item(), entropy(f.float().flatten().softmax(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--image", default="kandinsky", choices=["kandinsky", "grace_hopper"])
    args = parser.parse_args()
    path = str(embedded(args.image))
    image = load_image(path, image_size(path, args.size))
    print(f"# {args.image} at {args.size} px; {describe()}")
    print("| network | index | layer (tap conv / relu) | entropy conv / relu | top1% conv / relu "
          "| max/mean conv / relu | softmax conv / relu |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (arch, weights), layers in LAYERS.items():
        net, prep = backbone(arch, weights)
        x = prep(image)
        for i in layers:
            conv, relu = Encoder(net, [i], "conv")(x)[i], Encoder(net, [i], "relu")(x)[i]
            (ec, tc, mc, sc), (er, tr, mr, sr) = peaks(conv), peaks(relu)
            names = f"{layer_key(i, net, 'conv')} / {layer_key(i, net, 'relu')}"
            print(f"| {arch} | {i} | {names} | {ec:.3f} / {er:.3f} | {tc:.2f} / {tr:.2f} | {mc:.1f} / {mr:.1f} "
                  f"| {sc:.3f} / {sr:.3f} |")


if __name__ == "__main__":
    with torch.no_grad():
        main()
