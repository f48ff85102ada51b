"""What every entry point runs: `entry(config_name)` wraps hydra.main around `main`, one job.

The user sees one line for anything that goes wrong, on stderr (experiments/errors.py), and an exit status:
  0    every job ok
  1    a job of a sweep failed (the report is still written), the sweep's report failed, or an unexpected error
       (a bug: `error: <type>: ...`)
  2    bad input: a config value (nst/config.py, nst/preflight.py), an unknown key, a missing config option, an
       output directory that cannot be created, an unreadable image or weights file
  130  interrupted by Ctrl-C (SIGINT), 143 by SIGTERM (what SLURM sends): `interrupted after N iterations`; the
       running job's metrics.json says "interrupted", no result.png is left from it, and a sweep's report of the
       jobs that finished is still written
HYDRA_FULL_ERROR=1 shows Hydra's and Python's full traceback instead of the one line.

The job's directory is claimed first (nst/jobdir.py), then the library is imported, so that Ctrl-C during the
imports is a one-line interrupt recorded in it, and a bad value is refused before the job's heavier imports.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from experiments.config import resolved, typed_overrides
from experiments.errors import JobFailed, describe_hydra_error, is_bad_input, refused_arguments
from experiments.sweeps import REMOTE_LAUNCHERS, sweep_failures
from nst import jobdir
from nst.processes import RUN, exit_with, new_run, stop_children, unwind_once

log = logging.getLogger("nst")
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_SIGINT, EXIT_SIGTERM = 1, 2, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C."""


@dataclass
class Session:
    """What one command has seen: the sweep directory (set by experiments.callbacks.SweepReport), whether its
    report was written, and the job that was interrupted."""

    sweep_dir: Path | None = None
    reported: bool = False
    interrupted_job: str | None = None
    terminated: bool = False  # SIGTERM was received (nst.engine re-raises it as its own Interrupted)
    report_failed: bool = False  # the sweep's report or figures raised (experiments.callbacks): exit 1
    started: float = 0.0


SESSION = Session()


def main(cfg: DictConfig) -> float | None:
    """Run one job in Hydra's output directory; a failed job in a sweep is recorded and the sweep goes on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    started, config, bars, ran = time.time(), {}, None, False
    try:
        where = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        if multirun and not str(hc.launcher.get("_target_", "")).startswith(REMOTE_LAUNCHERS):
            exit_with(os.environ.get(RUN, ""), busy=lambda: bool(jobdir.HELD))  # a job process: not beyond its command
        jobdir.claim(out, where)  # first: an interrupt from here on is recorded (the imports below take seconds)
        typed = typed_overrides(hc.overrides.task)
        config = resolved(cfg, typed)
        done = jobdir.start(config, out, typed, multirun=multirun, where=where)
        if done is not None:
            return done["total_loss"]
        from nst.job import run_job

        ran = True

        from nst.progress import Bars

        bars = Bars(out.name, config["progress"])
        record = run_job(config, out, progress=bars)
        if not multirun:  # a sweep says where its report is (experiments.report.publish)
            print(f"result: {out / 'result.png'} (metrics.json, history.csv beside it)")
        return record["total_loss"]
    except KeyboardInterrupt as e:
        SESSION.interrupted_job = out.name
        if str(out) in jobdir.HELD:  # else another run's directory: not ours to record in
            jobdir.record_interrupt(config, out, e, started)
        raise
    except Exception as e:
        if multirun:
            jobdir.fail(config, out, e)
            return None
        refused = not ran and isinstance(e, jobdir.bad_input()) and not isinstance(e, jobdir.OtherRun) and \
            jobdir.discard_new(out, SESSION.started, f"{hc.job.name}.log")
        if not refused and not isinstance(e, jobdir.OtherRun):  # a directory refused is left as it was (but
            jobdir.record_failure(config, out, e)  # Hydra's .hydra/, written before any of our code runs)
        raise JobFailed(e) from e
    finally:
        if bars is not None:
            bars.close()
        jobdir.release(out)


# ------------------------------------------------------------------------------------------ the entry point

def on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM (SLURM's preemption and time limit, `kill`): unwind like Ctrl-C."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C meanwhile does not cut the report short
    SESSION.terminated = True
    raise Terminated()


def report_after_interrupt() -> Path | None:
    """The report of the jobs that finished, when a sweep was interrupted before on_multirun_end."""
    if SESSION.sweep_dir is None or SESSION.reported or not SESSION.sweep_dir.is_dir():  # none yet: nothing ran
        return None
    try:
        from experiments.report import publish

        print(publish(SESSION.sweep_dir, started=SESSION.started))
        SESSION.reported = True
        return SESSION.sweep_dir / "report.csv"
    except Exception as e:
        log.error("report of %s failed: %s", SESSION.sweep_dir, jobdir.describe(e))
        return None


def entry(config_name: str) -> None:
    """`python -m experiments.<name> [overrides]`: hydra.main(conf/<config_name>.yaml) around `main`, with
    one-line errors and the exit status above; never returns."""
    import hydra

    vars(SESSION).update(vars(Session(started=time.time())))  # a fresh account per command (tests run several
    # in one process; experiments.callbacks holds this same object)
    jobdir.FAILED.clear()
    from nst.preflight import WARNED

    WARNED.clear()  # each no-effect warning once per command
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises its errors here, and we print them in one line
    signal.signal(signal.SIGTERM, on_sigterm)
    # Also for a command started in the background by a non-interactive shell (`nohup cmd &`, a script's `cmd &`),
    # which inherits SIGINT ignored, as would its job processes: `kill -INT` did nothing, and on `kill PID` the
    # local launcher's jobs ignored stop_children's SIGINT and ran on after the report had called them unfinished.
    # The job processes start with the default disposition (exec resets a handler).
    unwind_once(signal.SIGINT)  # once: later ones do not cut the interrupt's record and the report short
    new_run()  # $NST_RUN: this command's id, in its jobs' records and processes (nst/processes.py)
    # a log file on a full disk or a read-only directory: the console's line stays, without Python's
    # "--- Logging error ---" traceback for every record the file handler could not write
    logging.raiseExceptions = False
    multirun = [a for a in sys.argv[1:] if a in ("-m", "--multirun")]  # Hydra's parser wants them first
    sys.argv[1:] = multirun + [a for a in sys.argv[1:] if a not in multirun]
    refused = refused_arguments(config_name)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    app = hydra.main(version_base="1.3", config_path="../conf", config_name=config_name)(main)
    try:
        app()
    except KeyboardInterrupt as e:
        code = EXIT_SIGTERM if SESSION.terminated or isinstance(e, Terminated) else EXIT_SIGINT
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_children()
        report = report_after_interrupt()
        where = f" (job {SESSION.interrupted_job})" if SESSION.interrupted_job else ""
        tail = f"; report of the finished jobs: {report}" if report else ""
        print(f"{jobdir.interrupt_line(e)}{where}{tail}", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)  # for a caller in this process (the tests)
        sys.exit(code)
    except BrokenPipeError:  # `... --help | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_FAILED)
    except JobFailed as failed:
        e = failed.error
        if full_error:
            raise e from None
        if failed.before_sweep and not isinstance(e, jobdir.bad_input()):  # Hydra's: composing a job of the sweep
            print(f"error: {describe_hydra_error(e)}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        line = jobdir.describe(e)
        code = EXIT_BAD_INPUT if isinstance(e, jobdir.bad_input()) or jobdir.write_error(e) else EXIT_FAILED
        if code == EXIT_FAILED:
            line += " (HYDRA_FULL_ERROR=1 shows the traceback)"
        print(f"error: {line}", file=sys.stderr)
        sys.exit(code)
    except Exception as e:  # Hydra's own: composition, overrides, output directories
        if full_error:
            raise
        print(f"error: {describe_hydra_error(e)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT if is_bad_input(e) else EXIT_FAILED)
    failed = sweep_failures(SESSION.sweep_dir, SESSION.started) if SESSION.sweep_dir is not None else []
    if failed:
        many = len(failed) > 1
        see = "the report could not be written (above)" if SESSION.report_failed else \
            f"see {SESSION.sweep_dir / 'report.csv'}"
        print(f"error: {len(failed)} job{'s' * many} of the sweep failed ({'e.g. ' * many}{Path(failed[0]).name}); "
              f"{see}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    if SESSION.report_failed:
        print(f"error: the report of {SESSION.sweep_dir} failed (above); the jobs' files are kept", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    sys.exit(0)
