"""StyleTransfer: a frozen CNN plus content and style targets -> weighted loss terms for an image."""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from nst.features import Encoder, Layer, layer_key
from nst.losses import convention as get_convention
from nst.losses import total_variation
from nst.style_losses import style_loss as get_style_loss


@dataclass
class Terms:
    """One evaluation: total = α·content + β·style + tv_weight·tv; per-layer terms are unweighted (style: E_l)."""

    total: torch.Tensor
    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor
    content_layers: dict[str, torch.Tensor]
    style_layers: dict[str, torch.Tensor]


def check_weight(name: str, value: float) -> float:
    """A loss weight must be a finite number >= 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} {value!r} must be a finite number >= 0")
    return float(value)


class StyleTransfer(nn.Module):
    """Gatys et al. 2016: L_total = α·Σ L_content(l) + β·Σ w_l E_l (+ tv_weight·TV), targets computed once.

    `content` and `style` are images already in the network's input space. Several style images may be given
    with `style_blend` weights: their style statistics are blended, A_l = Σ_i b_i A_l(i) (Σ b_i = 1).
    `style_loss` picks E_l (nst/style_losses.py; default the Gram loss). With no style layers this is the paper's
    content reconstruction; with no content layers, style reconstruction. Targets live on the device of the
    images given; build it where it will run. `reweighted` gives a copy with other weights and the same targets.
    """

    def __init__(self, cnn: nn.Module, content: torch.Tensor | None, style: torch.Tensor | Sequence[torch.Tensor] | None,
                 *, content_layers: Sequence[Layer], style_layers: Sequence[Layer], alpha: float = 1.0,
                 beta: float = 1e3, style_layer_weights: Sequence[float] | None = None, convention: str = "seed",
                 style_blend: Sequence[float] | None = None, style_loss: str = "gram", tv_weight: float = 0.0):
        super().__init__()
        self.convention = get_convention(convention)
        self.style_loss = get_style_loss(style_loss, self.convention)
        self.content_layers, self.style_layers = list(content_layers), list(style_layers)
        if not self.content_layers and not self.style_layers:
            raise ValueError("no content_layers and no style_layers: nothing to optimise")
        self._set_weights(alpha, beta, style_layer_weights, tv_weight)
        self.encoder = Encoder(cnn, self.content_layers + self.style_layers)
        self.keys = {layer: layer_key(layer, cnn) for layer in self.encoder.layers}

        self.content_targets = []
        if self.content_layers:
            if content is None:
                raise ValueError("content_layers are given but no content image")
            feats = self._encode(content, self.content_layers)
            self.content_targets = [feats[layer].detach() for layer in self.content_layers]
        self.style_targets = []
        if self.style_layers:
            styles = [style] if isinstance(style, torch.Tensor) else list(style or [])
            if not styles:
                raise ValueError("style_layers are given but no style image")
            blend = list(style_blend) if style_blend else [1.0] * len(styles)
            if len(blend) != len(styles) or sum(check_weight("style_blend weight", b) for b in blend) <= 0:
                raise ValueError(f"style_blend {blend} must hold one weight >= 0 per style image ({len(styles)})")
            blend = [b / sum(blend) for b in blend]
            feats = [self._encode(image, self.style_layers) for image in styles]
            self.style_targets = [self.style_loss.target([f[layer] for f in feats], blend, seed=i)
                                  for i, layer in enumerate(self.style_layers)]

    def _set_weights(self, alpha: float, beta: float, style_layer_weights: Sequence[float] | None,
                     tv_weight: float) -> None:
        self.alpha, self.beta = check_weight("alpha", alpha), check_weight("beta", beta)
        self.tv_weight = check_weight("tv_weight", tv_weight)
        if style_layer_weights is None or len(style_layer_weights) == 0:
            style_layer_weights = [1.0 / max(1, len(self.style_layers))] * len(self.style_layers)
        if len(style_layer_weights) != len(self.style_layers):
            raise ValueError(f"style_layer_weights {list(style_layer_weights)} must have one weight per style layer "
                             f"({len(self.style_layers)})")
        self.weights = [check_weight("style layer weight", w) for w in style_layer_weights]

    def reweighted(self, *, alpha: float, beta: float, style_layer_weights: Sequence[float] | None = None,
                   tv_weight: float = 0.0) -> StyleTransfer:
        """A copy with other loss weights that shares this one's network and targets (a sweep over beta)."""
        other = copy.copy(self)
        other._set_weights(alpha, beta, style_layer_weights, tv_weight)
        return other

    def _encode(self, image: torch.Tensor, layers: Sequence[Layer]) -> dict[Layer, torch.Tensor]:
        encoder = Encoder(self.encoder.cnn, layers)
        try:
            with torch.no_grad():
                return encoder(image)
        except RuntimeError as e:
            if "too small" not in str(e):  # pooling: "Output size is too small"
                raise
            names = [self.keys[layer] for layer in layers]
            raise ValueError(f"image size {image.shape[-1]}x{image.shape[-2]} is too small for layers {names} "
                             "(a feature map would be empty); use a larger size or shallower layers") from None

    def forward(self, image: torch.Tensor) -> Terms:
        """Loss terms of `image` (network input space)."""
        feats = self.encoder(image)  # under the caller's autocast (bf16) if any; the losses below stay fp32
        with torch.autocast(image.device.type, enabled=False):
            return self._terms(image, feats)

    def _terms(self, image: torch.Tensor, feats: dict[Layer, torch.Tensor]) -> Terms:
        zero = image.new_zeros((), dtype=torch.float32)
        content = {self.keys[layer]: self.convention.content(feats[layer], target)
                   for layer, target in zip(self.content_layers, self.content_targets)}
        style = {self.keys[layer]: self.style_loss(feats[layer], target)
                 for layer, target in zip(self.style_layers, self.style_targets)}
        content_loss = sum(content.values(), zero)
        style_loss = sum((w * e for w, e in zip(self.weights, style.values())), zero)
        tv = total_variation(image.float())  # reported even when unweighted: a smoothness measure
        total = self.alpha * content_loss + self.beta * style_loss + self.tv_weight * tv
        return Terms(total, content_loss, style_loss, tv, content, style)
