"""Content and Gram-matrix style losses under two conventions, as plain functions of feature maps.

Notation (Gatys et al. 2016, Sec. 2): F, P are the (N_l channels x M_l positions) feature maps of the image
being optimised and of the content image at layer l; G = F Fᵀ and A are the Gram matrices of the image and
of the style image; Ĝ = G/M and Â = A/M are the same per position (so that a style image of another size
compares fairly; with equal sizes the formulas below are exactly the paper's). Every function returns a 0-dim
fp32 tensor. Other style losses (MMD, BN statistics) are in nst/style_losses.py.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

# Seed-convention style normalisation, calibrated on real images so that the write-up's beta range
# 1e2..1e6 (with alpha = 1, content relu3_1) runs from content- to style-dominated; see README "Loss conventions".
SEED_STYLE_SCALE = 1e-3


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
    """Gatys 2016 Eq. 1: L_content = ½ Σ (F − P)²."""
    return 0.5 * (f.float() - p.float()).pow(2).sum()


def content_seed(f: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Write-up convention: mean squared error, L_content = 1/(N M) Σ (F − P)² (Eq. 1 divided by N M / 2)."""
    return F.mse_loss(f.float(), p.float())


def style_paper(g: torch.Tensor, a: torch.Tensor, n: int) -> torch.Tensor:
    """Gatys 2016 Eq. 4 on per-position Gram matrices: E_l = 1/(4 N²) Σ (Ĝ − Â)² = 1/(4 N² M²) Σ (G − A)²."""
    return (g - a).pow(2).sum() / (4.0 * n * n)


def style_seed(g: torch.Tensor, a: torch.Tensor, n: int) -> torch.Tensor:
    """Write-up convention: MSE of Gram matrices normalised by N M, times a calibration constant.

    E_l = s · 1/N² Σ ((Ĝ − Â)/N)² = s/(N⁴ M²) Σ (G − A)², s = SEED_STYLE_SCALE. Departure from Eq. 4:
    the extra 4/N² weighs deep (wide) layers less than the paper does.
    """
    return SEED_STYLE_SCALE * F.mse_loss(g / n, a / n)


@dataclass(frozen=True)
class Convention:
    """A pair of loss normalisations; see the functions' docstrings for the formulas."""

    content: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    style: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]  # (Ĝ, Â, N)


CONVENTIONS = {"seed": Convention(content_seed, style_seed), "paper": Convention(content_paper, style_paper)}


def convention(name: str) -> Convention:
    """The loss convention called `name` ("seed" or "paper")."""
    if name not in CONVENTIONS:
        raise ValueError(f"loss convention {name!r} is not one of {sorted(CONVENTIONS)}")
    return CONVENTIONS[name]


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV: Σ |x[i+1, j] − x[i, j]| + |x[i, j+1] − x[i, j]|, averaged over pixels."""
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., 1:] - image[..., :-1]).abs().mean()
