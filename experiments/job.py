"""One style-transfer job: config -> inputs and targets (experiments/inputs.py) -> optimisation -> files on disk.

Written files: result.png, history.csv, config.yaml (resolved) and, last, metrics.json (its presence with
status "ok" marks a finished job).
"""
from __future__ import annotations

import csv
import io
import json
import logging
import math
import platform
import time
from pathlib import Path
from typing import Any

import torch
import torchvision
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import nst
from nst.engine import Progress, optimise
from nst.files import write_text
from experiments.inputs import as_list, cached_image, image_size, job_images, target_key, targets
from experiments.resolvers import IGNORED
from nst.color import with_colors_of
from nst.images import load_image, save_png
from nst.transfer import StyleTransfer

log = logging.getLogger(__name__)
PRECISIONS = {"fp32": None, "tf32": None, "bf16": torch.bfloat16}
INITS = ("noise", "content", "style")


def resolve_device(name: str) -> torch.device:
    """auto -> cuda when present else cpu; a cuda device that is not there is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available (use device=auto or cpu)")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device {name!r} is not one of auto, cpu, cuda, cuda:N")
    return device


def versions() -> dict[str, str]:
    """Versions of what produced a result."""
    import hydra

    return {"nst": nst.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "hydra": hydra.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "torch_threads": str(torch.get_num_threads())}


def settings(cfg: DictConfig | dict) -> dict[str, Any]:
    """The resolved config as plain Python (no `hydra` key)."""
    c = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    c.pop("hydra", None)
    return c


def history_csv(history: list[dict[str, Any]]) -> str:
    """Loss terms per iteration (rows of dicts with the same keys) as CSV text."""
    buf = io.StringIO()
    if history:
        writer = csv.DictWriter(buf, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows({k: round(v, 6) if k == "seconds" else v for k, v in row.items()} for row in history)
    return buf.getvalue()


def initial_image(c: dict, content: torch.Tensor, style: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
    """The start in RGB [0, 1]: Gaussian white noise from `seed`, the content, the style or an image file."""
    init = c["init"]
    if init == "noise":
        g = torch.Generator().manual_seed(int(c["seed"]))
        return 0.5 + float(c["noise_std"]) * torch.randn(content.shape, generator=g)
    if init == "content":
        return content
    if init == "style":
        if style is None:
            raise ValueError("init 'style' needs a style image")
        return torch.nn.functional.interpolate(style, size=content.shape[-2:], mode="bilinear", antialias=True)
    if isinstance(init, str) and Path(init).suffix:
        return load_image(init, size)
    raise ValueError(f"init {init!r} is not one of {list(INITS)} or an image path")


def cpu_has_bf16() -> bool:
    """Whether oneDNN has native bf16 kernels on this CPU."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def scales(c: dict) -> list[tuple[int, int]]:
    """[(long side, steps), ...]: `multiscale` when set, else [(size, steps)]."""
    if c.get("multiscale") is None:
        return [(c["size"], c["steps"])]
    plan = c["multiscale"]
    ok = isinstance(plan, list) and plan and all(
        isinstance(p, list) and len(p) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in p)
        for p in plan)
    if not ok:
        raise ValueError(f"multiscale {plan!r} must be a list of [size, steps] pairs, e.g. [[128,200],[256,100]]")
    return [tuple(p) for p in plan]


def run_job(cfg: DictConfig | dict, out_dir: str | Path) -> dict[str, Any]:
    """Run one job and write its files into out_dir; returns the metrics (also in metrics.json).

    With `multiscale`, each scale starts from the previous scale's result upsampled (bilinear); history.csv
    then has one block of rows per scale (its `size`), iterations and seconds counted from the first scale's
    start, so that the later scales' set-up is part of the time.
    """
    start = time.perf_counter()
    c, out_dir = settings(cfg), Path(out_dir)
    device = resolve_device(str(c["device"]))
    if c["precision"] not in PRECISIONS:
        raise ValueError(f"precision {c['precision']!r} is not one of {list(PRECISIONS)}")
    if c["precision"] == "bf16" and device.type == "cpu" and not cpu_has_bf16():
        log.warning("precision=bf16 is emulated on this CPU (no AVX512-BF16/AMX): measured 77x (128 px) to "
                    "151x (256 px) slower than fp32")
    if c.get("threads") is not None:
        torch.set_num_threads(int(c["threads"]))
    tf32 = c["precision"] == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = device.type == "cuda"
    torch.manual_seed(int(c["seed"]))
    beta = float(c["alpha"]) / float(c["ratio"]) if c.get("ratio") is not None else c["beta"]
    opt = c["optimizer"]
    history: list[dict[str, Any]] = []
    iterations = evaluations = 0
    seconds, first, rgb = 0.0, None, None
    for long_side, steps in scales(c):
        size = image_size(c["content"], long_side)
        base, prep = targets(target_key(c), size, str(device))
        model = base.reweighted(alpha=c["alpha"], beta=beta, style_layer_weights=as_list(c["style_layer_weights"]),
                                tv_weight=c["tv_weight"])
        content_rgb, style_rgbs = job_images(c, size)
        if rgb is None:
            rgb = initial_image(c, content_rgb, style_rgbs[0] if style_rgbs else None, size)
        else:
            rgb = torch.nn.functional.interpolate(rgb, size=(size[1], size[0]), mode="bilinear")
        first = time.perf_counter() if first is None else first
        offset = time.perf_counter() - first  # later scales' set-up counts in their seconds
        bar = tqdm(total=steps, disable=not c.get("progress", True), desc=f"{out_dir.name} {long_side}px", leave=False)

        def report(p: Progress) -> None:
            bar.update(p.iteration - bar.n)
            bar.set_postfix(loss=f"{p.terms['total_loss']:.4g}")

        try:
            result = optimise(model, prep(rgb.to(device)), steps=steps, optimizer=opt["name"], lr=opt["lr"],
                              history_size=opt["history_size"], line_search=opt["line_search"],
                              autocast=PRECISIONS[c["precision"]], callback=report)
        finally:
            bar.close()
        history += [{"size": long_side, "iteration": iterations + p.iteration,
                     "evaluations": evaluations + p.evaluations, "seconds": offset + p.seconds, **p.terms}
                    for p in result.history]
        iterations, evaluations, seconds = iterations + result.iterations, evaluations + result.evaluations, \
            seconds + result.seconds
        rgb = prep.inverse(result.image).detach().cpu()
    content_rgb = cached_image(c["content"], size)  # the original: under luminance-only the job saw it grey
    if c["preserve_color"] == "luminance":
        rgb = with_colors_of(rgb.clamp(0, 1), content_rgb)

    save_png(rgb, out_dir / "result.png")
    write_text(out_dir / "history.csv", history_csv(history))
    write_text(out_dir / "config.yaml", OmegaConf.to_yaml(c))
    metrics = {
        "status": "ok", **result.terms, "gram_style_loss": gram_style_loss(c, model, result, size, device),
        "content_psnr": psnr(rgb, content_rgb),
        "steps": iterations, "evaluations": evaluations, "seconds": seconds,
        "seconds_per_iteration": seconds / max(1, iterations), "setup_seconds": first - start,
        "total_seconds": time.perf_counter() - start, "device": str(device), "seed": c["seed"], "beta_used": beta,
        "width": size[0], "height": size[1], "layers": {str(k): v for k, v in model.keys.items()},
        "versions": versions(), "config": c,
    }
    write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2, allow_nan=True))
    log.info("%s: total %.4g content %.4g style %.4g in %.1fs", out_dir.name, metrics["total_loss"],
             metrics["content_loss"], metrics["style_loss"], metrics["total_seconds"])
    return metrics


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of an RGB [0, 1] image (clamped) against a reference."""
    mse = (image.clamp(0, 1) - reference).pow(2).mean().item()
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def gram_style_loss(c: dict, model: StyleTransfer, result: Any, size: tuple[int, int], device: torch.device) -> float:
    """The result's Gram style loss (same layers and weights): one yardstick across `style_loss` choices."""
    if not model.style_layers or c["style_loss"] == "gram":
        return result.terms["style_loss"]
    gram, _ = targets(target_key(c, style_loss="gram"), size, str(device))
    gram = gram.reweighted(alpha=0.0, beta=1.0, style_layer_weights=model.weights)
    with torch.no_grad():
        return gram(result.image).style.item()


def finished(cfg: DictConfig | dict, out_dir: str | Path) -> dict[str, Any] | None:
    """The metrics of a job already completed in out_dir for this same resolved config, else None (resume)."""
    path = Path(out_dir) / "metrics.json"
    if not path.is_file() or not (Path(out_dir) / "result.png").is_file():
        return None
    metrics = json.loads(path.read_text())
    same = {k: v for k, v in (metrics.get("config") or {}).items() if k not in IGNORED} == \
        {k: v for k, v in settings(cfg).items() if k not in IGNORED}
    return metrics if metrics.get("status") == "ok" and same else None


def write_failure(cfg: DictConfig | dict, out_dir: str | Path, error: BaseException) -> dict[str, Any]:
    """Record a failed job in metrics.json (status "failed" with the error) so reports show it."""
    try:
        c = settings(cfg)
    except Exception:  # an unresolvable config is itself the error
        c = {}
    metrics = {"status": "failed", "error": f"{type(error).__name__}: {error}", "versions": versions(), "config": c,
               "total_loss": math.nan}
    write_text(Path(out_dir) / "metrics.json", json.dumps(metrics, indent=2))
    return metrics
