"""What a job's config resolves to, cached per process so that the jobs of an in-process sweep share it:
the backbone, the images (with colour preservation applied) and the content/style targets."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

import torch

from nst.backbones import backbone as load_backbone
from nst.color import MODES as COLOR_MODES
from nst.color import luminance_only, match_colors
from nst.images import fit_long_side, load_image, read_image
from nst.transfer import StyleTransfer


@lru_cache(maxsize=4)
def backbone(arch: str, weights: str, pooling: str, device: str):
    """The frozen CNN and its preprocessing, loaded once per process (sweeps reuse it)."""
    net, prep = load_backbone(arch, weights, pooling=pooling)
    return net.to(device), prep


@lru_cache(maxsize=32)
def cached_image(path: str, size: tuple[int, int]) -> torch.Tensor:
    """An image at (width, height), read once per process."""
    return load_image(path, size)


@lru_cache(maxsize=32)
def native_size(path: str) -> tuple[int, int]:
    """(width, height) of an image file, read once per process."""
    return read_image(path).size


def image_size(path: str, long_side: int) -> tuple[int, int]:
    """(width, height) of an image scaled to the given long side."""
    if isinstance(long_side, bool) or not isinstance(long_side, int) or long_side < 1:
        raise ValueError(f"size {long_side!r} must be a positive integer (pixels on the long side)")
    return fit_long_side(*native_size(str(path)), long_side)


def as_list(value: Any) -> list:
    """A config value that may be one item or a list -> a list."""
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


def style_image_size(path: str, content_size: tuple[int, int], scale: float | None) -> tuple[int, int]:
    """The content's (width, height) when scale is None (the paper), else long side = scale x the content's."""
    if scale is None:
        return content_size
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 16:
        raise ValueError(f"style_scale {scale!r} must be a number in (0, 16] or null (the content image's size)")
    return image_size(path, max(1, round(scale * max(content_size))))


@lru_cache(maxsize=8)
def inputs(content: str, styles: tuple[str, ...], size: tuple[int, int], style_scale: float | None,
           preserve_color: str | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Content and style images (RGB [0, 1]) as the network will see them, after any colour preservation."""
    c = cached_image(content, size)
    s = tuple(cached_image(p, style_image_size(p, size, style_scale)) for p in styles)
    if preserve_color is None:
        return c, s
    if preserve_color not in COLOR_MODES:
        raise ValueError(f"preserve_color {preserve_color!r} is not one of {list(COLOR_MODES)} or null")
    if preserve_color == "histogram":
        return c, tuple(match_colors(x, c) for x in s)
    pairs = [luminance_only(c, x) for x in s]
    return (pairs[0][0] if pairs else luminance_only(c, c)[0]), tuple(p[1] for p in pairs)


def job_images(c: dict[str, Any], size: tuple[int, int]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """A job's content and style images at `size` (styles only when it has style layers), from `inputs`."""
    styles = tuple(as_list(c["style"])) if as_list(c["style_layers"]) else ()
    return inputs(c["content"], styles, size, c["style_scale"], c["preserve_color"])


@lru_cache(maxsize=8)
def targets(c: tuple, size: tuple[int, int], device: str) -> tuple[StyleTransfer, Any]:
    """A StyleTransfer with its content and style targets, built once per process for the same images, layers,
    network and losses (a sweep over beta, alpha or layer weights reuses it through `reweighted`).

    `c` is the job's config as a sorted tuple of items; only the keys that decide the targets are read.
    """
    d = dict(c)
    cnn, prep = backbone(str(d["arch"]), str(d["weights"]), str(d["pooling"]), device)
    content, style = job_images(d, size)
    model = StyleTransfer(
        cnn, prep(content.to(device)), [prep(s.to(device)) for s in style],
        content_layers=list(d["content_layers"]), style_layers=list(d["style_layers"]), beta=0.0,
        convention=d["loss"], style_blend=list(d["style_blend"]) or None, style_loss=d["style_loss"])
    return model, prep


def hashable(value: Any) -> Any:
    """Lists in a config value -> tuples, so that it can key a cache."""
    return tuple(hashable(v) for v in value) if isinstance(value, (list, tuple)) else value


def target_key(c: dict[str, Any], **changes: Any) -> tuple:
    """The config items that decide a job's targets, as a cache key."""
    keys = ("arch", "weights", "pooling", "content", "style", "style_layers", "content_layers", "style_scale",
            "preserve_color", "loss", "style_loss", "style_blend")
    d = {k: c.get(k) for k in keys} | changes
    for k in ("style", "style_blend", "content_layers", "style_layers"):
        d[k] = as_list(d[k])
    return tuple(sorted((k, hashable(v)) for k, v in d.items()))
