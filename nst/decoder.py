"""Decoders of Li et al. 2017 ("Universal Style Transfer via Feature Transforms", Sec. 3.1): VGG19 up to relu{L}_1
mirrored, nearest-neighbour upsampling where the encoder pools, reflection padding; one decoder per level L.

The encoder is our VGG19 with the original Caffe weights and max pooling (Li et al. use the same network,
VGG19 from Caffe). A decoder maps relu{L}_1 features of an image to that image in the encoder's input space
(Caffe's BGR 0..255 minus the mean pixel: the features' own scale, so that training starts near it); the
encoder's `Preprocess.inverse` gives RGB in [0, 1].
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nst.vgg import conv_names

LEVELS = (1, 2, 3, 4, 5)  # relu1_1 ... relu5_1
SHIPPED = Path(__file__).parent / "assets" / "decoders"  # the decoders we trained (docs/universal.md)


def relu_name(level: int) -> str:
    """The encoder layer a level reads: 3 -> relu3_1."""
    return f"relu{level}_1"


def conv_index(level: int) -> int:
    """The conv index (nst/features.py) of conv{level}_1: its rectified output is relu{level}_1 (1 -> 0, 3 -> 4)."""
    return conv_names().index(f"conv{level}_1")


def channels(level: int) -> int:
    """Feature channels at relu{level}_1."""
    return 64 * 2 ** min(level - 1, 3)


def decoder(level: int) -> nn.Sequential:
    """The mirror of VGG19's conv1_1 ... relu{level}_1: each conv reversed (its output channels in, its input out),
    each pooling an upsampling, the last conv to 3 channels without a ReLU."""
    if level not in LEVELS:
        raise ValueError(f"level {level!r} is not one of {list(LEVELS)}")
    convs = conv_names()[:conv_index(level) + 1]  # conv1_1 ... conv{level}_1
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for k, name in enumerate(reversed(convs)):
        block, i = (int(x) for x in name[4:].split("_"))
        c_in = 3 if name == "conv1_1" else channels(block if i > 1 else block - 1)
        c_out = channels(block)
        layers[f"pad_{name}"] = nn.ReflectionPad2d(1)
        layers[f"de{name}"] = nn.Conv2d(c_out, c_in, kernel_size=3)
        if name != "conv1_1":
            layers[f"relu_{name}"] = nn.ReLU()
        if i == 1 and block > 1:  # the encoder pooled just before conv{block}_1
            layers[f"up{block - 1}"] = nn.Upsample(scale_factor=2, mode="nearest")
    return nn.Sequential(layers)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def save(path: str | Path, net: nn.Module, level: int, info: dict[str, Any]) -> None:
    """A decoder file: its weights in float16 (half the size; measured PSNR change in docs/universal.md), its level
    and what it was trained with and measured at (`info`)."""
    from nst.files import atomic_write

    state = {k: v.detach().cpu().half() for k, v in net.state_dict().items()}
    atomic_write(path, lambda tmp: torch.save({"level": level, "state_dict": state, "info": info}, tmp))


def load(path: str | Path, level: int | None = None) -> tuple[nn.Sequential, dict[str, Any]]:
    """A frozen decoder (float32) from its file, and its info; `level` when given must be the file's."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        net = decoder(int(saved["level"]))
        net.load_state_dict({k: v.float() for k, v in saved["state_dict"].items()})
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, EOFError) as e:
        raise ValueError(f"{path} is not a decoder file ({type(e).__name__}: {str(e).splitlines()[0][:120]})") from None
    if level is not None and saved["level"] != level:
        raise ValueError(f"{path} decodes relu{saved['level']}_1, not {relu_name(level)}")
    return net.eval().requires_grad_(False), dict(saved.get("info") or {})


def file_name(level: int) -> str:
    return f"decoder_{relu_name(level)}.pt"


def find(directory: str | Path | None, level: int) -> Path:
    """A level's decoder file: the directory's where it has one, else the shipped one (None: the shipped ones)."""
    own = Path(directory) / file_name(level) if directory is not None else None
    return own if own is not None and own.is_file() else SHIPPED / file_name(level)


def available(directory: str | Path | None = None) -> list[int]:
    """The levels with a decoder file in a directory or shipped, shallow to deep."""
    return [level for level in LEVELS if find(directory, level).is_file()]
