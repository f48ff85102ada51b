"""The processes a command started (a launcher's job processes): the command's id, which they carry; stopped with it
when it is interrupted; gone when it is killed."""
from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

RUN = "NST_RUN"  # the environment variable naming the command a job runs for (its records' `run`)


def new_run() -> str:
    """A fresh id for this command, set in $NST_RUN (inherited by its job processes): host, pid, start time."""
    os.environ[RUN] = f"{socket.gethostname()}:{os.getpid()}:{time.time():.3f}"
    return os.environ[RUN]


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


WATCHED: set[int] = set()  # the commands this process watches (a reused joblib worker serves one after another)


def exit_with(run: str, busy: Callable[[], bool], patience: float = 15.0, every: float = 1.0) -> None:
    """In a job process of another process's command (`run`, its $NST_RUN): exit when that command is gone (kill -9
    of the main process: joblib's idle workers lived on indefinitely). A job still running then is interrupted
    (SIGINT, where the process handles it: it records "interrupted"); `busy()` says whether one is; the process leaves once it is recorded, or
    after `patience` seconds. No-op in the command's own process, for another host's, or for a command watched
    already."""
    host, _, rest = run.partition(":")
    pid_text, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) in (os.getpid(), *WATCHED):
        return
    pid, since = int(pid_text), float(started or 0)
    WATCHED.add(pid)

    def gone() -> bool:
        import psutil

        try:
            p = psutil.Process(pid)
            return p.status() == psutil.STATUS_ZOMBIE or p.create_time() > since + 1  # a pid reused since
        except psutil.Error:
            return True

    def watch() -> None:
        while not gone():
            time.sleep(every)
        if busy() and callable(signal.getsignal(signal.SIGINT)):  # joblib's workers ignore it: left "unfinished"
            signal.raise_signal(signal.SIGINT)
            deadline = time.monotonic() + patience
            while busy() and time.monotonic() < deadline:
                time.sleep(0.1)
        os._exit(1)

    threading.Thread(target=watch, name=f"nst-watch-{pid}", daemon=True).start()


def unwind_once(*signums: int) -> None:
    """On the first of these signals, raise KeyboardInterrupt(<its name>) in the main thread and ignore every later
    one, so that the clean-up it starts (an interrupt's record, the report, temporary files) is not cut short: two or
    three Ctrl-C in half a second ended a sweep with neither."""
    def handler(signum: int, frame: Any) -> None:
        for other in signums:
            signal.signal(other, signal.SIG_IGN)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in signums:
        signal.signal(signum, handler)
