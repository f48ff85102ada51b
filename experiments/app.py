"""What every entry point runs: `entry(config_name)` wraps hydra.main around `main`, one job.

The user sees one line for anything that goes wrong, on stderr, and an exit status:
  0    every job ok
  1    a job of a sweep failed (the report is still written), the sweep's report failed, or an unexpected error
       (a bug: `error: <type>: ...`)
  2    bad input: a config value (experiments/validate.py), an unknown key, a missing config option, an output
       directory that cannot be created, an unreadable image or weights file
  130  interrupted by Ctrl-C (SIGINT), 143 by SIGTERM (what SLURM sends): `interrupted after N iterations`; the
       running job's metrics.json says "interrupted", no result.png is left from it, and a sweep's report of the
       jobs that finished is still written
HYDRA_FULL_ERROR=1 shows Hydra's and Python's full traceback instead of the one line.

The library is imported inside `main` (validation first, then the job), so that a bad value is refused before
the job's heavier imports, and Ctrl-C during them is a one-line interrupt too.
"""
from __future__ import annotations

import difflib
import fcntl
import logging
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("nst")
EXIT_FAILED, EXIT_BAD_INPUT, EXIT_SIGINT, EXIT_SIGTERM = 1, 2, 130, 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that it unwinds like Ctrl-C."""


class JobFailed(BaseException):
    """A single job's error on its way to `entry`: a BaseException, so that Hydra passes it through untouched
    (for an Exception it would print its own "Error executing job" line first)."""

    def __init__(self, error: BaseException, before_sweep: bool = False):
        super().__init__(str(error))
        self.error = error
        self.before_sweep = before_sweep  # found by check_sweep: Hydra's own errors are then bad input (exit 2)


@dataclass
class Session:
    """What one command has seen: the sweep directory (set by experiments.callbacks.SweepReport), whether its
    report was written, the jobs that failed in this process and the job that was interrupted."""

    sweep_dir: Path | None = None
    reported: bool = False
    failed: set[str] = field(default_factory=set)
    interrupted_job: str | None = None
    terminated: bool = False  # SIGTERM was received (nst.engine re-raises it as its own Interrupted)
    report_failed: bool = False  # the sweep's report or figures raised (experiments.callbacks): exit 1
    held: dict[str, int] = field(default_factory=dict)  # job directory -> the descriptor of its lock (claim)
    started: float = field(default_factory=time.time)


SESSION = Session()


def bad_input_types() -> tuple[type[BaseException], ...]:
    """Errors of a job that mean bad input (exit 2) rather than a bug (exit 1)."""
    from nst.engine import NonFiniteLoss

    return (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError,
            NonFiniteLoss)


def typed_overrides(overrides: Any) -> dict[str, str]:
    """{key: value text} of Hydra's task overrides, as the user typed them (`beta=1e4` -> {"beta": "1e4"})."""
    from omegaconf import ListConfig

    if isinstance(overrides, ListConfig):  # read, not resolved: `content=${oc.env:X}` is text here
        overrides = OmegaConf.to_container(overrides, resolve=False)
    typed = {}
    for item in overrides or []:
        key, sep, value = str(item).lstrip("+~").partition("=")
        if sep:
            typed[key] = value
    return typed


def resolved(cfg: DictConfig, typed: dict[str, str]) -> dict[str, Any]:
    """The job's config as plain Python, interpolations resolved, without the `hydra` key; an interpolation that
    cannot be resolved is a ConfigError naming its key."""
    from omegaconf.errors import OmegaConfBaseException

    from experiments.job import expand_paths
    from experiments.validate import ConfigError

    try:
        c = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        key = str(getattr(e, "full_key", "") or "")
        value = typed.get(key)
        if value is None and key:
            value = OmegaConf.to_container(cfg, resolve=False)
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        why = re.sub(r"^\w+ raised while resolving interpolation: ", "", why).strip("'\"")
        raise ConfigError(f"{key} {value} cannot be resolved: {why}".strip()) from None
    c.pop("hydra", None)
    return expand_paths(c)


def main(cfg: DictConfig) -> float | None:
    """Run one job in Hydra's output directory; a failed job in a sweep is recorded and the sweep goes on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    started = time.time()
    try:
        done = start_job(cfg, out, multirun)
        if done is not None:
            return done["total_loss"]
        from experiments.job import run_job

        return run_job(cfg, out)["total_loss"]
    except KeyboardInterrupt as e:
        SESSION.interrupted_job = out.name
        if str(out) in SESSION.held:  # else another run's directory: not ours to record in
            record_interrupt(cfg, out, e, started)
        raise
    except Exception as e:
        if multirun:
            fail_in_sweep(cfg, out, e)
            return None
        if not isinstance(e, OtherRun):  # a directory refused is left as it was (but Hydra's .hydra/, written
            record_failure(cfg, out, e)  # before any of our code runs)
        raise JobFailed(e) from e
    finally:
        release(out)


def claim(out: Path, multirun: bool) -> None:
    """Hold a job directory for this process until release(): an exclusive flock on the directory itself, which
    the kernel drops if the process dies. Two runs into one directory (two single runs started in the same second
    share outputs/<entry>/<time>; one sweep started twice) overwrote each other's files with no word."""
    if str(out) in SESSION.held:
        return
    try:
        fd = os.open(out, os.O_RDONLY)
    except OSError:  # no directory: the job's own errors say why
        fd = -1
    try:
        if fd >= 0:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(f"{'hydra.sweep.dir' if multirun else 'hydra.run.dir'}: {out} is being written by another run "
                   "now; wait for it to end, or choose another directory") from None
    except OSError:  # a file system without locks: unguarded, as before
        os.close(fd)
        fd = -1
    SESSION.held[str(out)] = fd


def release(out: Path | None = None) -> None:
    """Let go of a job directory claimed by this process (every one when out is None)."""
    for key in [str(out)] if out is not None else list(SESSION.held):
        fd = SESSION.held.pop(key, -1)
        if fd >= 0:
            os.close(fd)


def start_job(cfg: DictConfig, out: Path, multirun: bool, clear: bool = True) -> dict[str, Any] | None:
    """Before a job runs: validate its config (before any image is read), and return its metrics when it is
    complete already (resume); else make its directory ready (a single run never overwrites another run's).
    clear=False leaves an earlier run's files for the caller to remove when the job's own run ends."""
    claim(out, multirun)  # first: an interrupt from here on is recorded (the imports below take seconds)
    from hydra.core.hydra_config import HydraConfig

    from experiments.job import clear_previous, finished, other_run, replaced_keys
    from experiments.validate import validate
    from nst import metrics

    (out / LATEST_FAILED).unlink(missing_ok=True)  # this run's own, if it fails
    typed = typed_overrides(HydraConfig.get().overrides.task)
    validate(resolved(cfg, typed), typed)
    done = finished(cfg, out)
    if done is not None:  # resume: a re-run redoes only missing, failed or changed jobs
        log.info("job %s is complete, skipped", out.name)
        return done
    damaged = metrics.damage(out) if (metrics.read(out) or {}).get("status") == metrics.OK else None
    if damaged:
        log.warning("job %s: %s; the job is redone", out.name, damaged)
    changed = replaced_keys(cfg, out) if multirun and not damaged else None  # redone: not silently
    if changed is not None:
        log.warning("job %s: replacing the complete result of an earlier run (%s)", out.name,
                    f"other {', '.join(changed)}")
    if not multirun and other_run(cfg, out):
        raise OtherRun(f"hydra.run.dir {str(out)!r} holds another run's results (another config, other input "
                       "files, or a sweep); choose another directory or remove them")
    if clear or damaged:
        clear_previous(out)  # a redone job never leaves an earlier run's files beside its own
    return None


NAME_MAX = 255  # bytes in a file name: Linux's ext4, xfs, btrfs, NFS; macOS's APFS

# launchers whose jobs run on other machines: their devices, memory and files are checked there, not here
REMOTE_LAUNCHERS = ("hydra_plugins.nst_slurm_launcher.",)


def check_sweep(config: DictConfig) -> None:
    """Before a sweep starts: raise the first job's error when none of its jobs is valid (a bad value they all
    share, e.g. beside the swept keys), so that the command is refused in one line, exit 2, before any directory
    is made. Jobs are composed and validated in order until one passes: one, for a sweep without that mistake.
    A sweep that cannot be expanded or composed here is left to the launcher, which says why as before."""
    try:
        shared = shared_directory(config)
    except Exception as e:
        log.debug("the sweep's directories were not checked before it started: %s: %s", type(e).__name__, e)
        shared = None
    if shared is not None:
        raise JobFailed(shared)
    try:
        from experiments.validate import ConfigError, launcher_settings

        launcher_settings(OmegaConf.to_container(config.hydra.launcher, resolve=True),
                          typed_overrides(config.hydra.overrides.hydra))
    except ConfigError as e:
        raise JobFailed(e) from None
    except Exception as e:  # e.g. n_jobs from a resolver that fails: the launcher says why
        log.debug("the launcher's settings were not checked: %s: %s", type(e).__name__, e)
    if str(OmegaConf.select(config, "hydra.launcher._target_") or "").startswith(REMOTE_LAUNCHERS):
        return
    level = log.level
    log.setLevel(logging.ERROR)  # the jobs' own warnings (an upscaled image) come when each runs
    try:
        first = first_error(config)
    except Exception as e:
        log.debug("the sweep was not checked before it started: %s: %s", type(e).__name__, e)
        return
    finally:
        log.setLevel(level)
    if first is not None:
        raise JobFailed(first, before_sweep=True)  # a BaseException: Hydra turns a callback's Exception into a warning


def shared_directory(config: DictConfig) -> BaseException | None:
    """The error for a sweep two of whose jobs would write one directory: they differ only in keys that do not
    name it (threads, max_pixels, ...: nst.metrics.NOT_RESULT_KEYS), or are listed twice; or one of whose job
    directories is a file; else None."""
    from experiments.report import expand
    from experiments.validate import ConfigError
    from nst import sweep
    from nst.metrics import NOT_RESULT_KEYS

    seen: dict[str, dict[str, str]] = {}
    jobs = expand(config)
    if not jobs:  # `beta=glob(*)` (a glob over a key, not a config group): Hydra launched nothing, exit 1
        swept = [str(o) for o in config.hydra.overrides.task if "(" in str(o)]
        return ConfigError(f"{swept[0] if swept else 'the sweep'}: expands to no jobs"
                           + ("; glob() selects options of a config group (painting=glob(*))"
                              if swept and "glob(" in swept[0] else ""))
    for job in jobs:
        name, parsed = sweep.dirname(job), sweep.parse(job)
        path = Path(config.hydra.sweep.dir) / name
        if len(name.encode()) > NAME_MAX:  # else Hydra wrote multirun.yaml, then the job failed: "File name too long"
            key, value = max(parsed.items(), key=lambda kv: len(sweep.format_value(kv[1])))
            return ConfigError(f"{key}={value}: job directory {name[:48]}... would be named in {len(name.encode())} "
                               f"bytes, over the {NAME_MAX} a file name may have; shorten the value (a long file "
                               "name: link it under a shorter one)")
        if path.exists() and not path.is_dir():  # else the sweep stopped there, without its report
            return ConfigError(f"hydra.sweep.dir={config.hydra.sweep.dir}: {path} is a file, where job {name} "
                               "writes its directory; move the file away or choose another directory")
        if name in seen:
            keys = sorted(k for k in parsed.keys() | seen[name].keys() if parsed.get(k) != seen[name].get(k))
            if not keys:
                return ConfigError(f"the sweep lists job {name} twice; give each value once")
            values = ", ".join(f"{k}={seen[name].get(k)} and {k}={parsed.get(k)}" for k in keys)
            unnamed = [k for k in keys if k in NOT_RESULT_KEYS]
            if not unnamed:  # beta=1000,1e3: two spellings of one value
                return ConfigError(f"{values} are one value (directory {name}); give it once")
            return ConfigError(f"{values}: these jobs would share the directory {name}, as {', '.join(unnamed)} "
                               "does not name a job's directory (it is not part of a job's identity); run one sweep "
                               "per value, each in its own hydra.sweep.dir")
        seen[name] = parsed
    return None


def first_error(config: DictConfig) -> BaseException | None:
    """The error of a job that Hydra cannot compose (its sweeper would stop there, after overwriting the sweep
    directory's multirun.yaml: a typo in a swept key, a missing option of a swept group), else the first job's
    bad-input error when every job of the sweep has one, else None. A job is composed only for a value no earlier
    job had: one job per value of each swept key, not the product."""
    from hydra import compose
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from experiments.report import invocation
    from experiments.validate import validate

    jobs, _ = invocation(config.hydra.sweep.dir, config)
    task = list(config.hydra.overrides.task)  # a value set once for all jobs, quoted as typed (1e4, not 10000.0)
    parser = OverridesParser.create(config_loader=GlobalHydra.instance().config_loader())  # for glob() sweeps
    once = {o.key_or_group for o in parser.parse_overrides(task) if not o.is_sweep_override()}
    as_typed = {k: v for k, v in typed_overrides(task).items() if k in once}
    first: BaseException | None = None
    passed, seen = False, set()
    for overrides in (jobs or {}).values():
        if passed and seen.issuperset(overrides):
            continue
        seen.update(overrides)
        try:
            cfg = compose(config.hydra.job.config_name, overrides=overrides)
        except (HydraException, OmegaConfBaseException) as e:
            return e
        if passed:
            continue
        typed = typed_overrides(overrides) | as_typed
        try:
            validate(resolved(cfg, typed), typed)
            passed = True
        except bad_input_types() as e:
            first = first or e
    return None if passed else first


def fail_in_sweep(cfg: DictConfig, out: Path, error: BaseException) -> None:
    """A sweep's job failed: record it, remember it for the exit status, say so in one line; the sweep goes on."""
    if not isinstance(error, Busy):  # another run's directory: not ours to record in
        record_failure(cfg, out, error)
    SESSION.failed.add(str(out))
    log.error("job %s failed: %s", out.name, describe_job_error(error))


def completed(out: Path) -> bool:
    """Whether out holds a complete job (metrics.json with status ok beside result.png), from this run or an
    earlier one: a failure or an interrupt never overwrites it."""
    from nst import metrics

    m = metrics.read(out)
    return m is not None and m["status"] == metrics.OK and metrics.damage(out) is None


# a job's latest run failed beside its kept complete result (an input made unreadable since): its error line.
# Before, parallel and local sweeps exited 0 for it, their job processes' failures unseen by the main process.
LATEST_FAILED = "latest_run_failed.txt"


def record_failure(cfg: DictConfig, out: Path, error: BaseException, status: str = "failed") -> None:
    """metrics.json with the status and the error, unless out holds a complete job (kept as it was)."""
    from experiments.job import write_failure

    if completed(out):
        log.warning("job %s: %s; the complete result already in %s is kept", out.name, status, out)
        if status == "failed":  # for the exit status of the command, whichever process ran the job (sweep_failures)
            try:
                from nst.files import write_text

                write_text(out / LATEST_FAILED, f"{describe_job_error(error)}\n")
            except OSError:
                pass
        return
    try:
        write_failure(cfg, out, error, status=status)
    except Exception as e:  # the directory itself may be the problem: the error is still reported
        log.error("job %s: could not record the failure in %s: %s", out.name, out, e)


def record_interrupt(cfg: DictConfig, out: Path, error: KeyboardInterrupt, started: float,
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
    record_failure(cfg, out, metrics.note(stop, **({} if before_start else metrics.noted(error))), status="interrupted")


class OtherRun(FileExistsError):
    """A single run's directory holds another run's results: refused, and nothing is written there."""


class Busy(OtherRun):
    """A job directory that another process holds (claim) while it writes there: refused, nothing written."""


class InterruptedJob(Exception):
    """What metrics.json records for an interrupted job."""


def interrupt_line(error: BaseException) -> str:
    """`interrupted after N iterations` (N from nst.engine's Interrupted), or `interrupted` when unknown."""
    n = getattr(error, "iterations", None)
    return f"interrupted after {n} iteration{'' if n == 1 else 's'}" if n is not None else "interrupted"


def first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] + (" …" if len(lines) > 1 else "")) if lines else ""


def describe_job_error(error: BaseException) -> str:
    """A job's error in one line: our own messages as they are, anything else with its type."""
    text = first_line(error)
    if isinstance(error, bad_input_types()) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


# ------------------------------------------------------------------------------------------ Hydra's own errors

def argv_override(key: str) -> str | None:
    """The command-line override of a key, as typed (`sizee=128`)."""
    for arg in sys.argv[1:]:
        if arg.lstrip("+~").partition("=")[0] == key:
            return arg
    return None


def known_keys() -> list[str]:
    """Config keys for "did you mean": the validator's list and the optimizer group's keys."""
    try:
        from experiments.validate import CHECKED, OPTIMIZER_KEYS
    except Exception:
        return []
    return [k for k in CHECKED if k != "optimizer"] + [f"optimizer.{k}" for k in OPTIMIZER_KEYS]


def describe_hydra_error(error: BaseException) -> str:
    """Hydra's and OmegaConf's errors (composition, overrides, interpolation, output directories) in one line."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    from experiments.validate import GROUPS, ConfigError

    text = str(error)
    if isinstance(error, ConfigError):  # ours (e.g. a launcher setting): already `<key> <value> <why>`
        return first_line(error)
    if isinstance(error, MissingConfigException):
        missing = error.missing_cfg_file or ""
        group, _, option = missing.rpartition("/")
        typed = argv_override(group) if group else None
        if group and error.options:
            hint = [o for o in error.options if o.lower() == option.lower()] \
                or difflib.get_close_matches(option, list(error.options), n=1)
            return (f"{typed or f'{group}={option}'}: no such option in conf/{group}/; one of "
                    f"{', '.join(sorted(error.options))}" + (f"; did you mean {hint[0]}?" if hint else ""))
        return first_line(error)
    if "Config group override must be a string or a list. Got NoneType" in text:  # painting=null
        typed = next((a for a in sys.argv[1:] if re.fullmatch(r"[+~]?\w+=(null|None|~)?", a)
                      and a.lstrip("+~").partition("=")[0] in GROUPS), None)
        group = typed.lstrip("+~").partition("=")[0] if typed else "a config group"
        return f"{typed or 'a config group'}: a config group takes one of its options, not null; leave {group} out " \
               "for none (its default)"
    multiple = re.match(r"Multiple values for (\w+)\. To override", text)
    if multiple:  # +experiment=paper_fig2: the group is in the defaults list already (as null)
        typed = argv_override(multiple.group(1)) or multiple.group(1)
        return f"{typed}: {multiple.group(1)} is in the config already; give {typed.lstrip('+')} (without the +)"
    ambiguous = re.match(r"Ambiguous value for argument '(([^=']+)=([^']*))'", text)
    if isinstance(error, ConfigCompositionException) and ambiguous:  # Hydra's three-line advice, in one
        override, key, values = ambiguous.groups()
        return (f"{override}: a comma list is a sweep, which needs -m (python -m experiments."
                f"{Path(sys.argv[0]).stem} -m ... {override}); a list value is {key}=[{values}]")
    if isinstance(error, ConfigCompositionException):
        cause = str(error.__cause__ or "")
        override = re.search(r"Could not override '([^']+)'", text)
        delete = re.search(r"Could not delete from config\. '([^']+)' does not exist", text)
        launcher = re.search(r"not in '(\w+LauncherConf)'", cause)
        if override and override.group(1).startswith("hydra.launcher.") and launcher:
            typed = argv_override(override.group(1)) or override.group(1)
            return (f"{typed}: not a setting of this launcher ({launcher.group(1)}); choose the launcher that has "
                    "it first, e.g. hydra/launcher=batched (conf/hydra/launcher/: batched, parallel, local, slurm)")
        if override and "not in struct" in cause or delete:
            key = (override or delete).group(1)
            typed = argv_override(key) or key
            hint = difflib.get_close_matches(key, known_keys(), n=1)
            # no "+key to add it" hint: a job accepts only the config's own keys (experiments/validate.py)
            return f"{typed}: unknown key {key}" + (f"; did you mean {hint[0]}?" if hint else "")
        cause = first_line(error.__cause__) if error.__cause__ else ""
        return first_line(error) + (f": {cause}" if cause and cause not in text else "")
    unknown = re.search(r"Error in call to target '([\w.]+)':\s*TypeError\(.*unexpected keyword argument '(\w+)'", text,
                        re.S)
    if unknown and "hydra_plugins" in unknown.group(1):  # `+hydra.launcher.<typo>=...`: the launcher's __init__
        key = f"hydra.launcher.{unknown.group(2)}"
        typed = argv_override(key)
        return f"{typed or key}: not a setting of this launcher ({unknown.group(1).rpartition('.')[2]})"
    if isinstance(error, OverrideParseException):
        override = getattr(error, "override", None) or ""
        key, _, value = override.partition("=")
        if re.search(r"(^|[\[,(])\s*~", value):  # bash left it unexpanded (quoted, or in a list): Hydra's grammar
            # Hydra's grammar has no bare ~: quote each ~ path where it was typed (a list [a,~/b], a sweep a,~/b)
            quoted = re.sub(r"(^|[\[,(])\s*(~[^,\])]*)", r"\1'\2'", value)
            example = f"{key}={quoted}"
            return f"{override}: a path starting with ~ needs Hydra's quotes: \"{example}\" (or, for one path, no " \
                   "quotes at all, for bash to expand it)"
        return f"cannot parse the override {override!r}: {first_line(error)}" if override else first_line(error)
    if isinstance(error, OmegaConfBaseException):
        key = getattr(error, "full_key", None)
        msg = re.sub(r"^\w+ raised while resolving interpolation: ", "", str(error).splitlines()[0] if text else "")
        return f"{key}: {msg}" if key and key not in msg else msg
    if isinstance(error, OSError) and error.filename is not None:
        for key in ("hydra.run.dir", "hydra.sweep.dir"):
            typed = argv_override(key)
            if typed and str(error.filename).startswith(typed.partition("=")[2].rstrip("/")):
                break
        else:
            typed = None
        why = error.strerror or type(error).__name__
        if typed:
            return f"{typed}: cannot create the output directory {str(error.filename)!r}: {why}"
        return (f"cannot create {str(error.filename)!r}: {why} (the output directory is set by hydra.run.dir, "
                "or hydra.sweep.dir with -m)")
    return f"{type(error).__name__}: {first_line(error)}"


def is_bad_input(error: BaseException) -> bool:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(error, (HydraException, OmegaConfBaseException, OSError)) or \
        isinstance(error, bad_input_types())


# ------------------------------------------------------------------------------------------ the entry point

def on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM (SLURM's preemption and time limit, `kill`): unwind like Ctrl-C."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    SESSION.terminated = True
    raise Terminated()


def descendants() -> dict[int, int]:
    """{pid: parent pid} of this process's live descendants (Linux /proc; none elsewhere), without
    multiprocessing's resource trackers (they ignore SIGINT and outlive the jobs)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            state, ppid = text[text.rindex(")") + 2:].split()[:2]
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if state != "Z" and b"resource_tracker" not in cmdline:
            parents[int(stat.parent.name)] = int(ppid)
    found: dict[int, int] = {}
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier}
        found |= {pid: parents[pid] for pid in frontier}
    return found


def stop_job_processes(grace: float = 2.0, patience: float = 15.0) -> None:
    """An interrupt of the main process alone (SIGTERM from a scheduler or `kill`, SIGINT from `kill -INT`) left
    hydra/launcher=local's job processes running: they finished after the report had called their jobs missing,
    re-parented to init. Give them `grace` seconds to stop on their own (Ctrl-C reaches the whole process group),
    then send SIGINT to each job process (the leaves: submitit's task under its controller), and wait up to
    `patience` seconds for them to record their interrupts (well within SLURM's 30 s between SIGTERM and SIGKILL).
    Joblib's workers are gone by then: joblib kills them on the interrupt, and their jobs are "unfinished"."""
    live = wait_for_descendants(grace)
    for pid in set(live) - set(live.values()):
        try:
            os.kill(pid, signal.SIGINT)
        except OSError:
            pass
    if live:
        wait_for_descendants(patience)


def wait_for_descendants(seconds: float) -> dict[int, int]:
    """Wait until this process has no live descendants, or `seconds` have passed; those still alive."""
    deadline = time.monotonic() + seconds
    live = descendants()
    while live and time.monotonic() < deadline:
        time.sleep(0.1)
        live = descendants()
    return live


def report_after_interrupt() -> Path | None:
    """The report of the jobs that finished, when a sweep was interrupted before on_multirun_end."""
    if SESSION.sweep_dir is None or SESSION.reported or not SESSION.sweep_dir.is_dir():  # none yet: nothing ran
        return None
    try:
        from experiments.report import publish

        print(publish(SESSION.sweep_dir))
        SESSION.reported = True
        return SESSION.sweep_dir / "report.csv"
    except KeyboardInterrupt:  # a second Ctrl-C: leave without the report
        return None
    except Exception as e:
        log.error("report of %s failed: %s: %s", SESSION.sweep_dir, type(e).__name__, e)
        return None


def sweep_failures() -> list[str]:
    """Jobs of this command's sweep that failed: those this process saw fail, and any of its job directories
    whose metrics.json is not ok, or that started and left none (jobs run by another launcher's processes)."""
    from experiments.report import invocation
    from nst import metrics

    failed = {str(Path(f).resolve()) for f in SESSION.failed}
    if SESSION.sweep_dir is not None and SESSION.sweep_dir.is_dir():
        try:  # this command's jobs only, not other runs' in the same directory
            jobs, _ = invocation(SESSION.sweep_dir)
        except Exception:  # e.g. a glob() sweep, which only a running app can expand: every job directory
            jobs = None
        # a job of this command with no directory at all was lost (its launcher never ran it, or the names differ)
        failed |= {str(SESSION.sweep_dir.resolve() / name) for name in jobs or []
                   if not (SESSION.sweep_dir / name).is_dir()}
        for d in SESSION.sweep_dir.resolve().iterdir():
            if jobs is not None and d.name not in jobs:
                continue
            m = metrics.read(d)
            ok = m is not None and m["status"] == metrics.OK
            if not ok and (m is not None or (d / ".hydra").is_dir()):
                failed.add(str(d))
            latest = d / LATEST_FAILED  # each run of a job removes it first: this command's, or one left over
            if latest.is_file() and (jobs is not None or latest.stat().st_mtime >= SESSION.started - 1):
                failed.add(str(d))  # (every job directory, without the job list: this command's, by its time)
    return sorted(failed)


def entry(config_name: str) -> None:
    """`python -m experiments.<name> [overrides]`: hydra.main(conf/<config_name>.yaml) around `main`, with
    one-line errors and the exit status above; never returns."""
    import hydra

    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises its errors here, and we print them in one line
    signal.signal(signal.SIGTERM, on_sigterm)
    # A command started in the background by a non-interactive shell (`nohup cmd &`, a script's `cmd &`) inherits
    # SIGINT ignored, and so would its job processes: `kill -INT` did nothing, and on `kill PID` the local
    # launcher's jobs ignored stop_job_processes' SIGINT and ran on after the report had called them unfinished.
    # Restored to Python's KeyboardInterrupt here; the job processes then start with the default disposition.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    multirun = [a for a in sys.argv[1:] if a in ("-m", "--multirun")]  # Hydra's parser wants them first
    sys.argv[1:] = multirun + [a for a in sys.argv[1:] if a not in multirun]
    preset = argv_override("experiment")
    if config_name != "config" and preset and preset.partition("=")[2] not in ("", "null"):
        # a preset is a sweep of its own; composed under this entry's config, the entry's keys and sweep override
        # and extend it (e.g. the grid's size, steps and beta axis beside Fig. 3's ratio axis: 100 jobs, not 20)
        print(f"error: {preset}: a preset is a sweep of its own, which experiments.{config_name}'s settings would "
              f"change; run python -m experiments.transfer {preset.lstrip('+')}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    subdir = argv_override("hydra.sweep.subdir")
    if subdir:  # resume, the report and the exit status find a sweep's jobs by these names (nst/sweep.py)
        print(f"error: {subdir}: a sweep's job directories are named from their swept values (resume and the "
              "report find them by these names); choose where the sweep goes with hydra.sweep.dir", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    app = hydra.main(version_base="1.3", config_path="../conf", config_name=config_name)(main)
    try:
        app()
    except KeyboardInterrupt as e:
        code = EXIT_SIGTERM if SESSION.terminated or isinstance(e, Terminated) else EXIT_SIGINT
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            stop_job_processes()
        except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
            pass
        report = report_after_interrupt()
        where = f" (job {SESSION.interrupted_job})" if SESSION.interrupted_job else ""
        tail = f"; report of the finished jobs: {report}" if report else ""
        print(f"{interrupt_line(e)}{where}{tail}", file=sys.stderr)
        sys.exit(code)
    except BrokenPipeError:  # `... --help | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_FAILED)
    except JobFailed as failed:
        e = failed.error
        if full_error:
            raise e from None
        if failed.before_sweep and not isinstance(e, bad_input_types()):  # Hydra's: composing a job of the sweep
            print(f"error: {describe_hydra_error(e)}", file=sys.stderr)
            sys.exit(EXIT_BAD_INPUT)
        line = describe_job_error(e)
        code = EXIT_BAD_INPUT if isinstance(e, bad_input_types()) else EXIT_FAILED
        if code == EXIT_FAILED:
            line += " (HYDRA_FULL_ERROR=1 shows the traceback)"
        print(f"error: {line}", file=sys.stderr)
        sys.exit(code)
    except Exception as e:  # Hydra's own: composition, overrides, output directories
        if full_error:
            raise
        print(f"error: {describe_hydra_error(e)}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT if is_bad_input(e) else EXIT_FAILED)
    failed = sweep_failures() if SESSION.sweep_dir is not None else []
    if failed:
        many = len(failed) > 1
        print(f"error: {len(failed)} job{'s' * many} of the sweep failed ({'e.g. ' * many}{Path(failed[0]).name}); "
              f"see {SESSION.sweep_dir / 'report.csv'}", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    if SESSION.report_failed:
        print(f"error: the report of {SESSION.sweep_dir} failed (above); the jobs' files are kept", file=sys.stderr)
        sys.exit(EXIT_FAILED)
    sys.exit(0)
