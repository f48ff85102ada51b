"""Draws kandinsky.png: an abstract painting in the manner of Kandinsky, deterministically, with Pillow.

Run `python -m nst.assets.painting` to redraw it; the same seed gives the same bytes.
"""
from __future__ import annotations

import math
import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

PALETTE = [(208, 47, 44), (241, 196, 38), (33, 82, 160), (20, 20, 24), (236, 120, 40), (44, 142, 98),
           (120, 60, 140), (90, 170, 210), (240, 240, 228)]


def draw(*, width: int = 512, height: int = 400, seed: int = 1913) -> Image.Image:
    """Colour fields, concentric circles, arcs, bars, a checkerboard and lines on a warm ground."""
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), (236, 224, 196))
    d = ImageDraw.Draw(img, "RGBA")
    pick = lambda: rng.choice(PALETTE)  # noqa: E731
    for _ in range(7):  # soft colour fields
        x, y = rng.uniform(-0.2, 1.0) * width, rng.uniform(-0.2, 1.0) * height
        w, h = rng.uniform(0.2, 0.5) * width, rng.uniform(0.2, 0.5) * height
        d.polygon([(x, y), (x + w, y + rng.uniform(-30, 30)), (x + w * 0.8, y + h), (x - 20, y + h * 0.9)],
                  fill=(*pick(), 110))
    img = img.filter(ImageFilter.GaussianBlur(6))
    d = ImageDraw.Draw(img, "RGBA")
    for _ in range(5):  # concentric circles
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(20, 70)
        for k in range(4):
            rr = r * (1 - k / 4)
            d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=(*pick(), 235))
    for _ in range(9):  # arcs
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(30, 150)
        a0 = rng.uniform(0, 360)
        d.arc([cx - r, cy - r, cx + r, cy + r], a0, a0 + rng.uniform(60, 200), fill=pick(), width=rng.randint(2, 7))
    for _ in range(8):  # bars
        x, y, angle = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0, math.pi)
        length, thick = rng.uniform(60, 220), rng.uniform(6, 18)
        dx, dy = math.cos(angle) * length / 2, math.sin(angle) * length / 2
        nx, ny = -math.sin(angle) * thick / 2, math.cos(angle) * thick / 2
        d.polygon([(x - dx + nx, y - dy + ny), (x + dx + nx, y + dy + ny), (x + dx - nx, y + dy - ny),
                   (x - dx - nx, y - dy - ny)], fill=pick())
    x0, y0, cell = rng.uniform(0.5, 0.8) * width, rng.uniform(0.1, 0.6) * height, 12  # a checkerboard
    for i in range(6):
        for j in range(5):
            if (i + j) % 2 == 0:
                d.rectangle([x0 + i * cell, y0 + j * cell, x0 + (i + 1) * cell, y0 + (j + 1) * cell], fill=(20, 20, 24))
    for _ in range(14):  # thin black lines and triangles
        pts = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(2)]
        d.line(pts, fill=(20, 20, 24), width=rng.randint(1, 3))
    for _ in range(4):
        pts = [(rng.uniform(0, width), rng.uniform(0, height)) for _ in range(3)]
        d.polygon(pts, fill=(*pick(), 200), outline=(20, 20, 24))
    return img


if __name__ == "__main__":
    out = Path(__file__).with_name("kandinsky.png")
    draw().save(out, format="PNG", optimize=True)
    print(out)
