"""The default launcher: Hydra's basic launcher (one job after another, in this process), but a job whose directory
cannot be made or written (a full disk, a read-only directory, a quota) fails alone, in one line, and the sweep goes
on; with Hydra's own, the first such job ended the command (exit 2) with no report and the later jobs never ran.

`run_jobs` is also the batched launcher's first step. No `from __future__ import annotations` here: Hydra loads
this module outside sys.modules, where dataclasses cannot resolve string annotations.
"""
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, open_dict

log = logging.getLogger("nst")


@dataclass
class SequentialLauncherConf:
    _target_: str = "hydra_plugins.nst_sequential_launcher.sequential_launcher.SequentialLauncher"


ConfigStore.instance().store(group="hydra/launcher", name="sequential", node=SequentialLauncherConf,
                             provider="nst-sweeps")


class SequentialLauncher(Launcher):
    """Each job in turn, in this process (`run_jobs`)."""

    def __init__(self) -> None:
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None
        self.task_function: Optional[TaskFunction] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None and self.hydra_context is not None and self.task_function is not None
        return run_jobs(self.hydra_context, self.config, job_overrides, initial_job_idx, self.task_function)


def run_jobs(context: HydraContext, config: DictConfig, job_overrides: Sequence[Sequence[str]],
             initial_job_idx: int, task: Callable[[DictConfig], Any],
             heading: str = "Launching {} jobs locally") -> list[JobReturn]:
    """Hydra's run_job for each job (its directory, .hydra/, log, then `task`), as Hydra's basic launcher does it;
    a job whose files cannot be written there fails alone (nst.jobdir.fail), its JobReturn completed with None."""
    from nst import jobdir
    from nst.files import own_copy

    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    log.info(heading.format(len(job_overrides)))
    returns: list[JobReturn] = []
    for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
        log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
        sweep_config = context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(sweep_config):
            sweep_config.hydra.job.id = sweep_config.hydra.job.num = idx
        out = Path(str(sweep_config.hydra.sweep.dir)) / str(sweep_config.hydra.sweep.subdir)
        # Hydra rewrites .hydra/*.yaml and appends to the job's log in place: on a full disk, a complete job's were
        # left empty, and in a copy made with hard links (cp -al) they are the original's files too
        kept = {f: f.read_bytes() for f in (out / ".hydra").glob("*.yaml")}
        for f in [*kept, *out.glob("*.log")]:
            own_copy(f)
        try:
            returns.append(run_job(hydra_context=context, task_function=task, config=sweep_config,
                                   job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir"))
        except OSError as e:  # Hydra's own writes before the task: the directory, .hydra/*.yaml, the log file
            for f, data in kept.items():
                try:
                    f.write_bytes(data)  # the space its truncation freed
                except OSError:
                    pass
            e.filename = e.filename or str(out)  # Hydra's writes of .hydra/*.yaml name no file
            if jobdir.completed(out):  # an earlier complete result, untouched (Hydra writes only .hydra/ there)
                log.warning("job %s: %s; its complete result is kept", out.name, jobdir.describe(e))
            else:
                jobdir.fail({}, out, e)
            ret = JobReturn(status=JobStatus.COMPLETED)
            ret.return_value = None
            returns.append(ret)
        configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    return returns
