"""What a job's spec resolves to, cached per process so that the jobs of an in-process sweep share it: the
backbone, the images (with colour preservation applied), the content/style targets and input fingerprints."""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

from nst.backbones import RANDOM, weights_file
from nst.backbones import backbone as load_backbone
from nst.color import luminance_only, match_colors
from nst.decoder import find, relu_name
from nst.images import fit_long_side, load_image, read_image
from nst.losses import convention
from nst.spec import FEED_FORWARD, INITS, JobSpec, TargetSpec
from nst.transfer import Targets
from nst.vgg import NORMALIZATION_FILE, NORMALIZED, ORIGINAL, Preprocess, original_weights_path


@lru_cache(maxsize=4)
def backbone(arch: str, weights: str, pooling: str, device: str) -> tuple[nn.Module, Preprocess]:
    """The frozen CNN and its preprocessing, loaded once per process (sweeps reuse it)."""
    net, prep = load_backbone(arch, weights, pooling=pooling)
    return net.to(device), prep


@lru_cache(maxsize=32)
def cached_image(path: str, size: tuple[int, int], key: str = "image") -> torch.Tensor:
    """An image at (width, height), read once per process (`key`: its config key, for the errors)."""
    return load_image(path, size, key)


@lru_cache(maxsize=32)
def native_size(path: str, key: str = "image") -> tuple[int, int]:
    """(width, height) of an image file, read once per process."""
    return read_image(path, key).size


def image_size(path: str, long_side: int, key: str = "content") -> tuple[int, int]:
    """(width, height) of an image scaled to the given long side (`key`: its config key, for the errors)."""
    return fit_long_side(*native_size(str(path), key), long_side)


def style_image_size(path: str, content_size: tuple[int, int], scale: float | None) -> tuple[int, int]:
    """The content's (width, height) when scale is None (the paper), else long side = scale x the content's."""
    if scale is None:
        return content_size
    return image_size(path, max(1, round(scale * max(content_size))), "style")


@lru_cache(maxsize=8)
def images(content: str, styles: tuple[str, ...], size: tuple[int, int], style_scale: float | None,
           preserve_color: str | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Content and style images (RGB [0, 1]) as the network will see them, after any colour preservation."""
    c = cached_image(content, size, "content")
    s = tuple(cached_image(p, style_image_size(p, size, style_scale), "style") for p in styles)
    if preserve_color is None:
        return c, s
    if preserve_color == "histogram":
        return c, tuple(match_colors(x, c) for x in s)
    pairs = [luminance_only(c, x) for x in s]
    return (pairs[0][0] if pairs else luminance_only(c, c)[0]), tuple(p[1] for p in pairs)


def spec_images(spec: TargetSpec, size: tuple[int, int]) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """A job's content and style images at `size`."""
    return images(spec.content, spec.styles, size, spec.style_scale, spec.preserve_color)


@lru_cache(maxsize=8)
def targets(spec: TargetSpec, size: tuple[int, int], device: str) -> tuple[Targets, Preprocess]:
    """The network with a job's content and style targets at `size`, built once per process per spec."""
    cnn, prep = backbone(spec.arch, spec.weights, spec.pooling, device)
    content, styles = spec_images(spec, size)
    built = Targets(cnn, prep(content.to(device)), [prep(s.to(device)) for s in styles],
                    content_layers=list(spec.content_layers), style_layers=list(spec.style_layers),
                    convention=convention(spec.loss, weights=spec.weights, tap=spec.tap),
                    style_blend=list(spec.style_blend) or None, style_loss=spec.style_loss)
    return built, prep


def input_files(spec: JobSpec) -> dict[str, str]:
    """Every file a job reads, by role: content, style_i, init, weights."""
    t = spec.targets
    files = {"content": t.content, **{f"style_{i}": p for i, p in enumerate(t.styles)}}
    if spec.init not in INITS:
        files["init"] = spec.init
    if t.weights in (ORIGINAL, NORMALIZED) and t.arch == "vgg19":
        files["weights"] = str(original_weights_path())
        if t.weights == NORMALIZED:
            files["normalization"] = str(NORMALIZATION_FILE)
    elif weights_file(t.arch, t.weights) is not None:  # a package's own weights (efficientnet_lite0 pretrained)
        files["weights"] = str(weights_file(t.arch, t.weights))
    elif t.weights != RANDOM:
        files["weights"] = t.weights
    if spec.method in FEED_FORWARD:
        u = spec.universal
        files.update({f"decoder_{relu_name(L)}": str(find(u.decoders, L)) for L in u.levels})
    return files


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def fingerprints(spec: JobSpec) -> dict[str, str]:
    """{role: sha256 prefix of the file's bytes} for every input file (cached per path, size and mtime)."""
    out = {}
    for role, path in input_files(spec).items():
        st = os.stat(path)
        out[role] = _digest(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)
    return out
