"""What a running job (or a decoder's training) shows, fed by nst.run's progress callback: a tqdm bar per scale on a terminal; where stderr
is not one (a log file, a pipe), a plain line FIRST_SECONDS into each scale (the log shows it runs, and how fast),
then at most every LINE_SECONDS, and at the scale's end; without the carriage returns that filled a redirected
log of the default grid with 390 KB of bars."""
from __future__ import annotations

import sys
import time
from typing import Any

FIRST_SECONDS, LINE_SECONDS = 1.0, 10.0  # our choice


class Bars:
    """A tqdm bar per scale, or plain lines (`lines`, default: whether stderr is not a terminal)."""

    def __init__(self, name: str, enabled: bool, lines: bool | None = None):
        self.name, self.enabled, self.bar, self.size = name, enabled, None, None
        self.lines = not sys.stderr.isatty() if lines is None else lines
        self.last = 0.0
        self.done: tuple | None = None

    def __call__(self, size: int, steps: int, p: Any) -> None:
        if not self.enabled:
            return
        if self.lines:
            return self._line(size, steps, p)
        from tqdm import tqdm

        if self.size != size:
            self.close()
            self.bar = tqdm(total=steps, desc=f"{self.name} {size}px", leave=False)
            self.size = size
        self.bar.update(p.iteration - self.bar.n)
        self.bar.set_postfix(loss=f"{p.terms['total_loss']:.4g}")

    def _line(self, size: int, steps: int, p: Any) -> None:
        now = time.monotonic()
        if self.size != size:
            if self.done is not None:  # the scale before stopped early: its last line
                self._print()
            self.size, self.last = size, now - LINE_SECONDS + FIRST_SECONDS
        self.done = (size, steps, p)
        if now - self.last >= LINE_SECONDS or p.iteration >= steps:
            self.last = now
            self._print()

    def _print(self) -> None:
        size, steps, p = self.done
        speed = p.seconds / p.iteration if p.iteration else 0.0
        print(f"{self.name} {size}px: iteration {p.iteration}/{steps}, loss {p.terms['total_loss']:.4g}, "
              f"{speed:.3g} s/iteration", file=sys.stderr, flush=True)
        self.done = None

    def close(self) -> None:
        """The end of a job: its last line where it stopped before its steps (converged, failed, interrupted)."""
        if self.done is not None:
            self._print()
        if self.bar is not None:
            self.bar.close()
            self.bar = None
