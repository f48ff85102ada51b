"""Train a decoder of Li et al. 2017 (nst/decoder.py) on a folder of images: random crops, the loss
||I_o - I_i||² + λ ||Φ(I_o) - Φ(I_i)||² (their Eq. 1, Φ = VGG19 up to relu{L}_1), Adam, checkpoints and resume.

Departures (our choices, for a CPU): crops of `crop` px (Li et al.: 256 from MS-COCO resized to 512) from images
resized to `load_size` on their long side; the feature term is divided by the mean square of the target features
so that λ = 1 means the same at every level (Caffe-scale features are 10²-10⁴ times the [0, 1] pixel term; Li et
al. give λ = 1 on their own scales). Measured effect: docs/universal.md.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch.nn import functional as F

from nst import decoder as decoders
from nst.features import Encoder
from nst.files import write_text
from nst.images import IMAGE_EXTENSIONS, load_image, read_image
from nst.progress import Bars

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"


FREE = {"resume": False}  # a key that a resumed run may change (the steps may be raised; where and how it runs)


@dataclass
class TrainConfig:
    """What a decoder is trained with (conf/train_decoder.yaml documents each key)."""

    level: int = 3
    images: str = ""
    held_out: str | None = None
    steps: int = field(default=2000, metadata=FREE)
    batch: int = 4
    crop: int = 128
    load_size: int = 256
    lr: float = 1e-3
    feature_weight: float = 1.0
    eval_size: int = 256
    checkpoint_every: int = field(default=100, metadata=FREE)
    seed: int = 0
    device: str = field(default="auto", metadata=FREE)
    threads: int | None = field(default=None, metadata=FREE)
    progress: bool = field(default=True, metadata=FREE)


class TrainingError(ValueError):
    """A training run that cannot start: one line naming the key and its value."""


def image_files(folder: str, key: str = "images") -> list[Path]:
    """The image files under a folder (recursive, sorted); an error line when there is none."""
    root = Path(os.path.expanduser(folder))
    if not str(folder):
        raise TrainingError(f"{key} is empty: give a folder of images ({key}=/path/to/folder)")
    if not root.is_dir():
        raise TrainingError(f"{key} {str(folder)!r}: " + ("not a folder" if root.exists() else "no such folder"))
    try:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    except PermissionError as e:
        raise TrainingError(f"{key} {str(folder)!r} is not readable ({e.strerror})") from None
    if not files:
        raise TrainingError(f"{key} {str(folder)!r} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def load_folder(folder: str, long_side: int, key: str = "images") -> list[torch.Tensor]:
    """Every readable image of a folder, RGB [0, 1] at `long_side`; unreadable ones are skipped with a warning,
    and a folder with none readable is an error."""
    out, bad = [], []
    for path in image_files(folder, key):
        try:
            w, h = read_image(str(path), key).size
            scale = long_side / max(w, h)
            out.append(load_image(str(path), (max(1, round(w * scale)), max(1, round(h * scale))), key))
        except (ValueError, OSError) as e:
            bad.append(f"{path.name} ({str(e).splitlines()[0][-80:]})")
    if bad:
        log.warning("%s: skipped %d unreadable file(s): %s", key, len(bad), "; ".join(bad[:3]))
    if not out:
        raise TrainingError(f"{key} {str(folder)!r}: none of its {len(bad)} image files is readable ({bad[0]})")
    return out


def crops(images: list[torch.Tensor], n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """n random size x size crops (images smaller than that are upscaled first), half of them flipped."""
    out = []
    for _ in range(n):
        img = images[int(torch.randint(len(images), (1,), generator=g))]
        h, w = img.shape[-2:]
        if min(h, w) < size:
            img = F.interpolate(img, scale_factor=size / min(h, w) + 1e-6, mode="bilinear", antialias=True)
            h, w = img.shape[-2:]
        y = int(torch.randint(h - size + 1, (1,), generator=g))
        x = int(torch.randint(w - size + 1, (1,), generator=g))
        c = img[..., y:y + size, x:x + size]
        out.append(c.flip(-1) if torch.rand(1, generator=g).item() < 0.5 else c)
    return torch.cat(out)


def encoder(level: int, device: torch.device) -> tuple[Encoder, Any]:
    """VGG19 (original weights, max pooling) up to relu{level}_1, and its preprocessing."""
    from nst.vgg import vgg19

    cnn, prep = vgg19("original", pooling="max")
    return Encoder(cnn.to(device), [decoders.relu_name(level)]), prep


def loss_terms(dec: torch.nn.Module, enc: Encoder, prep: Any, x: torch.Tensor, level: int,
               feature_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, pixel, feature) of a batch: pixel MSE in RGB [0, 1], feature MSE relative to the target's mean
    square."""
    name = decoders.relu_name(level)
    with torch.no_grad():
        target = enc(prep(x))[name]
    out = dec(target)  # in the encoder's input space
    pixel = F.mse_loss(prep.inverse(out), x)
    feature = F.mse_loss(enc(out)[name], target) / target.pow(2).mean().clamp_min(1e-12)
    return pixel + feature_weight * feature, pixel, feature


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = (a.clamp(0, 1) - b).pow(2).mean().item()
    return 10 * math.log10(1 / mse) if mse > 0 else math.inf


def held_out_psnr(dec: torch.nn.Module, enc: Encoder, prep: Any, images: list[torch.Tensor], level: int,
                  device: torch.device) -> list[float]:
    """PSNR (dB) of each image against its reconstruction through the encoder and the decoder; image sides are
    cropped to a multiple of 2^(level-1) so that the decoder gives the same size back."""
    out, m = [], 2 ** (level - 1)
    dec.eval()
    with torch.no_grad():
        for img in images:
            h, w = (s // m * m for s in img.shape[-2:])
            x = img[..., :h, :w].to(device)
            out.append(psnr(prep.inverse(dec(enc(prep(x))[decoders.relu_name(level)])).cpu(), x.cpu()))
    dec.train()
    return out


def comparable(config: TrainConfig) -> dict[str, Any]:
    """What a checkpoint must agree on to be resumed: every key but the FREE ones."""
    return {f.name: getattr(config, f.name) for f in fields(config) if f.metadata.get("resume", True)}


@dataclass
class Outcome:
    steps: int
    seconds_per_step: float
    psnr: list[float]
    decoder_file: Path
    resumed_from: int


def train(config: TrainConfig, out: Path, *, interrupted: Callable[[], bool] = lambda: False) -> Outcome:
    """Train (or resume, from out/checkpoint.pt) one decoder; writes out/decoder_relu{L}_1.pt, losses.csv,
    losses.png and checkpoint.pt. Raises KeyboardInterrupt after saving a checkpoint when `interrupted()`."""
    from nst.run import resolve_device

    if config.level not in decoders.LEVELS:
        raise TrainingError(f"level {config.level!r} is not one of {' | '.join(map(str, decoders.LEVELS))}")
    for name in ("steps", "batch", "crop", "load_size", "eval_size", "checkpoint_every"):
        if getattr(config, name) < 1:
            raise TrainingError(f"{name} {getattr(config, name)} must be an integer >= 1")
    if config.crop > config.load_size:
        raise TrainingError(f"crop {config.crop} must be <= load_size {config.load_size}")
    images = load_folder(config.images, config.load_size)
    held = load_folder(config.held_out, config.eval_size, "held_out") if config.held_out else []
    device = resolve_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    dec = decoders.decoder(config.level).to(device)
    enc, prep = encoder(config.level, device)
    opt = torch.optim.Adam(dec.parameters(), lr=config.lr)
    g = torch.Generator().manual_seed(config.seed)
    rows: list[dict[str, float]] = []
    step, spent = 0, 0.0  # steps and training seconds so far (a resumed run's included)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = out / CHECKPOINT
    if ckpt.is_file():
        try:
            saved = torch.load(ckpt, map_location="cpu", weights_only=True)
        except Exception as e:
            raise TrainingError(f"{ckpt} is no checkpoint ({type(e).__name__}); remove it to start afresh") from None
        ours = comparable(config)
        if saved["config"] != ours:
            k = next(k for k in {**ours, **saved["config"]} if saved["config"].get(k) != ours.get(k))
            raise TrainingError(f"{k} {ours.get(k)!r} differs from the checkpoint's {saved['config'].get(k)!r} in "
                                f"{ckpt}; give it back, or another hydra.run.dir")
        dec.load_state_dict(saved["decoder"])
        opt.load_state_dict(saved["optimizer"])
        g.set_state(saved["generator"])
        step, rows, spent = saved["step"], saved["rows"], saved.get("seconds", 0.0)
        log.info("resumed from %s at step %d", ckpt, step)
    resumed_from = step

    def checkpoint() -> None:  # at a step's end only: a resumed run goes on exactly as this one would have
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"config": comparable(config), "decoder": dec.state_dict(), "optimizer": opt.state_dict(),
                    "generator": g.get_state(), "step": step, "rows": rows,
                    "seconds": spent + time.perf_counter() - started}, tmp)
        os.replace(tmp, ckpt)

    bars = Bars(f"decoder relu{config.level}_1", config.progress)
    started, timed = time.perf_counter(), 0
    try:
        while step < config.steps:
            if interrupted():  # the first signal: stop between steps, with a checkpoint
                checkpoint()
                raise KeyboardInterrupt("checkpoint")
            x = crops(images, config.batch, config.crop, g).to(device)
            total, pixel, feature = loss_terms(dec, enc, prep, x, config.level, config.feature_weight)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            step, timed = step + 1, timed + 1
            rows.append({"step": step, "loss": total.item(), "pixel": pixel.item(), "feature": feature.item()})
            per_step = (time.perf_counter() - started) / timed  # of this run's steps (a resumed one's too)
            bars(config.crop, config.steps, SimpleNamespace(iteration=step, seconds=per_step * step,
                                                            terms={"total_loss": rows[-1]["loss"]}))
            if step % config.checkpoint_every == 0:
                checkpoint()
    finally:  # a second signal stops at once: the last checkpoint, at a step's end, is kept
        bars.close()
    checkpoint()
    per_step = (spent + time.perf_counter() - started) / max(1, step)
    psnrs = held_out_psnr(dec, enc, prep, held, config.level, device)
    info = {"config": asdict(config), "steps": step, "seconds_per_step": per_step, "device": str(device),
            "held_out_psnr": psnrs, "held_out_psnr_mean": sum(psnrs) / len(psnrs) if psnrs else None,
            "held_out_files": [p.name for p in image_files(config.held_out, "held_out")] if held else [],
            "training_files": [p.name for p in image_files(config.images)]}
    target = out / decoders.file_name(config.level)
    decoders.save(target, dec, config.level, info)
    write_text(out / "info.json", json.dumps(info, indent=2))
    write_losses(out, rows)
    return Outcome(step, per_step, psnrs, target, resumed_from)


def write_losses(out: Path, rows: list[dict[str, float]]) -> None:
    """losses.csv and the loss curve, losses.png (log scale; a running mean over 50 steps beside the raw loss)."""
    import pandas as pd

    from nst.figures import loss_curve

    df = pd.DataFrame(rows)
    write_text(out / "losses.csv", df.to_csv(index=False))
    if len(df):
        loss_curve(df, out / "losses.png")
