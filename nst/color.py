"""Colour preservation (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer", Sec. 5).

All functions take and return RGB images in [0, 1], shaped (1, 3, H, W).
  luminance  transfer the style on luminance only (5.1): both images become grey, the style's luminance matched
             to the content's mean and standard deviation; the result's luminance is then put back together
             with the content's colour channels (YIQ space, as in the paper).
  histogram  colour histogram matching (5.2): the style image's colours get the content's mean and covariance,
             x' = Σ_c^½ Σ_s^-½ (x − μ_s) + μ_c (the symmetric square roots of the paper's linear transform).
"""
from __future__ import annotations

import torch

MODES = ("luminance", "histogram")
_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def _apply(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", matrix.to(image), image)


def to_yiq(rgb: torch.Tensor) -> torch.Tensor:
    """RGB -> YIQ (Y: luminance; I, Q: chrominance)."""
    return _apply(_YIQ, rgb)


def to_rgb(yiq: torch.Tensor) -> torch.Tensor:
    """YIQ -> RGB (not clamped)."""
    return _apply(torch.linalg.inv(_YIQ), yiq)


def grey(luma: torch.Tensor) -> torch.Tensor:
    """A (1, 1, H, W) luminance as a three-channel RGB image."""
    return luma.expand(-1, 3, -1, -1).contiguous()


def luminance_only(content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(content, style) as grey images; the style's luminance given the content's mean and standard deviation."""
    yc, ys = to_yiq(content)[:, :1], to_yiq(style)[:, :1]
    ys = (ys - ys.mean()) / ys.std().clamp_min(1e-6) * yc.std() + yc.mean()
    return grey(yc), grey(ys.clamp(0, 1))


def with_colors_of(result: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The result's luminance with the content's chrominance (I, Q), clamped to [0, 1]."""
    return to_rgb(torch.cat([to_yiq(result)[:, :1], to_yiq(content)[:, 1:]], 1)).clamp(0, 1)


def _sqrtm(cov: torch.Tensor, power: float) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag(values.clamp_min(1e-8).pow(power)) @ vectors.T


def match_colors(style: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The style image with the content image's colour mean and covariance, clamped to [0, 1]."""
    s, c = style.double().flatten(2)[0], content.double().flatten(2)[0]
    mu_s, mu_c = s.mean(1, keepdim=True), c.mean(1, keepdim=True)
    transform = _sqrtm(torch.cov(c), 0.5) @ _sqrtm(torch.cov(s), -0.5)
    return (transform @ (s - mu_s) + mu_c).reshape(style.shape).to(style.dtype).clamp(0, 1)
