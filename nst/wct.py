"""Feature transforms: WCT (Li et al. 2017, "Universal Style Transfer via Feature Transforms", Sec. 3.1) and AdaIN
(Huang & Belongie 2017), as pure functions of feature maps (C, H, W) or (1, C, H, W).

WCT is computed in float64 with `torch.linalg.eigh`; eigenvalues under `EPS` are dropped (Li et al.'s code drops
those under 1e-5 too, after adding an identity to the covariance, which we do not add: it shrinks every direction's
whitening). Degenerate inputs have a documented fallback, never NaN: a content without variance (a flat image)
whitens to 0, so its result is the style's mean; a style without variance (one pixel, a flat image) colours to its
mean. Both keep only the directions that do vary.
"""
from __future__ import annotations

import torch

EPS = 1e-5  # eigenvalues (and AdaIN variances) at or under this are treated as 0


def _flat(f: torch.Tensor) -> torch.Tensor:
    """(C, H, W) or (1, C, H, W) features -> (C, N) in float64."""
    if f.dim() == 4:
        if f.shape[0] != 1:
            raise ValueError(f"features of one image expected, got a batch of {f.shape[0]}")
        f = f[0]
    if f.dim() != 3:
        raise ValueError(f"features (C, H, W) expected, got shape {tuple(f.shape)}")
    return f.reshape(f.shape[0], -1).double()


def moments(f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean m (C, 1) and covariance Σ = (f - m)(f - m)ᵀ / (N - 1) (C, C) of features (C, N); N = 1 gives Σ = 0."""
    m = f.mean(dim=1, keepdim=True)
    centred = f - m
    return m, centred @ centred.T / max(f.shape[1] - 1, 1)


def _eig(cov: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The eigenvalues over eps and their eigenvectors (columns) of a symmetric matrix."""
    d, e = torch.linalg.eigh(cov)
    keep = d > eps
    return d[keep], e[:, keep]


def whitening(cov: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """E D^(-1/2) Eᵀ of Σ = E D Eᵀ, over the eigenvalues kept (C, C)."""
    d, e = _eig(cov, eps)
    return e @ torch.diag(d.rsqrt()) @ e.T


def colouring(cov: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """E D^(1/2) Eᵀ of Σ = E D Eᵀ, over the eigenvalues kept (C, C)."""
    d, e = _eig(cov, eps)
    return e @ torch.diag(d.sqrt()) @ e.T


def whiten(f: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """f̂ = E_c D_c^(-1/2) E_cᵀ (f - m_c) (features (C, N), float64): covariance I on the kept directions."""
    m, cov = moments(f)
    return whitening(cov, eps) @ (f - m)


def colour(white: torch.Tensor, style: torch.Tensor, eps: float = EPS) -> torch.Tensor:
    """f̂_cs = E_s D_s^(1/2) E_sᵀ f̂ + m_s (features (C, N), float64): the style's covariance and mean."""
    m, cov = moments(style)
    return colouring(cov, eps) @ white + m


def wct(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0, eps: float = EPS) -> torch.Tensor:
    """WCT: α · colour(whiten(f_c), f_s) + (1 - α) · f_c, in the content features' shape and dtype. The two
    C x C matrices are multiplied first, so that the C x N features are multiplied once (colour(whiten(f)) is the
    same product in another order)."""
    fc, fs = _flat(content), _flat(style)
    if fc.shape[0] != fs.shape[0]:
        raise ValueError(f"content has {fc.shape[0]} channels and style {fs.shape[0]}: features of one layer expected")
    ms, cs = moments(fs)
    mc = fc.mean(dim=1, keepdim=True)
    centred = fc - mc  # once (moments would centre again): these C x N passes, not the eigh, are WCT's time
    cc = centred @ centred.T / max(fc.shape[1] - 1, 1)
    fcs = torch.addmm(ms, colouring(cs, eps) @ whitening(cc, eps), centred)
    if alpha != 1:
        fcs = fcs.mul_(alpha).add_(fc, alpha=1 - alpha)
    return fcs.to(content.dtype).reshape(content.shape)


def adain(content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0, eps: float = EPS) -> torch.Tensor:
    """AdaIN: σ_s · (f_c - μ_c) / σ_c + μ_s per channel (σ: standard deviation over positions), blended by α like
    WCT; a channel with σ_c² <= eps takes the style's mean."""
    fc, fs = _flat(content), _flat(style)
    mc, vc = fc.mean(1, keepdim=True), fc.var(1, keepdim=True, unbiased=False)
    ms, vs = fs.mean(1, keepdim=True), fs.var(1, keepdim=True, unbiased=False)
    scale = torch.where(vc > eps, (vs / vc.clamp_min(eps)).sqrt(), torch.zeros_like(vc))
    fcs = scale * (fc - mc) + ms
    return (alpha * fcs + (1 - alpha) * fc).to(content.dtype).reshape(content.shape)


TRANSFORMS = {"wct": wct, "adain": adain}
