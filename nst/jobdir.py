"""A job's directory, owned here: held while a job writes there, its state (complete, another run's, damaged), the
records of a failed or interrupted job, and the job's outputs, each written atomically. No Hydra: every launcher
(the apps, hydra_plugins' batched and SLURM launchers) and the library's own callers use these functions.

A complete job is metrics.json with status ok beside a whole result.png (nst/metrics.py); a failure or an
interrupt never overwrites one. Importing this module is cheap (no torch): a job claims its directory first.
"""
from __future__ import annotations

import csv
import errno
import fcntl
import io
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from nst.config import expand_paths

log = logging.getLogger("nst")

METRICS = "metrics.json"  # nst.metrics.FILE, named here without importing torch
OUTPUTS = ("result.png", "history.csv", "config.yaml", METRICS)
# a job's latest run failed beside its kept complete result (an input made unreadable since): its error line.
# Before, parallel and local sweeps exited 0 for it, their job processes' failures unseen by the main process.
LATEST_FAILED = "latest_run_failed.txt"


class OtherRun(FileExistsError):
    """A single run's directory holds another run's results: refused, and nothing is written there."""


class Busy(OtherRun):
    """A job directory that another process holds (claim) while it writes there: refused, nothing written."""


class InterruptedJob(Exception):
    """What metrics.json records for an interrupted job."""


# ------------------------------------------------------------------------------------------ the lock

HELD: dict[str, int] = {}  # job directory -> the descriptor of its lock, for this process
FAILED: set[str] = set()  # job directories whose job failed in this process (for the command's exit status)


def claim(out: Path, where: str = "hydra.run.dir") -> None:
    """Hold a job directory for this process until release(): an exclusive flock on the directory itself, which
    the kernel drops if the process dies. Two runs into one directory (two single runs started in the same second
    share outputs/<entry>/<time>; one sweep started twice) overwrote each other's files with no word. `where`:
    the setting that chose the directory, for the message."""
    if str(out) in HELD:
        return
    if where == "hydra.sweep.dir" and os.path.islink(out):  # made since the sweep's check (nst.sweep.aliased)
        raise OtherRun(f"{where}: job directory {out} is a link to {os.path.realpath(out)}; a job writes only into a "
                   "directory of its own")
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError:  # no directory: the job's own errors say why
        fd = -1
    try:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(f"{where}: {out} is being written by another run now; wait for it to end, or choose another "
                   "directory") from None
    except OSError:  # a file system without locks: unguarded, as before
        os.close(fd)
        fd = -1
    HELD[str(out)] = fd


def release(out: Path | None = None) -> None:
    """Let go of a job directory claimed by this process (every one when out is None)."""
    for name in [str(out)] if out is not None else list(HELD):
        fd = HELD.pop(name, -1)
        if fd >= 0:
            os.close(fd)


def discard_new(out: Path, since: float, log_name: str) -> bool:
    """Remove what Hydra wrote since `since` for a run refused before its job ran (its .hydra/ and its log,
    `log_name`), and the directory where nothing else is left in it; only a directory this process holds. False
    (nothing removed) for one with anything else in it: a refused run leaves nothing behind, and takes nothing.
    Empty folders above it, up to the working directory, go too."""
    out = Path(out)
    if HELD.get(str(out), -1) < 0:  # another process's, or not claimed: not ours to remove
        return False
    try:
        hydra = out / ".hydra"
        ours = [p for p in out.iterdir() if p.name in (".hydra", log_name)]
        if len(ours) != len(list(out.iterdir())) or not hydra.is_dir() or hydra.is_symlink():
            return False
        written = [*hydra.iterdir(), *(p for p in ours if p.name == log_name)]
        if not all(p.is_file() and not p.is_symlink() and p.stat().st_mtime >= since - 1 for p in written):
            return False  # something older, or not a file: not this run's
        shutil.rmtree(hydra)
        (out / log_name).unlink(missing_ok=True)
        release(out)
        out.rmdir()
    except OSError:
        return False
    cwd = Path.cwd().resolve()
    for parent in out.resolve().parents:  # outputs/transfer/, outputs/: Hydra made them for this run; an empty
        if parent == cwd or cwd not in parent.parents:  # one of an earlier run goes too (it held nothing)
            break
        try:
            parent.rmdir()
        except OSError:  # not empty: another run's
            break
    return True


# ------------------------------------------------------------------------------------------ its state

def settings(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved config as a job reads it: without `hydra`, `~` expanded in paths."""
    c = dict(config)
    c.pop("hydra", None)
    return expand_paths(c)


def inputs_of(config: dict[str, Any]) -> dict[str, str]:
    """The sha256 prefix of each input file's bytes, by role (nst.inputs.fingerprints)."""
    from nst.inputs import fingerprints
    from nst.spec import JobSpec

    return fingerprints(JobSpec.from_config(config))


def completed(out: Path) -> bool:
    """Whether out holds a complete job, from this run or an earlier one."""
    return state(out)[0] == "ok"


def state(out: Path) -> tuple[str, str | None, dict[str, Any] | None]:
    """What a job directory holds, as every reader takes it (the report, the figures, resume, the launchers' exit
    status): (status, why, its record). "ok" only for a record that says so, is this job's own and lies beside a
    whole image (nst.metrics.fault); "running" for one another process holds now; else the record's status
    (failed, interrupted), "hollow", "misplaced", "altered", "damaged", "unreadable", "unfinished" (started, no
    record: a killed process) or "missing"."""
    from nst import metrics

    m = metrics.read(out)
    if m is not None and m["status"] == metrics.OK:
        fault = metrics.fault(out, m)
        if fault is None:
            return "ok", None, m
    if held_elsewhere(out):  # another process of this sweep (or another run of it) is writing there now
        return "running", "(another process holds it now)", m
    if m is not None:
        return (fault if m["status"] == metrics.OK else (str(m["status"]), m.get("error"))) + (m,)
    if (out / METRICS).is_file():  # there, but cut short or edited
        return "unreadable", f"{METRICS} is not a JSON record", None
    if (out / ".hydra").is_dir():  # started: e.g. a joblib worker killed
        return "unfinished", f"(no {METRICS}: its process was killed, or is still running)", None
    return "missing", None, None


FAULTS = ("hollow", "misplaced", "altered", "damaged")  # nst.metrics.fault's: an ok record that is not


def held_elsewhere(out: Path) -> bool:
    """Whether another process holds out (claim) now."""
    if any(os.path.abspath(out) == os.path.abspath(name) for name in HELD):
        return False
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    except OSError:  # a file system without locks
        return False
    finally:
        os.close(fd)  # and with it the shared lock


def finished(config: dict[str, Any], out: Path) -> dict[str, Any] | None:
    """The metrics of a job already completed in out with this config and these input bytes, else None."""
    from nst import metrics

    return metrics.finished(out, config, inputs_of(config))


def other_run(config: dict[str, Any], out: Path) -> bool:
    """Whether out holds the results of a run with another config or other input bytes (a failed or
    interrupted run's record holds none: the run that fixes it may reuse the directory)."""
    from nst import metrics

    m = metrics.read(out)
    if m is None:  # a sweep's directory (Hydra's multirun.yaml) holds its jobs' results
        return any((Path(out) / name).exists() for name in (*OUTPUTS, "multirun.yaml"))
    if m.get("status") != metrics.OK and not (Path(out) / "result.png").exists():
        return False
    return not metrics.same_run(m, config, inputs_of(config)) and m.get("config") != config


def replaced_keys(config: dict[str, Any], out: Path) -> list[str] | None:
    """What differs between out's complete result and this job: the config keys of its identity, then
    "<role> file" for each input file of other bytes; None when out holds no complete result."""
    from nst import metrics

    m = metrics.read(out)  # a record with a status, or None
    if m is None or m["status"] != metrics.OK:
        return None
    now, before = metrics.comparable(config), metrics.comparable(m.get("config") or {})
    inputs, recorded = inputs_of(config), m.get("inputs") or {}
    roles = sorted(set(inputs) | set(recorded))
    return (sorted(k for k in set(now) | set(before) if now.get(k) != before.get(k))
            + [f"{role} file" for role in roles if inputs.get(role) != recorded.get(role)])


def clear_previous(out: Path) -> None:
    """Remove an earlier run's files from a job directory, so that a redone job never sits beside stale ones."""
    for name in OUTPUTS:
        (Path(out) / name).unlink(missing_ok=True)


def start(config: dict[str, Any], out: Path, typed: dict[str, str] | None = None, *, multirun: bool,
          clear: bool = True, where: str = "hydra.run.dir") -> dict[str, Any] | None:
    """Before a job runs: hold its directory, check its config (nst.preflight: before any image is read), and
    return its metrics when it is complete already (resume); else make the directory ready: a redone job never
    sits beside an earlier run's files, and a single run never overwrites another run's. clear=False leaves an
    earlier run's files for the caller to remove when the job's own run ends (the batched launcher)."""
    claim(out, where)
    from nst.preflight import preflight

    (out / LATEST_FAILED).unlink(missing_ok=True)  # this run's own, if it fails
    preflight(config, typed)
    done = finished(config, out)
    if done is not None:  # resume: a re-run redoes only missing, failed or changed jobs
        log.info("job %s is complete, skipped", out.name)
        return done
    status, why, _ = state(out)
    damaged = status in FAULTS  # a record that lies, or an image that is not whole
    if damaged:
        log.warning("job %s: %s; the job is redone", out.name, why)
    changed = replaced_keys(config, out) if multirun and status == "ok" else None  # redone: not silently
    if changed is not None:
        log.warning("job %s: replacing the complete result of an earlier run (%s)", out.name,
                    f"other {', '.join(changed)}")
    if not multirun and other_run(config, out):
        raise OtherRun(f"hydra.run.dir {str(out)!r} holds another run's results (another config, other input "
                       "files, or a sweep); choose another directory or remove them")
    if clear or damaged:
        clear_previous(out)
    return None


# ------------------------------------------------------------------------------------------ outputs and records

def history_csv(history: list[dict[str, Any]]) -> str:
    """Loss terms per iteration (rows of dicts with the same keys) as CSV text."""
    buf = io.StringIO()
    if history:
        writer = csv.DictWriter(buf, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows({k: round(v, 6) if k == "seconds" else v for k, v in row.items()} for row in history)
    return buf.getvalue()


def write_outputs(out: Path, config: dict[str, Any], result: Any, record: dict[str, Any]) -> None:
    """A finished job's files (`result` an nst.run.JobResult), metrics.json last."""
    import yaml

    from nst import metrics
    from nst.files import write_text
    from nst.images import save_png

    save_png(result.rgb, out / "result.png")
    write_text(out / "history.csv", history_csv(result.history))
    write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    metrics.write(out, record)


WRITE_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG)  # a disk full, read-only, over its quota


def write_error(error: BaseException) -> bool:
    """Whether an error is a write the file system refused (WRITE_ERRORS): bad input (exit 2), not a bug."""
    return isinstance(error, OSError) and error.errno in WRITE_ERRORS


def describe(error: BaseException) -> str:
    """A job's error in one line: our own messages (bad input) as they are, anything else with its type."""
    if write_error(error) and error.filename:
        return f"cannot write {error.filename}: {error.strerror}"
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = (lines[0] + (" …" if len(lines) > 1 else "")) if lines else ""
    if isinstance(error, bad_input()) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def bad_input() -> tuple[type[BaseException], ...]:
    """Errors of a job that mean bad input (exit 2) rather than a bug (exit 1)."""
    engine = sys.modules.get("nst.engine")  # not imported (torch): none of its errors can have been raised
    return (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
            *([engine.NonFiniteLoss, engine.NoProgress] if engine else []))


def write_failure(config: dict[str, Any], out: Path, error: BaseException, status: str = "failed") -> dict[str, Any]:
    """Record a failed (or interrupted) job in metrics.json so reports show it, history.csv holding the iterations
    it completed."""
    from nst import metrics
    from nst.files import write_text

    record = metrics.failure(config, error, status)
    rows = metrics.noted(error).get("history")
    if rows:
        write_text(Path(out) / "history.csv", history_csv(rows))
    else:  # an earlier failed run's, which figures would draw as this one's (a complete result never gets here)
        (Path(out) / "history.csv").unlink(missing_ok=True)
    metrics.write(out, record)
    return record


def record_failure(config: dict[str, Any], out: Path, error: BaseException, status: str = "failed") -> None:
    """metrics.json with the status and the error, unless out holds a complete job (kept as it was: its latest
    run's error goes to latest_run_failed.txt beside it, for the command's exit status)."""
    if completed(out):
        log.warning("job %s: %s; the complete result already in %s is kept", out.name, status, out)
        if status == "failed":  # for the exit status of the command, whichever process ran the job
            try:
                from nst.files import write_text

                write_text(out / LATEST_FAILED, f"{describe(error)}\n")
            except OSError:
                pass
        return
    try:
        write_failure(config, out, error, status=status)
    except Exception as e:  # the directory itself may be the problem (a full disk): the job's line says why
        log.debug("job %s: could not record the failure in %s: %s", out.name, out, e)


def fail(config: dict[str, Any], out: Path, error: BaseException) -> None:
    """A job of a sweep failed: record it, count it for the exit status, say so in one line. A job another process
    holds (Busy: the same sweep run twice at once) is left to that process: neither failed nor recorded here."""
    if isinstance(error, Busy):
        log.warning("job %s is being run by another process now; left to it", out.name)
        return
    if not isinstance(error, OtherRun):  # nothing is written into a directory that is not this job's own
        record_failure(config, out, error)
    FAILED.add(str(out))
    log.error("job %s failed: %s", out.name, describe(error))


def failed_jobs(sweep_dir: Path, jobs: list[str] | None, started: float) -> list[str]:
    """The job directories of a sweep's run (`jobs`: their names; None: every directory, this run's by its time
    `started`) that failed: those this process saw fail (FAILED), and any that is not ok by `state` (jobs run by
    another launcher's processes; a record that lies) but those another process is running now, and any whose latest
    run failed beside a kept complete result; a job of the run with no directory at all was lost (its launcher never
    ran it)."""
    failed = {str(Path(f).resolve()) for f in FAILED}
    if not sweep_dir.is_dir():
        return sorted(failed)
    failed |= {str(sweep_dir.resolve() / name) for name in jobs or [] if not (sweep_dir / name).is_dir()}
    for d in sweep_dir.resolve().iterdir():
        if (jobs is not None and d.name not in jobs) or not d.is_dir():
            continue
        status = state(d)[0]
        if status not in ("ok", "running", "missing"):
            failed.add(str(d))
        latest = d / LATEST_FAILED  # each run of a job removes it first: this run's, or one left over
        if latest.is_file() and (jobs is not None or latest.stat().st_mtime >= started - 1):
            failed.add(str(d))
    return sorted(failed)


def interrupt_line(error: BaseException) -> str:
    """`interrupted after N iterations` (N from nst.engine's Interrupted), or `interrupted` when unknown."""
    n = getattr(error, "iterations", None)
    return f"interrupted after {n} iteration{'' if n == 1 else 's'}" if n is not None else "interrupted"


def record_interrupt(config: dict[str, Any], out: Path, error: BaseException, started: float,
                     before_start: bool = False) -> None:
    """An interrupted job: metrics.json says "interrupted" (before_start: before it started, a batched launcher's
    later job); a result.png this run wrote without its metrics.json (interrupted between the two) is removed.
    A complete job (finished just now, or earlier) is left as it is."""
    from nst import metrics

    if completed(out):
        return
    result = out / "result.png"
    if result.is_file() and result.stat().st_mtime >= started - 1:  # 1 s: file systems with coarse times
        result.unlink(missing_ok=True)
    stop = InterruptedJob("interrupted before it started" if before_start else interrupt_line(error))
    # what it had done; none for a job that had not started (the error is the running job's: a batched launcher's)
    record_failure(config, out, metrics.note(stop, **({} if before_start else metrics.noted(error))),
                   status="interrupted")
