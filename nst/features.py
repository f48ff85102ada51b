"""Address a CNN's layers by name or conv index and read their outputs in one truncated forward pass."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

Layer = int | str
TAPS = ("relu", "conv")  # where a conv index reads: the rectified output, or the conv's output before its ReLU


def convs(cnn: nn.Module) -> list[nn.Conv2d]:
    """The model's Conv2d layers in registration order (forward order for sequential and torchvision models)."""
    return [m for m in cnn.modules() if isinstance(m, nn.Conv2d)]


def conv_taps(cnn: nn.Module) -> list[tuple[str, str]] | None:
    """A backbone's own conv-index table, where it defines one (`cnn.conv_taps()`, nst/efficientnet.py): per index,
    the names of the modules whose outputs are its pre-activation (`tap=conv`) and its activation (`tap=relu`)."""
    own = getattr(cnn, "conv_taps", None)
    return own() if callable(own) else None


def conv_count(cnn: nn.Module) -> int:
    """How many conv indices a model has: the entries of its own table, else its Conv2d layers."""
    table = conv_taps(cnn)
    return len(table) if table is not None else len(convs(cnn))


def _leaves(cnn: nn.Module) -> list[nn.Module]:
    return [m for m in cnn.modules() if not list(m.children())]


def valid_layers(cnn: nn.Module) -> str:
    """A one-line description of the layers that may be requested."""
    names = [n for n, m in cnn.named_modules() if n and not list(m.children())]
    shown = ", ".join(names) if len(names) <= 40 else ", ".join(names[:6] + ["…"] + names[-3:])
    return f"conv indices 0..{conv_count(cnn) - 1} or layer names {shown}"


def layer_key(layer: Layer, cnn: nn.Module, tap: str = "relu") -> str:
    """A canonical, readable key for a layer: for an index, the name of what it taps (3 -> relu2_2 or conv2_2)."""
    module, rectify = resolve(layer, cnn, tap)
    name = {m: n for n, m in cnn.named_modules()}[module]
    return f"relu({name})" if rectify else name


def resolve(layer: Layer, cnn: nn.Module, tap: str = "relu") -> tuple[nn.Module, bool]:
    """The module whose output a layer denotes, and whether a ReLU must still be applied to it.

    With tap "relu", an integer i is the i-th Conv2d's rectified output (as the paper's "conv4_2" means relu4_2):
    the output of the ReLU that directly follows the conv where there is one; relu(batchnorm output) where a
    BatchNorm2d follows it (ResNets share one ReLU module per block, so its hook could not tell the calls apart);
    else relu(conv output). With tap "conv", it is the pre-activation: the conv's output (the BatchNorm's where
    one follows), which can be negative. A backbone with its own table (`conv_taps`) maps an index to the modules
    it names, and no ReLU is applied. Names always mean that module's output, whatever the tap.
    """
    if tap not in TAPS:
        raise ValueError(f"tap {tap!r} is not one of {list(TAPS)}")
    if isinstance(layer, bool) or not isinstance(layer, (int, str)):
        raise ValueError(f"layer {layer!r} is neither a conv index nor a name; valid: {valid_layers(cnn)}")
    table = conv_taps(cnn) if isinstance(layer, int) else None
    if table is not None:
        if not 0 <= layer < len(table):
            raise ValueError(f"layer index {layer} is out of range; valid: {valid_layers(cnn)}")
        return dict(cnn.named_modules())[table[layer][1 if tap == "relu" else 0]], False
    if isinstance(layer, int):
        conv_list = convs(cnn)
        if not 0 <= layer < len(conv_list):
            raise ValueError(f"layer index {layer} is out of range; valid: {valid_layers(cnn)}")
        leaves = _leaves(cnn)
        at = next(i for i, m in enumerate(leaves) if m is conv_list[layer])
        after = leaves[at + 1] if at + 1 < len(leaves) else None
        if isinstance(after, nn.BatchNorm2d):
            return after, tap == "relu"
        if tap == "conv":
            return conv_list[layer], False
        return (after, False) if isinstance(after, nn.ReLU) else (conv_list[layer], True)
    modules = dict(cnn.named_modules())
    if not layer or layer not in modules:
        raise ValueError(f"unknown layer {layer!r}; valid: {valid_layers(cnn)}")
    return modules[layer], False


class _Stop(Exception):
    """Raised by a hook once every requested layer has been computed: the forward pass is cut there."""


class Encoder(nn.Module):
    """Runs a frozen CNN up to the deepest requested layer and returns {layer: features}."""

    def __init__(self, cnn: nn.Module, layers: Sequence[Layer], tap: str = "relu"):
        super().__init__()
        for m in cnn.modules():  # an in-place ReLU would overwrite a conv output we keep
            if isinstance(m, nn.ReLU):
                m.inplace = False
        self.cnn = cnn.eval().requires_grad_(False)
        self.layers = list(dict.fromkeys(layers))
        self.tap = tap
        self._targets = [resolve(layer, cnn, tap) for layer in self.layers]

    def forward(self, x: torch.Tensor) -> dict[Layer, torch.Tensor]:
        """Features of `x` at every requested layer (one pass, cut after the deepest)."""
        found: dict[Layer, torch.Tensor] = {}

        def hook_for(layer: Layer, rectify: bool) -> Callable:
            def hook(_module, _inputs, output):
                found[layer] = F.relu(output) if rectify else output
                if len(found) == len(self.layers):
                    raise _Stop

            return hook

        handles = [module.register_forward_hook(hook_for(layer, rectify))
                   for layer, (module, rectify) in zip(self.layers, self._targets)]
        try:
            if self.layers:
                self.cnn(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        missing = [layer for layer in self.layers if layer not in found]
        if missing:
            raise ValueError(f"layers {missing} were not reached by the forward pass")
        return found
