"""Read any image Pillow reads as an RGB tensor in [0, 1], resize it, and write PNGs atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from nst.files import atomic_write

# what a folder of images is read as (nst/decoder_training.py); Pillow reads more, by content
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode (grayscale, 16-bit, RGBA, palette, CMYK, ...) -> 8-bit RGB; transparency over white."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        a = np.asarray(img, dtype=np.float64)
        if img.mode == "F":  # floats: [0, 1] or [0, 255]
            top = 1.0 if a.max() <= 1.0 else 255.0
        else:  # 16-bit modes always span 0..65535; 32-bit "I" is read as 16-bit data when it exceeds 255
            top = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        return Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if img.mode == "P" and "transparency" in img.info or img.mode in ("LA", "PA", "La"):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa"):
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img.convert("RGBA")).convert("RGB")
    return img.convert("RGB")


def read_image(path: str | Path, key: str = "image") -> Image.Image:
    """Open an image, apply its EXIF orientation and convert it to RGB; one-line errors for bad files, naming the
    config key that gave the path (`key`: content, style, init)."""
    path = Path(path)
    if not path.is_file():
        from nst.fetch import missing_hint  # one of the paper's images: say how to download them

        hint = missing_hint(path)
        raise FileNotFoundError(f"{key} {str(path)!r} does not exist" + (f"; {hint}" if hint else ""))
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            img.load()
            return to_rgb(img)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        why = str(e).splitlines()[0] if str(e) else ""  # a JPEG cut short: "image file is truncated (9 bytes not processed)"
        raise ValueError(f"{key} {str(path)!r} is not readable as an image ({type(e).__name__}"
                         + (f": {why})" if why else ")")) from None


def fit_long_side(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) scaled so that the long side is `size` px."""
    scale = size / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_tensor(img: Image.Image, size: tuple[int, int] | None = None) -> torch.Tensor:
    """An RGB image, resized to (width, height) if given, as a (1, 3, H, W) float tensor in [0, 1]."""
    if size is not None and img.size != tuple(size):
        img = img.resize(tuple(size), Image.Resampling.LANCZOS)
    a = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).contiguous()


def load_image(path: str | Path, size: int | tuple[int, int] | None = None, key: str = "image") -> torch.Tensor:
    """Read an image as (1, 3, H, W) in [0, 1]; an int size is the long side, a pair is (width, height); `key`: the
    config key that gave the path, for the errors."""
    img = read_image(path, key)
    if isinstance(size, int):
        if size < 1:
            raise ValueError(f"size {size} must be a positive number of pixels")
        size = fit_long_side(*img.size, size)
    return to_tensor(img, size)


def to_pil(image: torch.Tensor) -> Image.Image:
    """(1, 3, H, W) or (3, H, W) in [0, 1] -> 8-bit RGB image (clamped, rounded)."""
    x = image.detach().float().cpu().reshape(-1, *image.shape[-3:])[0]
    a = (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return Image.fromarray(a, "RGB")


def save_png(image: torch.Tensor, path: str | Path) -> Path:
    """Write an RGB [0, 1] tensor as a PNG, atomically."""
    pil = to_pil(image)
    return atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))
