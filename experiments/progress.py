"""What a running job shows: a tqdm bar per scale, fed by nst.run's progress callback."""
from __future__ import annotations

from typing import Any


class Bars:
    """A tqdm bar per scale, fed by nst.run's progress callback."""

    def __init__(self, name: str, enabled: bool):
        self.name, self.enabled, self.bar, self.size = name, enabled, None, None

    def __call__(self, size: int, steps: int, p: Any) -> None:
        from tqdm import tqdm

        if self.size != size:
            self.close()
            self.bar = tqdm(total=steps, disable=not self.enabled, desc=f"{self.name} {size}px", leave=False)
            self.size = size
        self.bar.update(p.iteration - self.bar.n)
        self.bar.set_postfix(loss=f"{p.terms['total_loss']:.4g}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
