"""StyleTransfer: a frozen CNN plus content and style targets -> weighted loss terms for an image."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from nst.features import Encoder, Layer, layer_key
from nst.losses import Convention
from nst.losses import convention as get_convention
from nst.losses import total_variation
from nst.style_losses import style_loss as get_style_loss


@dataclass
class Terms:
    """One evaluation: total = α·content + β·style + tv_weight·tv; per-layer terms are unweighted (style: E_l).

    Each is one value per image, (B,), or 0-dim for one image (`at`)."""

    total: torch.Tensor
    content: torch.Tensor
    style: torch.Tensor
    tv: torch.Tensor
    content_layers: dict[str, torch.Tensor]
    style_layers: dict[str, torch.Tensor]

    def at(self, k: int) -> Terms:
        """Image k's terms, as 0-dim tensors."""
        return Terms(self.total[k], self.content[k], self.style[k], self.tv[k],
                     {n: v[k] for n, v in self.content_layers.items()}, {n: v[k] for n, v in self.style_layers.items()})


class Targets(nn.Module):
    """A frozen CNN with the content and style targets of one job's images and layers, computed once.

    `content` and `style` are images already in the network's input space. Several style images may be given
    with `style_blend` weights: their style statistics are blended, A_l = Σ_i b_i A_l(i) (Σ b_i = 1).
    `style_loss` picks E_l (nst/style_losses.py; default the Gram loss); `convention` the normalisations, where a
    conv index taps and the default layer weights (nst/losses.py). Targets live on the device of the images
    given: build it where it will run. Loss weights are not part of it: `StyleTransfer(targets, ...)` adds them.
    """

    def __init__(self, cnn: nn.Module, content: torch.Tensor | None,
                 style: torch.Tensor | Sequence[torch.Tensor] | None, *, content_layers: Sequence[Layer],
                 style_layers: Sequence[Layer], convention: str | Convention = "seed",
                 style_blend: Sequence[float] | None = None, style_loss: str = "gram"):
        super().__init__()
        self.convention = get_convention(convention) if isinstance(convention, str) else convention
        self.style_loss = get_style_loss(style_loss, self.convention)
        self.content_layers, self.style_layers = list(content_layers), list(style_layers)
        if not self.content_layers and not self.style_layers:
            raise ValueError("no content_layers and no style_layers: nothing to optimise")
        self.encoder = Encoder(cnn, self.content_layers + self.style_layers, self.convention.tap)
        self.keys = {layer: layer_key(layer, cnn, self.convention.tap) for layer in self.encoder.layers}
        for name, layers in (("content_layers", self.content_layers), ("style_layers", self.style_layers)):
            keys = [self.keys[layer] for layer in layers]
            if len(set(keys)) < len(keys):  # a dict of terms per layer would merge them and misalign the weights
                raise ValueError(f"{name} {layers} name {max(keys, key=keys.count)} twice; list each layer once")

        self.content_targets = []
        if self.content_layers:
            if content is None:
                raise ValueError("content_layers are given but no content image")
            feats = self.encode(content, self.content_layers)
            self.content_targets = [feats[layer].detach() for layer in self.content_layers]
        self.style_targets = []
        if self.style_layers:
            styles = [style] if isinstance(style, torch.Tensor) else list(style or [])
            if not styles:
                raise ValueError("style_layers are given but no style image")
            blend = list(style_blend) if style_blend else [1.0] * len(styles)
            if len(blend) != len(styles):
                raise ValueError(f"style_blend {blend} must hold one weight per style image ({len(styles)})")
            if sum(blend) <= 0:  # weights >= 0 (nst.preflight)
                raise ValueError(f"style_blend {blend}: the weights must not all be 0")
            blend = [b / sum(blend) for b in blend]
            feats = [self.encode(image, self.style_layers) for image in styles]
            self.style_targets = [self.style_loss.target([f[layer] for f in feats], blend, seed=i)
                                  for i, layer in enumerate(self.style_layers)]

    def encode(self, image: torch.Tensor, layers: Sequence[Layer]) -> dict[Layer, torch.Tensor]:
        """Features of an image at some of this model's layers, without gradients."""
        encoder = Encoder(self.encoder.cnn, layers, self.convention.tap)
        try:
            with torch.no_grad():
                return encoder(image)
        except RuntimeError as e:
            if "too small" not in str(e):  # pooling: "Output size is too small"
                raise
            names = [self.keys[layer] for layer in layers]
            raise ValueError(f"image size {image.shape[-1]}x{image.shape[-2]} is too small for layers {names} "
                             "(a feature map would be empty); use a larger size or shallower layers") from None

    def terms(self, image: torch.Tensor, feats: dict[Layer, torch.Tensor]) -> tuple[dict[str, torch.Tensor], ...]:
        """Unweighted per-layer content losses and style losses E_l, (B,) each, of features computed from `image`."""
        with torch.autocast(image.device.type, enabled=False):  # the features may be bf16; the losses stay fp32
            content = {self.keys[layer]: self.convention.content(feats[layer], target)
                       for layer, target in zip(self.content_layers, self.content_targets)}
            style = {self.keys[layer]: self.style_loss(feats[layer], target)
                     for layer, target in zip(self.style_layers, self.style_targets)}
        return content, style


class StyleTransfer(nn.Module):
    """Gatys et al. 2016: L_total = α·Σ L_content(l) + β·Σ w_l E_l (+ tv_weight·TV) of an image.

    Built from `Targets` (shared by the jobs of a sweep that differ only in weights) or, as a shortcut, from a
    CNN and images with the `Targets` arguments. With no style layers this is the paper's content
    reconstruction; with no content layers, style reconstruction. w_l defaults to the convention's.
    """

    def __init__(self, cnn: nn.Module | Targets, content: torch.Tensor | None = None,
                 style: torch.Tensor | Sequence[torch.Tensor] | None = None, *, alpha: float = 1.0,
                 beta: float = 1e3, style_layer_weights: Sequence[float] | None = None, tv_weight: float = 0.0,
                 **targets):
        super().__init__()
        self.targets = cnn if isinstance(cnn, Targets) else Targets(cnn, content, style, **targets)
        # loss weights are finite and >= 0: nst.preflight checks a job's before it runs
        self.alpha, self.beta, self.tv_weight = float(alpha), float(beta), float(tv_weight)
        n = len(self.targets.style_layers)
        if style_layer_weights is None or len(style_layer_weights) == 0:
            style_layer_weights = self.targets.convention.layer_weights(n)
        if len(style_layer_weights) != n:
            raise ValueError(f"style_layer_weights {list(style_layer_weights)} must have one weight per style layer "
                             f"({n})")
        self.weights = [float(w) for w in style_layer_weights]

    @property
    def keys(self) -> dict[Layer, str]:
        """Each requested layer's readable key (`relu4_2`, `conv3_1`, ...)."""
        return self.targets.keys

    @property
    def style_layers(self) -> list[Layer]:
        return self.targets.style_layers

    def forward(self, image: torch.Tensor) -> Terms:
        """Loss terms of one image (1, C, H, W) in the network's input space, as 0-dim tensors."""
        # under the caller's autocast (bf16) if any; the losses stay fp32. A batch of jobs: nst.batch.GroupLoss
        content, style = self.targets.terms(image, self.targets.encoder(image))
        zero = image.new_zeros((image.shape[0],), dtype=torch.float32)
        content_loss = sum(content.values(), zero)
        style_loss = sum((w * e for w, e in zip(self.weights, style.values())), zero)
        tv = total_variation(image.float())  # reported even when unweighted: a smoothness measure
        total = self.alpha * content_loss + self.beta * style_loss + self.tv_weight * tv
        return Terms(total, content_loss, style_loss, tv, content, style).at(0)
