"""The batched launcher's work (batched_launcher.py): prepare each job as the basic launcher would, then run the
pending ones batched (nst/batch.py).

Every job still gets its own directory with .hydra/, result.png, history.csv, config.yaml and metrics.json; a
job that fails (bad input, NaN) is recorded as failed alone; complete jobs are skipped (resume).

Hydra's plugin scan imports this module at the start of every command: the library (torch) is imported when a
batched sweep runs, not here. No `from __future__ import annotations`: the scan loads it outside sys.modules,
where dataclasses cannot resolve string annotations.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext
from omegaconf import DictConfig

from experiments.config import resolved, typed_overrides
from hydra_plugins.nst_sequential_launcher.sequential_launcher import run_jobs
from nst import jobdir

log = logging.getLogger("nst")


@dataclass
class Pending:
    """A job that is to run: where, its config, spec and input fingerprints."""

    out: Path
    config: dict[str, Any]
    spec: Any  # nst.spec.JobSpec
    inputs: dict[str, str]


def prepare(cfg: DictConfig) -> Pending | float | None:
    """In the job's Hydra context: check it, skip a complete job (its total loss), else what it needs to run.
    None for a job that failed here (recorded in its metrics.json)."""
    hc = HydraConfig.get()
    out, config = Path(hc.runtime.output_dir), {}
    try:
        jobdir.claim(out, "hydra.sweep.dir")
        typed = typed_overrides(hc.overrides.task)
        config = resolved(cfg, typed)
        done = jobdir.start(config, out, typed, multirun=True, clear=False, where="hydra.sweep.dir")
        # cleared when its batch ends: an interrupt before then keeps an earlier complete result (a sweep re-run
        # after an edit prepares every job first)
    except Exception as e:
        fail(config, out, e)
        return None
    if done is not None:
        jobdir.release(out)  # only the jobs still to run stay held (one open directory each)
        return done["total_loss"]
    try:
        from nst.inputs import fingerprints
        from nst.spec import JobSpec

        spec = JobSpec.from_config(config)
        return Pending(out, config, spec, fingerprints(spec))
    except Exception as e:  # to be redone, and failed: its failure replaces the earlier result, as in start
        jobdir.clear_previous(out)
        fail(config, out, e)
        return None


def fail(config: dict[str, Any], out: Path, error: BaseException) -> None:
    """A job failed: recorded and said in one line (nst.jobdir.fail), its directory let go."""
    jobdir.fail(config, out, error)
    jobdir.release(out)


def launch(context: HydraContext, config: DictConfig, job_overrides: Sequence[Sequence[str]],
           initial_job_idx: int, batch_size: int, memory_mb: float | None = None) -> list[JobReturn]:
    """Prepare every job (Hydra's run_job: directories, .hydra/, logs), then run the pending ones in batches."""
    import torch

    from nst import metrics
    from nst.batch import run_all
    from nst.engine import Interrupted

    returns = run_jobs(context, config, job_overrides, initial_job_idx, prepare,
                       f"Preparing {{}} jobs for batched runs (batch_size {batch_size})")
    pending = [(i, r.return_value) for i, r in enumerate(returns)
               if r.status == JobStatus.COMPLETED and isinstance(r.return_value, Pending)]
    threads = [job.config["threads"] for _, job in pending if job.config.get("threads") is not None]
    if threads:  # as nst/job.py does per job; one process runs them all here, so the smallest
        torch.set_num_threads(min(threads))
    start, ended = time.perf_counter(), set()

    def done(k: int, result: Any) -> None:
        i, job = pending[k]
        jobdir.clear_previous(job.out)
        if isinstance(result, BaseException):
            fail(job.config, job.out, metrics.note(result, inputs=job.inputs))
            returns[i].return_value = None
            ended.add(k)
            return
        batch = None if result.batch is None else [pending[b][1].out.name for b in result.batch]
        record = metrics.job_metrics(result, job.config, job.inputs, seed=job.spec.seed,
                                     total_seconds=result.setup_seconds + result.seconds, batch=batch)
        jobdir.write_outputs(job.out, job.config, result, record)
        log.info("%s: total %.4g content %.4g style %.4g", job.out.name, record["total_loss"],
                 record["content_loss"], record["style_loss"])
        returns[i].return_value = record["total_loss"]
        ended.add(k)
        jobdir.release(job.out)

    try:
        run_all([job.spec for _, job in pending], batch_size=batch_size, memory_mb=memory_mb, done=done)
    except KeyboardInterrupt as e:
        progress = getattr(e, "progress", {})  # the running batch's jobs: what each had done (nst.metrics.note)
        for k, (_, job) in enumerate(pending):
            if k not in ended:  # an earlier complete result is kept; an earlier failure's record is replaced
                ran = progress.get(id(job.spec))
                stop = None if ran is None else metrics.note(Interrupted(ran.get("steps", 0)), **ran, inputs=job.inputs)
                jobdir.record_interrupt(job.config, job.out, e if stop is None else stop, start,
                                        before_start=stop is None)
        raise
    finally:
        jobdir.release()  # the job directories jobdir.start claimed in prepare
    return returns
