"""Style losses as distances between feature distributions (Li et al. 2017, "Demystifying Neural Style Transfer").

At one layer the features are M vectors x ∈ R^N, one per position. Every loss compares the image's features F
with the style's S through statistics that are expectations over positions, so a blend of style images is exact:
its target is the statistic of the mixture, Σ_i b_i · stat(S_i). Each is `scale(name) x` the formula below.

  gram        Gatys 2016, Ĝ = E[x xᵀ] compared under the loss convention (nst/losses.py: seed or paper).
  mmd_linear  MMD² with k(x, y) = xᵀy, which is ‖μ_F − μ_S‖²; over Li's Z = N:  E = ‖μ_F − μ_S‖² / N.
  mmd_poly    MMD² with k(x, y) = (xᵀy + c)², in closed form over all positions (Li's own speed-up):
              ‖Ĝ_F − Ĝ_S‖² + 2c ‖μ_F − μ_S‖², over Z = N². c = E_S ‖x‖², the style's mean squared feature norm,
              so the first- and second-order terms weigh alike (c = 0 is the Gram loss; Li et al. leave c open).
  mmd_gauss   MMD² with k(x, y) = exp(−‖x − y‖² / d²), d² = the style's mean squared distance between two
              positions, 2 (E_S ‖x‖² − ‖μ_S‖²) (Li's bandwidth). Estimated with D random Fourier features
              (Rahimi & Recht 2007): φ(x) = √(2/D) cos(Ωᵀx + b), Ω ~ N(0, 2/d² I), b ~ U[0, 2π), so
              E = ‖E_F φ − E_S φ‖² (Z = 1). Departure from Li et al., who pair randomly sampled positions anew
              at every step: sampling the kernel's frequencies once instead keeps every position in the loss,
              keeps the objective deterministic (L-BFGS's line search needs that) and makes blends exact.
  bn_stats    E = 1/N Σ_c (μ_F,c − μ_S,c)² + (σ_F,c − σ_S,c)², per-channel mean and standard deviation (Li Eq. 10).
  gram_softmax  the Gram loss of σ(F) = N M · softmax(F) over all N M activations of the layer (Wang et al., CVPR
              2021, "Rethinking and Improving the Robustness of Image Style Transfer": raises the entropy of peaky
              maps). Departure: times N M, so that σ(F) has mean 1 whatever the layer's size (theirs sums to 1).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from nst.losses import Convention, gram

RANDOM_FEATURES = 256  # D for mmd_gauss
# Each non-Gram loss times its constant equals the seed-convention Gram loss at the content image (tubingen vs
# composition_vii at 128 px, the default style layers conv 0..4; benchmarks/calibrate_style_losses.py measured
# gram/loss = 6.4e-3, 1.7e-8, 619 and 3.0e-3), so one beta gives every loss the same starting balance.
SCALES = {"gram": 1.0, "mmd_linear": 6e-3, "mmd_poly": 2e-8, "mmd_gauss": 6e2, "bn_stats": 3e-3}
SCALES["gram_softmax"] = 1.0  # our choice, not calibrated like the others (see GramSoftmax)
Target = tuple[torch.Tensor, ...]


def _flat(features: torch.Tensor) -> torch.Tensor:
    """(B, N, H, W) features -> (B, N, M) in fp32."""
    return features.float().flatten(2)


def _second_moment(x: torch.Tensor) -> torch.Tensor:
    return gram(x) / x.shape[-1]


def _mix(stats: Sequence[Target], blend: Sequence[float]) -> Target:
    return tuple(sum(b * s[i] for b, s in zip(blend, stats)) for i in range(len(stats[0])))


class StyleLoss:
    """One style loss: `target(style features, blend, seed)` once, then `loss(image features, target)`.

    Image features are (B, N, H, W) and the loss is one value per image, (B,); style features are (1, N, H, W)
    each, and their statistics keep that leading 1, so that they broadcast over a batch.
    """

    name = "gram"

    def __init__(self, convention: Convention):
        self.convention, self.scale = convention, SCALES[self.name]

    def stats(self, x: torch.Tensor) -> Target:
        """The statistics of (B, N, M) features that the loss compares."""
        return (_second_moment(x),)

    def target(self, features: Sequence[torch.Tensor], blend: Sequence[float], *, seed: int = 0) -> Target:
        """The style target: the blend of each style image's statistics (the mixture's statistics)."""
        return _mix([self.stats(_flat(f)) for f in features], blend)

    def distance(self, mine: Target, target: Target, n: int) -> torch.Tensor:
        return self.convention.style(mine[0], target[0], n)

    def __call__(self, features: torch.Tensor, target: Target) -> torch.Tensor:
        """E_l of the image's features against the target, times the loss's calibration constant."""
        x = _flat(features)
        return self.scale * self.distance(self.stats(x), target, x.shape[1])


class MMDLinear(StyleLoss):
    name = "mmd_linear"

    def stats(self, x):
        return (x.mean(-1),)

    def distance(self, mine, target, n):
        return (mine[0] - target[0]).pow(2).sum(-1) / n


class MMDPoly(StyleLoss):
    name = "mmd_poly"

    def stats(self, x):
        return _second_moment(x), x.mean(-1)

    def target(self, features, blend, *, seed=0):
        g, mu = super().target(features, blend)
        return g, mu, g[0].trace()  # c = E_S ‖x‖²

    def distance(self, mine, target, n):
        (g, mu), (a, nu, c) = mine, target
        return ((g - a).pow(2).sum((-2, -1)) + 2 * c * (mu - nu).pow(2).sum(-1)) / (n * n)


class MMDGauss(StyleLoss):
    name = "mmd_gauss"

    def target(self, features, blend, *, seed=0):
        flat = [_flat(f)[0] for f in features]  # (N, M) each
        mu, sq = _mix([(x.mean(1), x.pow(2).sum(0).mean().reshape(1)) for x in flat], blend)
        d2 = (2 * (sq - mu.pow(2).sum())).clamp_min(1e-12)  # mean ‖x − y‖² over pairs of style positions
        g = torch.Generator().manual_seed(seed)
        n = mu.shape[0]
        omega = (torch.randn(n, RANDOM_FEATURES, generator=g) * math.sqrt(2.0)).to(mu.device) / d2.sqrt()
        phase = (torch.rand(RANDOM_FEATURES, generator=g) * 2 * math.pi).to(mu.device)
        embedding = sum(b * self._embed(x, (omega, phase)) for b, x in zip(blend, flat))
        return omega, phase, embedding

    @staticmethod
    def _embed(x: torch.Tensor, target: Target) -> torch.Tensor:
        """Mean random Fourier feature of (..., N, M) features: (..., D)."""
        omega, phase = target[0], target[1]
        return torch.cos(omega.T @ x + phase[:, None]).mean(-1) * math.sqrt(2.0 / omega.shape[1])

    def __call__(self, features, target):
        return self.scale * (self._embed(_flat(features), target) - target[2]).pow(2).sum(-1)


class BNStats(StyleLoss):
    name = "bn_stats"

    def target(self, features, blend, *, seed=0):
        mu, second = _mix([(x.mean(-1), x.var(-1, unbiased=False) + x.mean(-1).pow(2)) for x in map(_flat, features)],
                          blend)
        return mu, (second - mu.pow(2)).clamp_min(0).add(1e-5).sqrt()

    def stats(self, x):
        return x.mean(-1), x.var(-1, unbiased=False).add(1e-5).sqrt()

    def distance(self, mine, target, n):
        return ((mine[0] - target[0]).pow(2) + (mine[1] - target[1]).pow(2)).sum(-1) / n


def softmax_map(x: torch.Tensor) -> torch.Tensor:
    """σ(F) = N M · softmax over all N M entries of each image's (B, N, M) features: positive, mean 1."""
    return torch.softmax(x.flatten(1), dim=1).view_as(x) * (x.shape[-1] * x.shape[-2])


class GramSoftmax(StyleLoss):
    """Wang et al. 2021's remedy for peaky activations (their code: softmax over the whole map, temperature 1).

    It raises the entropy of sparse maps of small values (exp lifts the many near-zero entries to a common
    floor). Dense maps or larger values get peakier instead: measured on efficientnet_lite0
    (benchmarks/activation_peaks.py, docs/backbones.md "EfficientNet-Lite0"), softmax lowers the normalised entropy of its
    ReLU6 maps and collapses its pre-activations (up to 63-86 at conv indices 0-1) onto a few entries. Scale 1:
    σ(F) has mean 1, so E_l is of the order of the plain Gram loss of O(1) features (not calibrated like SCALES).
    """

    name = "gram_softmax"

    def stats(self, x):
        return (_second_moment(softmax_map(x)),)


STYLE_LOSSES = {cls.name: cls for cls in (StyleLoss, MMDLinear, MMDPoly, MMDGauss, BNStats, GramSoftmax)}


def style_loss(name: str, convention: Convention) -> StyleLoss:
    """The style loss called `name` (gram, mmd_linear, mmd_poly, mmd_gauss, bn_stats, gram_softmax)."""
    if name not in STYLE_LOSSES:
        raise ValueError(f"style_loss {name!r} is not one of {list(STYLE_LOSSES)}")
    return STYLE_LOSSES[name](convention)
