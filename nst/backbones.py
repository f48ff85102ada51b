"""Backbones: VGG19 with the original weights (nst/vgg.py), EfficientNet-Lite0 with its pretrained weights
(nst/efficientnet.py, the optional extra `efficientnet`) or any torchvision architecture with a weights file.

Layers of every backbone are addressed the same way (nst/features.py): conv indices 0..n-1 or module names.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from nst import efficientnet
from nst.vgg import CAFFE, NORMALIZED, ORIGINAL, TORCHVISION, Preprocess, vgg19, vgg19_features

POOLINGS = ("max", "avg")  # `pooling`: the nets' own max pooling, or the paper's average pooling
RANDOM = "random"  # seeded random weights: for tests and for untrained-network baselines
PRETRAINED = efficientnet.PRETRAINED  # the weights an installed package ships for its architecture
OWN = {efficientnet.ARCH: PRETRAINED}  # architectures of ours (not torchvision's) -> the weights they ship


TRANSFORMERS = ("vit_", "swin_", "maxvit_")  # fixed input sizes, no convolutional feature maps to read
TRANSFORMER_REFUSAL = ("is a vision transformer (a fixed 224 px input, no convolutional feature maps); give a "
                       "convolutional network, e.g. vgg19, vgg16, resnet18")


def architectures() -> list[str]:
    """Every `arch`: torchvision's convolutional classification architectures (vgg16, vgg19, resnet18, ...) and
    ours; its vision transformers are left out (they assert a 224 px input)."""
    import torchvision  # here, not at the top: importing it takes 1.5 s (torch._dynamo), and VGG19 is ours

    names = torchvision.models.list_models(module=torchvision.models)
    return sorted([*(n for n in names if not n.startswith(TRANSFORMERS)), *OWN])


def weights_file(arch: str, weights: str) -> Path | None:
    """The file that `pretrained` weights are read from (for input fingerprints), else None."""
    return efficientnet.weights_path() if arch == efficientnet.ARCH and weights == PRETRAINED else None


def set_pooling(cnn: nn.Module, pooling: str) -> nn.Module:
    """Replace every MaxPool2d by an AvgPool2d of the same geometry when pooling is "avg" (in place)."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling {pooling!r} is not one of {list(POOLINGS)}")
    for name, child in cnn.named_children():
        if pooling == "avg" and isinstance(child, nn.MaxPool2d):
            setattr(cnn, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding, child.ceil_mode))
        else:
            set_pooling(child, pooling)
    return cnn


def torchvision_backbone(arch: str, weights: str, *, pooling: str = "max", seed: int = 0) -> nn.Module:
    """A frozen torchvision `arch` with a state_dict file (`weights` a path) or seeded random weights."""
    if str(arch).startswith(TRANSFORMERS):  # as nst.preflight says it (layer_scan's sweep reaches here first)
        raise ValueError(f"arch {arch!r} {TRANSFORMER_REFUSAL}")
    if arch not in architectures() or arch in OWN:
        raise ValueError(f"arch {arch!r} is not a torchvision architecture; e.g. vgg16, vgg19, resnet18, alexnet")
    import torchvision

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torchvision.models.get_model(arch, weights=None)
    if weights != RANDOM:
        if not Path(weights).is_file():
            raise FileNotFoundError(f"weights {weights!r}: no such file (give a {arch} state_dict path or 'random')")
        head = head_keys(net)  # kept at their seeded values where the file has none or another shape
        state = {k: v for k, v in torch.load(weights, map_location="cpu", weights_only=True).items() if k not in head}
        try:
            missing, unexpected = net.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise ValueError(f"weights {weights!r} do not fit {arch}: {str(e).splitlines()[0]}") from None
        missing = [k for k in missing if k not in head]
        if missing or unexpected:
            raise ValueError(f"weights {weights!r} do not fit {arch}: " + (f"{missing[0]} missing" if missing else
                                                                           f"{unexpected[0]} unexpected"))
    return set_pooling(net, pooling).eval().requires_grad_(False)


def head_keys(net: nn.Module) -> set[str]:
    """State-dict keys of a network's classifier head: its top-level modules that hold a Linear layer and no
    convolution (resnet's fc, vgg's and mobilenet's classifier). No conv index reaches them, so a weights file may
    lack them (a self-supervised checkpoint) or hold another shape (a head fine-tuned to other classes)."""
    return {f"{name}.{key}" for name, child in net.named_children()
            if any(isinstance(m, nn.Linear) for m in child.modules())
            and not any(isinstance(m, nn.Conv2d) for m in child.modules())
            for key in child.state_dict()}


def backbone(arch: str = "vgg19", weights: str = ORIGINAL, *, pooling: str = "max",
             meta: bool = False) -> tuple[nn.Module, Preprocess]:
    """A frozen CNN and its preprocessing. vgg19 + "original" (the default) or "normalized" is the paper's network;
    efficientnet_lite0 takes "pretrained" or "random" (its trunk has no pooling layer: `pooling` changes nothing).
    meta: the same network on the meta device, its weights not read (shapes only: nst/preflight.py)."""
    if meta:
        with torch.device("meta"):
            if arch == "vgg19" and weights != RANDOM:  # vgg19() without its weights file
                return vgg19_features(pooling=pooling), CAFFE if weights in (ORIGINAL, NORMALIZED) else TORCHVISION
            return backbone(arch, RANDOM, pooling=pooling)
    if arch == "vgg19" and weights != RANDOM:
        return vgg19(weights, pooling=pooling)
    if arch == efficientnet.ARCH:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # as torchvision_backbone's seed: weights=random is the same network every time
            return efficientnet.efficientnet_lite0(weights), efficientnet.LITE
    if weights == PRETRAINED:
        raise ValueError(f"weights {weights!r} exist for {', '.join(OWN)} only; give arch={arch} a state_dict path "
                         "or 'random'")
    if weights in (ORIGINAL, NORMALIZED):
        raise ValueError(f"weights {weights!r} exist for vgg19 only; give arch={arch} a state_dict path or 'random'")
    return torchvision_backbone(arch, weights, pooling=pooling), TORCHVISION
