"""One job from its spec to its result: the starting image, the optimisation across scales, the colour
recombination and the measurements of the result (losses of the saved image, PSNR, Gram yardstick, memory)."""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from nst import memory, universal
from nst.color import with_colors_of
from nst.engine import Interrupted, NonFiniteLoss, NoProgress, Progress, numbers, optimise
from nst.images import load_image
from nst.inputs import cached_image, image_size, spec_images, targets
from nst.metrics import note, noted
from nst.spec import FEED_FORWARD, JobSpec
from nst.transfer import StyleTransfer
from nst.universal import WCTLoss

log = logging.getLogger(__name__)
PRECISIONS = {"fp32": None, "tf32": None, "bf16": torch.bfloat16}


@dataclass
class JobResult:
    """A finished job: the image (RGB [0, 1], not clamped) and its measurements."""

    rgb: torch.Tensor
    terms: dict[str, float]  # the optimiser's, at its last (unclamped) image
    saved_terms: dict[str, float]  # of the image as saved: clamped to [0, 1], rounded to 8 bits
    iterations: int
    evaluations: int
    seconds: float  # optimisation, later scales' set-up included
    setup_seconds: float
    size: tuple[int, int]
    beta: float
    layers: dict[str, str]
    gram_style_loss: float
    content_psnr: float
    peak_memory_mb: float
    device: str
    stop_reason: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    batch: list[int] | None = None  # optimised in one batch with these jobs (indices, itself included); None: alone


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when present else cpu; other names as torch reads them (nst.preflight checks them first)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def configure(spec: JobSpec, device: torch.device) -> None:
    """Torch's global settings for a job: the seed, tf32 and cuDNN autotuning."""
    if spec.precision == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        log.warning("precision=bf16 is emulated on this CPU (no AVX512-BF16/AMX): measured 77x (128 px) to "
                    "151x (256 px) slower than fp32")
    tf32 = spec.precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = device.type == "cuda"
    torch.manual_seed(spec.seed)


def initial_image(spec: JobSpec, content: torch.Tensor, style: torch.Tensor | None,
                  size: tuple[int, int]) -> torch.Tensor:
    """The start in RGB [0, 1]: Gaussian white noise from `seed`, the content, the style or an image file."""
    if spec.init == "noise":
        g = torch.Generator().manual_seed(spec.seed)
        return 0.5 + spec.noise_std * torch.randn(content.shape, generator=g)
    if spec.init == "content":
        return content
    if spec.init == "style":
        return F.interpolate(style, size=content.shape[-2:], mode="bilinear", antialias=True)
    return load_image(spec.init, size, "init")  # an image file (nst.preflight: a path with its extension)


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of an RGB [0, 1] image (clamped) against a reference."""
    mse = (image.clamp(0, 1) - reference).pow(2).mean().item()
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def as_saved(rgb: torch.Tensor) -> torch.Tensor:
    """The image as a PNG holds it: clamped to [0, 1] and rounded to 8 bits."""
    return (rgb.clamp(0, 1) * 255).round() / 255


def model_for(spec: JobSpec, size: tuple[int, int], device: torch.device) -> tuple[StyleTransfer, Any]:
    """The job's loss at one size: cached targets plus its own weights."""
    built, prep = targets(spec.targets, size, str(device))
    w = spec.weights
    model = StyleTransfer(built, alpha=w.alpha, beta=w.beta, style_layer_weights=list(w.style_layer_weights),
                          tv_weight=w.tv_weight)
    return model, prep


def gram_yardstick(spec: JobSpec, model: StyleTransfer, image: torch.Tensor, size: tuple[int, int],
                   device: torch.device, style_loss: float) -> float:
    """The result's Gram style loss (same layers and weights): one yardstick across `style_loss` choices."""
    if not model.style_layers or spec.targets.style_loss == "gram":
        return style_loss
    gram, _ = targets(spec.targets.with_style_loss("gram"), size, str(device))
    with torch.no_grad():
        return StyleTransfer(gram, alpha=0.0, beta=1.0, style_layer_weights=model.weights)(image).style.item()


ProgressFn = Callable[[int, int, Progress], None]  # (long side, steps of this scale, progress)


def run(spec: JobSpec, *, progress: ProgressFn | None = None) -> JobResult:
    """Optimise one job across its scales; each scale starts from the previous result upsampled (bilinear).

    History rows carry their scale's `size`; iterations and seconds count from the first scale's start, so the
    later scales' set-up is part of the time. An error says what the job had done (nst.metrics.note): the rows of
    its completed iterations, its steps, evaluations, seconds, peak memory and device.
    """
    start = time.perf_counter()
    device = resolve_device(spec.device)
    configure(spec, device)
    memory.reset_peak(device)
    history: list[dict[str, Any]] = []
    iterations = evaluations = 0
    seconds, first, rgb, stop_reason, offset = 0.0, None, None, None, 0.0

    starts: dict[int, float] = {}  # each scale's loss at its start

    def record(p: Progress, long_side: int, steps: int) -> None:  # a row counted from the first scale (engine.Trace)
        starts.setdefault(long_side, p.terms["total_loss"])
        row = {"size": long_side, "iteration": iterations + p.iteration, "evaluations": evaluations + p.evaluations,
               "seconds": offset + p.seconds, **p.terms}
        if history and (history[-1]["size"], history[-1]["iteration"]) == (long_side, row["iteration"]):
            history[-1] = row
        else:
            history.append(row)
        if progress is not None:
            progress(long_side, steps, p)

    if spec.method in FEED_FORWARD:
        return feed_forward(spec, device, start)
    try:
        for long_side, steps in spec.scales:
            size = image_size(spec.targets.content, long_side)
            model, prep = model_for(spec, size, device)
            content_rgb, style_rgbs = spec_images(spec.targets, size)
            if rgb is None:
                rgb = initial_image(spec, content_rgb, style_rgbs[0] if style_rgbs else None, size)
            else:
                rgb = F.interpolate(rgb, size=(size[1], size[0]), mode="bilinear")
            objective, oprep = model, prep  # what is minimised; the job's loss (`model`) measures the result
            if spec.method == "wct_opt":
                u = spec.universal
                objective = WCTLoss(content_rgb, style_rgbs[0], u.levels, u.alphas, str(device))
                oprep = objective.prep
            first = time.perf_counter() if first is None else first
            offset = time.perf_counter() - first  # later scales' set-up counts in their seconds
            o = spec.optimizer
            result = optimise(objective, oprep(rgb.to(device)), steps=steps, optimizer=o.name, lr=o.lr,
                              history_size=o.history_size, line_search=o.line_search,
                              autocast=PRECISIONS[spec.precision],
                              callback=lambda p, s=long_side, n=steps: record(p, s, n))
            no_progress(spec, long_side, steps, starts.get(long_side), result)
            iterations, evaluations = iterations + result.iterations, evaluations + result.evaluations
            seconds += result.seconds
            stop_reason = result.stop_reason or stop_reason
            if stop_reason:
                log.warning("stopped after %d of %d iterations at %d px: %s", result.iterations, steps, long_side,
                            stop_reason)
            rgb = oprep.inverse(result.image).detach().cpu()
    except BaseException as e:  # a failure while running: what the earlier scales and this one had done
        ran = isinstance(e, (Interrupted, NonFiniteLoss)) and e.iterations is not None  # the engine says how far
        last = history[-1] if history else {}
        steps = iterations + e.iterations if ran else last.get("iteration", iterations)
        note(e, history=list(history), steps=steps,
             evaluations=evaluations + e.evaluations if ran else last.get("evaluations", evaluations),
             seconds=seconds + e.seconds if ran else last.get("seconds", seconds),
             peak_memory_mb=memory.peak_mb_or_none(device), device=str(device))
        if isinstance(e, KeyboardInterrupt) and getattr(e, "iterations", None) != steps:  # every scale's count
            raise note(Interrupted(steps), **noted(e)) from e
        raise
    image, terms = result.image, result.terms
    if objective is not model:  # wct_opt: the job's loss of the result, as for every method
        image = prep(rgb.to(device))
        with torch.no_grad():
            terms = numbers(model(image))
    return finish(spec, model, prep, image, terms, size, device, history=history,
                  iterations=iterations, evaluations=evaluations, seconds=seconds, setup_seconds=first - start,
                  stop_reason=stop_reason)


def no_progress(spec: JobSpec, long_side: int, steps: int, start: float | None, result: Any) -> None:
    """Raise NoProgress where a scale ran steps and its loss did not fall below its start (a loss of 0 cannot):
    a bf16 job whose first line search failed ended `ok` with its noise start (issue 28)."""
    end = result.terms["total_loss"]
    if steps == 0 or start is None or not start > 0 or end < start or result.stop_reason == "gradient is zero":
        return  # nothing to lower, or a start already at a stationary point
    hint = ("try precision=fp32" if spec.precision == "bf16" else "try another optimizer.lr or optimizer=lbfgs"
            if spec.optimizer.name == "adam" else "try init=content" if spec.optimizer.line_search is None else
            "try optimizer.line_search=null or init=content")
    why = result.stop_reason or "no update lowered it"
    raise NoProgress(f"no progress at {long_side} px: the loss {end:.4g} is not below its start {start:.4g} after "
                     f"{result.iterations} of {steps} iterations ({why}); {hint}")


def feed_forward(spec: JobSpec, device: torch.device, start: float) -> JobResult:
    """A feed-forward job (method wct or adain: nst/universal.py) at its size, measured by the job's loss."""
    size = image_size(spec.targets.content, spec.scales[-1][0])
    model, prep = model_for(spec, size, device)
    content_rgb, style_rgbs = spec_images(spec.targets, size)
    u = spec.universal
    for level in u.levels:  # read before the clock starts: set-up, as the network is
        universal.decoder(u.decoders, level, str(device))
    first = time.perf_counter()
    rgb = universal.stylise(content_rgb, style_rgbs[0], levels=u.levels, alphas=u.alphas, directory=u.decoders,
                            transform=spec.method, device=str(device))
    seconds = time.perf_counter() - first
    image = prep(rgb.to(device))
    with torch.no_grad():
        terms = numbers(model(image))
    row = {"size": max(size), "iteration": 0, "evaluations": 0, "seconds": seconds, **terms}  # its one image
    return finish(spec, model, prep, image, terms, size, device, history=[row], iterations=0, evaluations=0,
                  seconds=seconds, setup_seconds=first - start, stop_reason=None)


def finish(spec: JobSpec, model: StyleTransfer, prep: Any, image: torch.Tensor, terms: dict[str, float],
           size: tuple[int, int], device: torch.device, **record: Any) -> JobResult:
    """A job's result from its optimised image (network input space): the losses of the image as saved, the Gram
    yardstick, colours recombined (luminance-only), PSNR against the content, peak memory."""
    rgb = prep.inverse(image).detach().cpu()
    with torch.no_grad():
        saved = numbers(model(prep(as_saved(rgb).to(device))))
    yardstick = gram_yardstick(spec, model, image, size, device, terms["style_loss"])
    original = cached_image(spec.targets.content, size, "content")  # under luminance-only the job saw it grey
    if spec.targets.preserve_color == "luminance":
        rgb = with_colors_of(rgb.clamp(0, 1), original)
    return JobResult(rgb=rgb, terms=terms, saved_terms=saved, size=size, beta=spec.weights.beta,
                     layers={str(k): v for k, v in model.keys.items()}, gram_style_loss=yardstick,
                     content_psnr=psnr(rgb, original), peak_memory_mb=memory.peak_mb(device), device=str(device),
                     **record)
