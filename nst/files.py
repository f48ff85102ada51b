"""Atomic file writes: a reader (or an interrupted sweep) never sees a half-written file."""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def _umask() -> int:
    """The process's umask: Linux's /proc/self/status; elsewhere read by setting it (there is no getter), once, at
    import."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it into place. A failure (a full disk, a
    read-only directory) names `path`, not the temporary file, which is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise naming(e, path) from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~UMASK)  # mkstemp's 0600 would hide results from a shared cluster's group
        write(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise naming(e, path) from None
        raise
    return path


def naming(error: OSError, path: str | Path) -> OSError:
    """The same error about `path` (its errno and reason; an error without an errno as it is)."""
    return type(error)(error.errno, error.strerror, str(path)) if error.errno else error


def write_text(path: str | Path, text: str) -> Path:
    """Write text atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def room_for(path: str | Path, data: bytes) -> None:
    """Raise the OSError (naming `path`) of a disk that cannot take `data` beside `path`, before a program that
    rewrites `path` in place (Hydra: a full disk left the file empty) truncates it."""
    path = Path(path)
    try:
        with tempfile.TemporaryFile(dir=path.parent) as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise naming(e, path) from None


def own_copy(path: str | Path) -> None:
    """Make a hard-linked file (a copy made with cp -al) this path's own, its bytes renamed into place, so that a
    rewrite in place leaves the other links' file as it was."""
    path = Path(path)
    if path.stat().st_nlink > 1:
        data = path.read_bytes()
        atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
