"""A sweep's jobs, expanded as Hydra's basic sweeper does; the checks that refuse a sweep in one line, exit 2,
before the sweeper writes multirun.yaml or any job directory is made; and, at its end, which of its jobs failed."""
from __future__ import annotations

import logging
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from experiments.config import resolved, typed_overrides
from experiments.errors import JobFailed
from nst import sweep
from nst.config import ConfigError
from nst.launcher_settings import launcher_settings

log = logging.getLogger("nst")
MULTIRUN_FILE = "multirun.yaml"  # written by Hydra into the sweep directory when a multirun starts
# launchers whose jobs run on other machines: their devices, memory and files are checked there, not here
REMOTE_LAUNCHERS = ("hydra_plugins.nst_slurm_launcher.",)
# sweep directories whose every swept value first_error composed: the sweeper composes their jobs only at launch
COMPOSED: set[str] = set()


def expand(config: DictConfig) -> list[list[str]]:
    """Each job's overrides, as Hydra's basic sweeper expands the sweep (sweeper params, then the command line)."""
    params = [f"{k}={v}" for k, v in (OmegaConf.select(config, "hydra.sweeper.params") or {}).items()]
    hydra = GlobalHydra.instance()  # in a running app: its config loader, which glob() sweeps of a group need
    loader = hydra.config_loader() if hydra.is_initialized() else None
    # the command line as typed, as Hydra's sweeper reads it (`content=${images_root}/x.jpg` is not resolved: the
    # job's directory is named from that text); the sweeper params resolved, as it reads them
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    parsed = OverridesParser.create(config_loader=loader).parse_overrides(params + list(task))
    return [list(job) for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def invocation(sweep_dir: str | Path,
               config: DictConfig | None = None) -> tuple[dict[str, list[str]] | None, float | None]:
    """{job directory name: overrides} of the sweep launched with `config` (default: the sweep directory's last
    multirun.yaml) and when it started; (None, None) when unknown, e.g. for a directory not made by Hydra.
    The names are as conf/config.yaml's `hydra.sweep.subdir` makes them (nst/sweep.py)."""
    path = Path(sweep_dir) / MULTIRUN_FILE
    if config is None:
        if not path.is_file():
            return None, None
        try:
            config = OmegaConf.load(path)
            jobs = expand(config)
        except Exception as e:  # cut short or edited by hand: it names the jobs to report, so say which file
            why = str(e).splitlines()[0] if str(e) else ""
            raise ValueError(f"{path} cannot be read ({type(e).__name__}: {why}); --all reports every job "
                             "directory without it") from None
    else:
        jobs = expand(config)
    started = path.stat().st_mtime if path.is_file() else None
    return {sweep.dirname(job): job for job in jobs}, started


def check_sweep(config: DictConfig) -> None:
    """Before a sweep starts: raise JobFailed when two of its jobs would share a directory, a launcher setting is
    bad, or none of its jobs is valid (a bad value they all share, beside the swept keys). Jobs are composed and
    checked in order until one passes: one, for a sweep without that mistake. A sweep that cannot be expanded or
    composed here is left to the launcher, which says why as before."""
    try:
        shared = shared_directory(config)
    except Exception as e:
        log.debug("the sweep's directories were not checked before it started: %s: %s", type(e).__name__, e)
        shared = None
    COMPOSED.discard(str(config.hydra.sweep.dir))
    if shared is not None:
        raise JobFailed(shared)
    try:
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
    COMPOSED.add(str(config.hydra.sweep.dir))


def shared_directory(config: DictConfig) -> BaseException | None:
    """The error for a sweep two of whose jobs would write one directory, or that a file blocks (nst.sweep.clash),
    else None."""
    task = [str(o) for o in config.hydra.overrides.task]
    why = sweep.clash(expand(config), Path(config.hydra.sweep.dir), task)
    return ConfigError(why) if why else None


def first_error(config: DictConfig) -> BaseException | None:
    """The error of a job that Hydra cannot compose (its sweeper would stop there, after overwriting the sweep
    directory's multirun.yaml: a typo in a swept key, a value of the wrong type, a missing option of a swept
    group), else the first job's bad-input error when every job of the sweep has one, else None. A job is
    composed only for a value no earlier job had: one job per value of each swept key, not the product."""
    from hydra import compose
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from nst.jobdir import bad_input
    from nst.preflight import preflight

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
            preflight(resolved(cfg, typed), typed)
            passed = True
        except bad_input() as e:
            first = first or e
    return None if passed else first


def sweep_failures(sweep_dir: Path, started: float) -> list[str]:
    """The job directories of this command's sweep that failed (nst.jobdir.failed_jobs)."""
    from nst.jobdir import failed_jobs

    try:  # this command's jobs only, not other runs' in the same directory
        jobs, _ = invocation(sweep_dir) if sweep_dir.is_dir() else (None, None)
    except Exception:  # e.g. a glob() sweep, which only a running app can expand: every job directory
        jobs = None
    return failed_jobs(sweep_dir, None if jobs is None else list(jobs), started)
