"""What one job is, as frozen typed values built once from its (plain dict) config.

`TargetSpec` holds exactly what decides the network and the content/style targets: it is the key of the
per-process target cache (nst/inputs.py) and what `Targets` is built from, so a sweep over β, α, layer weights,
tv_weight or the seed reuses one set of targets and a change to anything in it cannot hit a stale cache entry.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nst.config import NAMED_INITS, as_tuple
from nst.features import Layer

INITS = NAMED_INITS  # the starting images that read no file of their own (else `init` is a path)
METHODS = ("gatys", "wct_opt", "wct", "adain")  # `method`: Gatys et al.'s optimisation, or nst/universal.py's
FEED_FORWARD = ("wct", "adain")  # the methods that optimise nothing: through decoders


@dataclass(frozen=True)
class TargetSpec:
    """The network, the images and the layers and losses that decide a job's targets."""

    arch: str
    weights: str
    pooling: str
    content: str
    styles: tuple[str, ...]  # empty when the job has no style layers
    style_blend: tuple[float, ...]  # empty: equal weights
    style_scale: float | None
    preserve_color: str | None
    content_layers: tuple[Layer, ...]
    style_layers: tuple[Layer, ...]
    loss: str
    style_loss: str
    tap: str | None  # None: the convention's own

    def with_style_loss(self, name: str) -> TargetSpec:
        """The same targets under another style loss (the Gram yardstick)."""
        return TargetSpec(**{**self.__dict__, "style_loss": name})


@dataclass(frozen=True)
class LossWeights:
    """α, β (from `ratio` = α/β when given), w_l and the TV weight."""

    alpha: float
    beta: float
    style_layer_weights: tuple[float, ...]  # empty: the convention's default
    tv_weight: float


@dataclass(frozen=True)
class OptimizerSpec:
    """The optimiser and its settings (conf/optimizer/)."""

    name: str
    lr: float
    history_size: int
    line_search: str | None


@dataclass(frozen=True)
class UniversalSpec:
    """Universal style transfer's settings (method wct_opt, wct, adain: nst/universal.py)."""

    levels: tuple[int, ...]  # relu{L}_1, shallow to deep; adain: the deepest only
    alphas: tuple[float, ...]  # one per level
    decoders: str | None  # a directory of decoder files; None: the shipped ones

    @classmethod
    def from_config(cls, c: dict[str, Any]) -> UniversalSpec:
        """The levels (null: every level with a decoder; for wct_opt all five) and one α per level."""
        from nst.decoder import LEVELS, available

        typed = as_tuple(c.get("wct_levels"))
        if typed:
            levels = tuple(int(v) for v in typed)
        else:  # wct_opt needs no decoder: all five levels, the same wherever it runs
            levels = tuple(available(c.get("decoders"))) if c.get("method") in FEED_FORWARD else LEVELS
        alpha = as_tuple(c.get("wct_alpha"))  # one number, or one per level in wct_levels' order
        by_level = dict(zip(levels, (float(a) for a in alpha) if len(alpha) > 1 else [float(alpha[0])] * len(levels)))
        levels = tuple(sorted(levels))
        if c.get("method") == "adain":  # Huang & Belongie's AdaIN at one level: the deepest
            levels = levels[-1:]
        return cls(levels, tuple(by_level[L] for L in levels), c.get("decoders"))


@dataclass(frozen=True)
class JobSpec:
    """Everything that decides one job's result."""

    targets: TargetSpec
    weights: LossWeights
    optimizer: OptimizerSpec
    scales: tuple[tuple[int, int], ...]  # (long side, steps), coarse to fine
    init: str
    noise_std: float
    seed: int
    device: str
    precision: str
    method: str = "gatys"  # METHODS
    universal: UniversalSpec | None = None  # for every method but gatys

    @classmethod
    def from_config(cls, c: dict[str, Any]) -> JobSpec:
        """The spec of a resolved config (a plain dict, checked by nst.preflight)."""
        style_layers = as_tuple(c["style_layers"])
        reads_style = bool(style_layers) or c.get("method", "gatys") != "gatys"  # every other method transforms it
        opt = c["optimizer"]
        beta = float(c["alpha"]) / float(c["ratio"]) if c.get("ratio") is not None else float(c["beta"])
        plan = c.get("multiscale")
        scales = tuple((int(s), int(n)) for s, n in plan) if plan else ((int(c["size"]), int(c["steps"])),)
        targets = TargetSpec(
            arch=str(c["arch"]), weights=str(c["weights"]), pooling=str(c["pooling"]), content=str(c["content"]),
            styles=tuple(str(s) for s in as_tuple(c["style"])) if reads_style else (),
            style_blend=tuple(float(b) for b in as_tuple(c.get("style_blend"))) if style_layers else (),
            style_scale=None if c.get("style_scale") is None else float(c["style_scale"]),
            preserve_color=c.get("preserve_color"), content_layers=as_tuple(c["content_layers"]),
            style_layers=style_layers, loss=str(c["loss"]), style_loss=str(c["style_loss"]), tap=c.get("tap"))
        weights = LossWeights(float(c["alpha"]), beta, tuple(float(w) for w in as_tuple(c["style_layer_weights"])),
                              float(c["tv_weight"]))
        optimizer = OptimizerSpec(str(opt["name"]), float(opt["lr"]), int(opt["history_size"]), opt["line_search"])
        method = str(c.get("method", "gatys"))
        universal = UniversalSpec.from_config(c) if method != "gatys" else None
        return cls(targets, weights, optimizer, scales, str(c["init"]), float(c["noise_std"]), int(c["seed"]),
                   str(c["device"]), str(c["precision"]), method, universal)
