"""Content and Gram-matrix style losses under two conventions, as plain functions of feature maps.

Notation (Gatys et al. 2016, Sec. 2): F, P are the (N_l channels x M_l positions) feature maps of the image
being optimised and of the content image at layer l; G = F Fᵀ and A are the Gram matrices of the image and
of the style image; Ĝ = G/M and Â = A/M are the same per position (so that a style image of another size
compares fairly; with equal sizes the formulas below are exactly the paper's). Every function reduces over all but
the leading (image) dimension and returns one fp32 value per image, (B,), so that one call serves a batch of jobs
(nst/batch.py). Other style losses (MMD, BN statistics) are in nst/style_losses.py.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

# Seed-convention style constant for the original (Caffe, 0..255 input) weights. Their activations are ~58x those
# of torchvision-normalised inputs, so the Gram term is ~58^4 larger than in the torchvision-based write-up;
# calibrated on real images so that the write-up's beta range 1e2..1e6 (alpha = 1, content index 4) runs from
# content- to style-dominated along every row of its grid (docs/losses.md "Loss conventions"). Other weights: 1.
SEED_STYLE_SCALE = {"original": 3e-4}


class _Gram(torch.autograd.Function):
    """F Fᵀ with the backward pass that uses its symmetry: ∂L/∂F = (∂L/∂G + ∂L/∂Gᵀ) F, one matrix product
    instead of autograd's two (measured: the paper layers' Gram forward + backward 0.073 s -> 0.035 s at 256 px)."""

    @staticmethod
    def forward(ctx, f: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(f)
        return f @ f.transpose(-1, -2)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (f,) = ctx.saved_tensors
        return (grad + grad.transpose(-1, -2)) @ f


def gram(features: torch.Tensor) -> torch.Tensor:
    """G = F Fᵀ per image, (B, N, N), unnormalised; computed in fp32 whatever the features' dtype."""
    return _Gram.apply(features.float().flatten(2))


def content_paper(f: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Gatys 2016 Eq. 1: L_content = ½ Σ (F − P)², per image."""
    return 0.5 * (f.float() - p.float()).pow(2).flatten(1).sum(1)


def content_seed(f: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Write-up convention: mean squared error, L_content = 1/(N M) Σ (F − P)² (Eq. 1 divided by N M / 2)."""
    return (f.float() - p.float()).pow(2).flatten(1).mean(1)


def style_paper(g: torch.Tensor, a: torch.Tensor, n: int) -> torch.Tensor:
    """Gatys 2016 Eq. 4 on per-position Gram matrices: E_l = 1/(4 N²) Σ (Ĝ − Â)² = 1/(4 N² M²) Σ (G − A)²."""
    return (g - a).pow(2).sum((-2, -1)) / (4.0 * n * n)


def style_seed(g: torch.Tensor, a: torch.Tensor, n: int) -> torch.Tensor:
    """Write-up convention: MSE of Gram matrices normalised by N M (before the calibration constant s).

    E_l = 1/N² Σ ((Ĝ − Â)/N)² = 1/(N⁴ M²) Σ (G − A)². Departure from Eq. 4: the extra 4/N² weighs deep (wide)
    layers less than the paper does.
    """
    return ((g - a) / n).pow(2).mean((-2, -1))


@dataclass(frozen=True)
class Convention:
    """A loss convention: normalisations (see the functions' docstrings), where a conv index taps, how layers add.

    `tap`: "relu" reads a conv index's rectified output, "conv" its output before the ReLU. `summed`: style
    layers weigh w_l = 1 (the per-layer losses add up) instead of w_l = 1/|layers|. `style_scale` multiplies E_l.
    """

    name: str
    content: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    _style: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]  # (Ĝ, Â, N)
    tap: str
    summed: bool
    style_scale: float = 1.0

    def style(self, g: torch.Tensor, a: torch.Tensor, n: int) -> torch.Tensor:
        """E_l of per-position Gram matrices Ĝ, Â of N channels."""
        return self.style_scale * self._style(g, a, n)

    def layer_weights(self, n: int) -> list[float]:
        """The default w_l for n style layers."""
        return [1.0 if self.summed else 1.0 / max(1, n)] * n


# paper: Gatys 2016 Sec. 2-3 — "conv4_2" is the rectified response (Caffe's in-place ReLU), w_l = 1/5 (Fig. 2).
# seed: the write-up attaches its CLoss/SLoss modules "after a convolutional layer" (the module pattern of
# PyTorch's neural-transfer tutorial, whose β range the write-up's matches): the loss reads the conv's output
# before the ReLU, and the per-layer style losses are summed. Both are inferred from that code pattern; the
# write-up states neither in words. Measured at the noise start (tubingen + composition_vii, 128 px): pre-ReLU
# content loss 3.0x and style loss 3.9x the post-ReLU values (58% of conv4_2 outputs are negative).
CONVENTIONS = {"seed": ("seed", content_seed, style_seed, "conv", True),
               "paper": ("paper", content_paper, style_paper, "relu", False)}


def convention(name: str, *, weights: str = "original", tap: str | None = None) -> Convention:
    """The loss convention called `name` ("seed" or "paper") for a backbone's `weights`; `tap` overrides its tap."""
    if name not in CONVENTIONS:
        raise ValueError(f"loss {name!r} is not one of {sorted(CONVENTIONS)}")
    label, content, style, default_tap, summed = CONVENTIONS[name]
    scale = SEED_STYLE_SCALE.get(weights, 1.0) if name == "seed" else 1.0
    return Convention(label, content, style, tap or default_tap, summed, scale)


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV: Σ |x[i+1, j] − x[i, j]| + |x[i, j+1] − x[i, j]|, averaged over pixels, per image."""
    return ((image[..., 1:, :] - image[..., :-1, :]).abs().flatten(1).mean(1)
            + (image[..., 1:] - image[..., :-1]).abs().flatten(1).mean(1))
