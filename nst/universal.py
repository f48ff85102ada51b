"""Universal style transfer (Li et al. 2017) in the harness: feed-forward multi-level WCT or AdaIN through our
decoders (nst/decoder.py), and WCT targets reached by optimisation (`method=wct_opt`, the engine's L-BFGS).

Levels are relu{L}_1 of VGG19 with the original weights and max pooling (the decoders' encoder), whatever the
job's own `arch`, `weights` and `pooling`, which only measure the result (nst/run.py).
"""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import nn

from nst import decoder as decoders
from nst.features import Encoder
from nst.transfer import Terms
from nst.vgg import Preprocess
from nst.wct import TRANSFORMS, wct

@lru_cache(maxsize=2)
def encoder(device: str) -> tuple[nn.Module, Preprocess]:
    """The decoders' encoder: VGG19, original weights, max pooling (loaded once per process)."""
    from nst.inputs import backbone

    return backbone("vgg19", "original", "max", device)


def features(image: torch.Tensor, levels: Sequence[int], device: str) -> dict[int, torch.Tensor]:
    """relu{L}_1 features of an RGB [0, 1] image at each level, without gradients."""
    cnn, prep = encoder(device)
    with torch.no_grad():
        found = Encoder(cnn, [decoders.relu_name(L) for L in levels])(prep(image.to(device)))
    return {L: found[decoders.relu_name(L)] for L in levels}


@lru_cache(maxsize=8)
def decoder(directory: str | None, level: int, device: str) -> nn.Module:
    """A level's decoder from a directory (None: the shipped ones), loaded once per process."""
    return decoders.load(decoders.find(directory, level), level)[0].to(device)


def stylise(content: torch.Tensor, style: torch.Tensor, *, levels: Sequence[int], alphas: Sequence[float],
            directory: str | None, transform: str = "wct", device: str = "cpu") -> torch.Tensor:
    """Li et al.'s coarse-to-fine multi-level stylisation (their Fig. 3(c)): from the deepest level to the
    shallowest, encode the current image, transform its features towards the style's at that level, decode; the
    image (RGB [0, 1], not clamped) has the content's size. alphas: one per level, in `levels`' order."""
    cnn, prep = encoder(device)
    image = content.to(device)
    h, w = image.shape[-2:]
    fn = TRANSFORMS[transform]
    styles = features(style, levels, device)  # one pass, cut at the deepest level
    for level, alpha in sorted(zip(levels, alphas), reverse=True):
        fc = features(image, [level], device)[level]
        with torch.no_grad():
            out = decoder(directory, level, device)(fn(fc, styles[level], alpha))
        image = prep.inverse(out)
        if image.shape[-2:] != (h, w):  # a side not a multiple of 2^(level-1) came back cut: the content's size
            image = torch.nn.functional.interpolate(image, size=(h, w), mode="bilinear")
    return image.cpu()


class WCTLoss(nn.Module):
    """Optimisation towards WCT targets: Σ_L ||F_L(x) - T_L||² / ||T_L||² (mean squares; our normalisation, so
    that the levels weigh alike), T_L = WCT(F_L(content), F_L(style), α_L), F_L = relu{L}_1 of the decoders'
    encoder. forward(image in that encoder's input space) -> Terms: the per-level terms are its style terms."""

    def __init__(self, content: torch.Tensor, style: torch.Tensor, levels: Sequence[int], alphas: Sequence[float],
                 device: str):
        super().__init__()
        cnn, self.prep = encoder(device)
        self.levels = list(levels)
        self.encoder = Encoder(cnn, [decoders.relu_name(L) for L in self.levels])
        fc, fs = features(content, self.levels, device), features(style, self.levels, device)
        self.targets = {L: wct(fc[L], fs[L], a) for L, a in zip(self.levels, alphas)}

    def forward(self, image: torch.Tensor) -> Terms:
        found = self.encoder(image)
        with torch.autocast(image.device.type, enabled=False):
            per_level = {decoders.relu_name(L): ((found[decoders.relu_name(L)].float() - t).pow(2).mean()
                                                 / t.pow(2).mean().clamp_min(1e-12))
                         for L, t in self.targets.items()}
        zero = image.new_zeros((), dtype=torch.float32)
        total = sum(per_level.values(), zero)
        return Terms(total, zero, total, zero, {}, per_level)
