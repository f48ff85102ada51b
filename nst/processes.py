"""The processes a command started (a launcher's job processes), stopped with it when it is interrupted."""
from __future__ import annotations

import signal
import time
from typing import Any


def descendants() -> list[Any]:
    """This process's live descendants (psutil), without zombies and multiprocessing's resource trackers (they
    ignore SIGINT and outlive the jobs)."""
    import psutil

    def alive(p: Any) -> bool:
        try:
            return p.status() != psutil.STATUS_ZOMBIE and not any("resource_tracker" in a for a in p.cmdline())
        except psutil.Error:  # gone meanwhile
            return False

    return [p for p in psutil.Process().children(recursive=True) if alive(p)]


def stop_children(grace: float = 2.0, patience: float = 15.0) -> None:
    """Stop this process's job processes after an interrupt of this process alone (SIGTERM from a scheduler or
    `kill`, SIGINT from `kill -INT`): they ran on (hydra/launcher=local's), finishing after the report had called
    their jobs missing, re-parented to init. Give them `grace` seconds to stop on their own (Ctrl-C reaches the
    whole process group), then send SIGINT to each job process (the leaves: submitit's task under its controller),
    and wait up to `patience` seconds for them to record their interrupts (well within SLURM's 30 s between SIGTERM
    and SIGKILL).
    Joblib's workers are gone by then: joblib kills them on the interrupt, and their jobs are "unfinished"."""
    import psutil

    live = wait_for_descendants(grace)
    parents = set()
    for p in live:
        try:
            parents.add(p.ppid())
        except psutil.Error:
            pass
    for p in live:
        if p.pid not in parents:
            try:
                p.send_signal(signal.SIGINT)
            except psutil.Error:
                pass
    if live:
        wait_for_descendants(patience)


def wait_for_descendants(seconds: float) -> list[Any]:
    """Wait until this process has no live descendants, or `seconds` have passed; those still alive."""
    deadline = time.monotonic() + seconds
    live = descendants()
    while live and time.monotonic() < deadline:
        time.sleep(0.1)
        live = descendants()
    return live
