"""One style-transfer job: config -> images, backbone, StyleTransfer, optimisation -> files on disk.

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
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torchvision
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

import nst
from nst.engine import Progress, optimise
from nst.files import write_text
from nst.images import fit_long_side, load_image, read_image, save_png
from nst.transfer import StyleTransfer
from nst.vgg import vgg19

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


@lru_cache(maxsize=4)
def backbone(weights: str, pooling: str, device: str):
    """The frozen VGG19 and its preprocessing, loaded once per process (sweeps reuse it)."""
    net, prep = vgg19(weights, pooling=pooling)
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


def history_csv(history: list[Progress]) -> str:
    """Loss terms per iteration as CSV text."""
    buf = io.StringIO()
    if history:
        fields = ["iteration", "evaluations", "seconds", *history[0].terms]
        writer = csv.DictWriter(buf, fieldnames=fields)
        writer.writeheader()
        for p in history:
            writer.writerow({"iteration": p.iteration, "evaluations": p.evaluations,
                             "seconds": round(p.seconds, 6), **p.terms})
    return buf.getvalue()


def initial_image(c: dict, content: torch.Tensor, style: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
    """The start of the optimisation in RGB [0, 1]: Gaussian white noise from `seed`, the content, the style or a file."""
    init = c["init"]
    if init == "noise":
        g = torch.Generator().manual_seed(int(c["seed"]))
        return 0.5 + float(c["noise_std"]) * torch.randn(content.shape, generator=g)
    if init == "content":
        return content
    if init == "style":
        if style is None:
            raise ValueError("init 'style' needs a style image")
        return load_image(as_list(c["style"])[0], size)
    if isinstance(init, str) and Path(init).suffix:
        return load_image(init, size)
    raise ValueError(f"init {init!r} is not one of {list(INITS)} or an image path")


def run_job(cfg: DictConfig | dict, out_dir: str | Path) -> dict[str, Any]:
    """Run one job and write its files into out_dir; returns the metrics (also in metrics.json)."""
    start = time.perf_counter()
    c, out_dir = settings(cfg), Path(out_dir)
    device = resolve_device(str(c["device"]))
    if c["precision"] not in PRECISIONS:
        raise ValueError(f"precision {c['precision']!r} is not one of {list(PRECISIONS)}")
    tf32 = c["precision"] == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = device.type == "cuda"
    torch.manual_seed(int(c["seed"]))

    beta = float(c["alpha"]) / float(c["ratio"]) if c.get("ratio") is not None else c["beta"]
    size = image_size(c["content"], c["size"])
    content_rgb = cached_image(c["content"], size)
    style_paths = as_list(c["style"]) if c["style_layers"] else []
    style_rgbs = [cached_image(p, size if c.get("style_size") is None else image_size(p, c["style_size"]))
                  for p in style_paths]
    cnn, prep = backbone(str(c["weights"]), str(c["pooling"]), str(device))
    model = StyleTransfer(
        cnn, prep(content_rgb.to(device)), [prep(s.to(device)) for s in style_rgbs],
        content_layers=as_list(c["content_layers"]), style_layers=as_list(c["style_layers"]),
        alpha=c["alpha"], beta=beta, style_layer_weights=as_list(c.get("style_layer_weights")),
        convention=c["loss"], style_blend=as_list(c.get("style_blend")) or None)
    init = prep(initial_image(c, content_rgb, style_rgbs[0] if style_rgbs else None, size).to(device))
    setup = time.perf_counter() - start

    opt = c["optimizer"]
    bar = tqdm(total=c["steps"], disable=not c.get("progress", True), desc=out_dir.name, leave=False)

    def report(p: Progress) -> None:
        bar.update(p.iteration - bar.n)
        bar.set_postfix(loss=f"{p.terms['total_loss']:.4g}")

    try:
        result = optimise(model, init, steps=c["steps"], optimizer=opt["name"], lr=opt["lr"],
                          history_size=opt["history_size"], line_search=opt["line_search"],
                          autocast=PRECISIONS[c["precision"]], callback=report)
    finally:
        bar.close()

    save_png(prep.inverse(result.image), out_dir / "result.png")
    write_text(out_dir / "history.csv", history_csv(result.history))
    write_text(out_dir / "config.yaml", OmegaConf.to_yaml(c))
    metrics = {
        "status": "ok", **result.terms, "steps": result.iterations, "evaluations": result.evaluations,
        "seconds": result.seconds, "seconds_per_iteration": result.seconds / max(1, result.iterations),
        "setup_seconds": setup, "total_seconds": time.perf_counter() - start, "device": str(device),
        "seed": c["seed"], "beta_used": beta, "width": size[0], "height": size[1],
        "layers": {str(k): v for k, v in model.keys.items()}, "versions": versions(), "config": c,
    }
    write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2, allow_nan=True))
    log.info("%s: total %.4g content %.4g style %.4g in %.1fs", out_dir.name, metrics["total_loss"],
             metrics["content_loss"], metrics["style_loss"], metrics["total_seconds"])
    return metrics


def finished(cfg: DictConfig | dict, out_dir: str | Path) -> dict[str, Any] | None:
    """The metrics of a job already completed in out_dir for this same resolved config, else None (resume)."""
    path = Path(out_dir) / "metrics.json"
    if not path.is_file() or not (Path(out_dir) / "result.png").is_file():
        return None
    metrics = json.loads(path.read_text())
    same = {k: v for k, v in (metrics.get("config") or {}).items() if k != "progress"} == \
        {k: v for k, v in settings(cfg).items() if k != "progress"}
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
