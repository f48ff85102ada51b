"""Embedded default images: matplotlib's sample photo and an abstract painting drawn by `painting.py`."""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def embedded(name: str) -> Path:
    """Path of an embedded image: "grace_hopper" (matplotlib's sample photo) or "kandinsky" (ours)."""
    if name == "grace_hopper":
        import matplotlib

        return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    if name == "kandinsky":
        return HERE / "kandinsky.png"
    raise ValueError(f"embedded image {name!r} is not one of ['grace_hopper', 'kandinsky']")
