"""`hydra/launcher=slurm`: Hydra's submitit SLURM launcher, made to fail early, stay quiet and never wait blind.

Before submitting: the request is checked against the partition (resources.py: one `error:` line and exit 2 for a
request no node can satisfy; no GPU asked for device=auto on a partition without GPUs), and the jobs complete from
an earlier run in the same sweep directory are not submitted again (resume). The others go as one SLURM array,
watched through squeue and submitit's result files (watch.py), not sacct. A job that SLURM ends without a result
(scancel, node failure, memory) is recorded as failed in its metrics.json and the others go on. Preemption is
submitit's: its signal (USR2) requeues the job through this launcher's `checkpoint`, and the job starts again from
the beginning; at the time limit the job is recorded as failed (max_num_timeout 0). Ctrl-C cancels the sweep's jobs.

No `from __future__ import annotations`: Hydra's plugin scan loads this module outside sys.modules, where
dataclasses cannot resolve string annotations.
"""
import contextlib
import io
import logging
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf, SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
from hydra_plugins.nst_slurm_launcher import resources, watch
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

log = logging.getLogger("nst")


@dataclass
class NstSlurmQueueConf(SlurmQueueConf):
    _target_: str = "hydra_plugins.nst_slurm_launcher.slurm_launcher.NstSlurmLauncher"
    pending_notice_s: int = 120  # jobs pending longer get a line with squeue's reason, again every as many seconds


ConfigStore.instance().store(group="hydra/launcher", name="nst_slurm", node=NstSlurmQueueConf, provider="nst-sweeps")


class JobEnded(Exception):
    """What metrics.json records for a job that SLURM ended without a result, or whose submitit wrapper raised."""


@dataclass
class Job:
    """One job of the sweep: its index, overrides, config (with `hydra`) and directory."""

    idx: int
    overrides: list[str]
    cfg: DictConfig
    out: Path


@contextlib.contextmanager
def kept_exit(signum: int) -> Iterator[None]:
    """Raise again on leaving the exit that the signal's handler raised, where code in between swallowed it or
    turned it into another error.

    submitit's preemption handler (USR2) requeues the job, then exits (SystemExit). Landing in C code that calls back
    into Python, the exit can be lost: in CI once, during the job's `import torch`, it came out as an import error
    ("initialization failed"). The job then recorded that as its failure and returned a result, which the launcher
    took as the job's end, while SLURM ran the requeued job to an ok end that no report saw. An Exception the handler
    raises (submitit's UncompletedJobError at the time limit: no requeue) is left to the job, which records it."""
    handler = signal.getsignal(signum)
    raised: list[BaseException] = []

    def noting(sig: int, frame: Any) -> None:
        try:
            handler(sig, frame)
        except BaseException as e:
            if not isinstance(e, Exception):
                raised.append(e)
            raise

    if callable(handler):
        signal.signal(signum, noting)
    try:
        yield
    except BaseException as e:
        if raised and e is not raised[0]:
            raise raised[0] from e
        raise
    finally:
        if callable(handler):
            signal.signal(signum, handler)
    if raised:
        raise raised[0]


class NstSlurmLauncher(SlurmLauncher):
    """submitit's SLURM launcher with the request checked first, resume, a squeue watcher and failure records."""

    def __init__(self, pending_notice_s: int = 120, **params: Any) -> None:
        super().__init__(**params)
        self.pending_notice_s = pending_notice_s

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """submitit's setup, then the request checked: here, before the sweeper writes multirun.yaml (a refused
        sweep into an existing sweep's directory would overwrite it; launch is after)."""
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        self.request = self.checked_request()

    def __call__(self, *args: Any, **kwargs: Any) -> JobReturn:
        """The job, run by submitit on a node; a preemption (USR2, or submitit's SUBMITIT_PREEMPT_SIGNAL) whose exit
        was swallowed on its way still ends it without a result (the job is requeued already)."""
        from submitit import JobEnvironment

        with kept_exit(getattr(signal, f"SIG{JobEnvironment.USR_SIG}", signal.SIGUSR2)):
            return super().__call__(*args, **kwargs)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        assert self.config is not None
        request, partition = self.request
        jobs = [self.job(idx, list(o)) for idx, o in enumerate(job_overrides, start=initial_job_idx)]
        done = {j.idx: self.finished(j) for j in jobs}
        returns = {idx: self.job_return(jobs[idx - initial_job_idx], m) for idx, m in done.items() if m is not None}
        todo = [j for j in jobs if done[j.idx] is None]
        if returns:
            log.info("%d of %d jobs complete already (resume), not submitted", len(returns), len(jobs))
        if todo:
            returns.update(self.run(todo, request))
        return [returns[j.idx] for j in jobs]

    # ------------------------------------------------------------------------------------------ before submitting

    def checked_request(self) -> tuple[resources.Request, str]:
        """hydra.launcher's request as it fits the partition (sinfo), and the partition's name; else a ConfigError."""
        from nst.config import ConfigError

        assert self.config is not None
        p = self.params
        asked = resources.Request(gpus=p.get("gpus_per_node"), cpus=p.get("cpus_per_task"),
                                  tasks=p.get("tasks_per_node") or 1, mem_gb=p.get("mem_gb"),
                                  timeout_min=p.get("timeout_min"))
        device = str(OmegaConf.select(self.config, "device", default="auto"))
        try:
            request, partition, offer, warning = resources.check(asked, p.get("partition"), device)
        except resources.NoScheduler as e:
            raise ConfigError(f"hydra/launcher=slurm: no SLURM scheduler answers here ({e}); on a cluster, run from "
                              "a node that can submit jobs; to try it locally: sudo bash .ci/local_slurm.sh start") \
                from None
        except resources.Unfit as e:
            raise ConfigError(str(e)) from None
        log.info("SLURM partition %s: %s; each job asks for %s", partition, offer, request.describe())
        if warning:
            log.warning("warning: %s", warning)
        return request, partition

    def job(self, idx: int, overrides: list[str]) -> Job:
        """A job's config and directory, as Hydra's run_job will make them in the job."""
        assert self.hydra_context is not None and self.config is not None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        HydraConfig.instance().set_config(cfg)  # the subdir interpolates this job's hydra.overrides
        out = (Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)).absolute()
        with read_write(cfg.hydra), open_dict(cfg.hydra):
            cfg.hydra.job.num, cfg.hydra.runtime.output_dir = idx, str(out)
        HydraConfig.instance().set_config(self.config)
        return Job(idx, overrides, cfg, out)

    def settings(self, job: Job) -> dict[str, Any]:
        """The job's config as the job reads it ({} where it cannot be resolved: the job says why)."""
        from experiments.config import resolved

        HydraConfig.instance().set_config(job.cfg)  # for `${hydra:...}` in the job's config
        try:
            return resolved(job.cfg)
        except Exception:
            return {}
        finally:
            HydraConfig.instance().set_config(self.config)

    def finished(self, job: Job) -> Optional[dict[str, Any]]:
        """The job's metrics when it is complete with this config and these inputs (the resume rule), else None."""
        from nst import jobdir

        try:
            return jobdir.finished(self.settings(job), job.out)
        except Exception:  # a bad config or a missing image: the job runs, and records its own one-line error
            return None

    @staticmethod
    def job_return(job: Job, metrics: Optional[dict[str, Any]]) -> JobReturn:
        """What Hydra's sweeper gets for a job that returned none itself (complete already, or ended by SLURM)."""
        ret = JobReturn(overrides=job.overrides, cfg=job.cfg, working_dir=str(job.out), status=JobStatus.COMPLETED)
        ret.return_value = metrics["total_loss"] if metrics else None
        return ret

    # ------------------------------------------------------------------------------------------ submit and watch

    def executor(self, request: resources.Request) -> Any:
        """A submitit SLURM executor with hydra.launcher's parameters (as BaseSubmititLauncher.launch makes it),
        the GPUs as checked."""
        import submitit

        params = dict(self.params, gpus_per_node=request.gpus)
        executor = submitit.AutoExecutor(folder=params.pop("submitit_folder"), cluster="slurm",
                                         slurm_max_num_timeout=params.pop("max_num_timeout"))
        base = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
        return executor

    def run(self, todo: list[Job], request: resources.Request) -> dict[int, JobReturn]:
        """Submit the jobs as one array and wait for them; each job's return as soon as it has ended."""
        from submitit.core.utils import FailedJobError

        from nst import jobdir
        from nst.config import ConfigError

        assert self.config is not None
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        args = [(j.overrides, "hydra.sweep.dir", j.idx, f"job_id_for_{j.idx}", Singleton.get_state()) for j in todo]
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's error too: one line is enough
                submitted = self.executor(request).map_array(self, *zip(*args))
        except FailedJobError as e:  # sbatch refused: a limit sinfo does not show (account, QOS, gres names)
            lines = [line.strip() for line in str(e).splitlines() if "error" in line.lower()]
            raise ConfigError(f"hydra/launcher=slurm: sbatch refused the jobs: {lines[-1] if lines else e}") from None
        array = submitted[0].job_id.split("_")[0]
        log.info("submitted %d job%s as SLURM job %s (logs: %s)", len(todo), "s" * (len(todo) > 1), array,
                 submitted[0].paths.folder.parent)
        by_id = {s.job_id: (j, s) for j, s in zip(todo, submitted)}
        returns: dict[int, JobReturn] = {}

        def ended(tracked: watch.Tracked) -> None:
            job, sub = by_id[tracked.job_id]
            returns[job.idx] = self.outcome(job, sub, tracked)

        try:
            watch.wait([watch.Tracked(s.job_id, j.out.name, s.paths.result_pickle) for j, s in by_id.values()], ended,
                       pending_notice_s=self.pending_notice_s)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM to this process (experiments.app)
            subprocess.run(["scancel", array], capture_output=True, timeout=60)
            log.info("cancelled SLURM job %s (the sweep's jobs still queued or running)", array)
            for job, _ in by_id.values():
                if job.idx not in returns:
                    jobdir.record_interrupt(self.settings(job), job.out, e, started=0)
            raise
        return returns

    def outcome(self, job: Job, submitted: Any, tracked: watch.Tracked) -> JobReturn:
        """The job's own JobReturn, or a failure recorded for it: SLURM ended it, or submitit's wrapper raised."""
        from nst import jobdir, metrics

        if tracked.outcome == watch.RESULT:
            try:
                ret = submitted.result()
            except Exception as e:  # raised outside our task function (main records its own errors)
                trace = [line for line in str(e).splitlines() if line.strip() and not line.startswith("-")]
                self.fail(job, JobEnded(next((line for line in reversed(trace) if "Error" in line), trace[0])))
                return self.job_return(job, None)
            m = metrics.read(job.out)
            if m is not None and m["status"] != metrics.OK:  # as the basic launcher says it
                log.error("job %s %s: %s", job.out.name, m.get("status"), m.get("error"))
            return ret
        if not jobdir.completed(job.out):
            (job.out / "result.png").unlink(missing_ok=True)  # written before it was killed, without its metrics
        state = "no longer listed by squeue" if tracked.outcome == watch.GONE else tracked.outcome
        self.fail(job, JobEnded(f"SLURM job {tracked.job_id} ended {state} without a result (scancel, node "
                                f"failure, memory or time limit); its log: {submitted.paths.stderr}"))
        return self.job_return(job, None)

    def fail(self, job: Job, error: BaseException) -> None:
        """A job that ended without recording its own end: its failure recorded, said in one line."""
        from nst import jobdir

        log.error("job %s failed: %s", job.out.name, jobdir.fail(self.settings(job), job.out, error))
