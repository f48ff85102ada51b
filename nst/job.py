"""One job: a resolved config -> spec -> one call (nst/run.py) -> files in its directory (nst/jobdir.py).

Written files: result.png, history.csv, config.yaml (resolved) and, last, metrics.json (nst/metrics.py; its
presence with status "ok" marks a finished job). Check the config first (nst.jobdir.start runs nst.preflight).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from nst import jobdir, metrics
from nst.inputs import fingerprints
from nst.run import ProgressFn, run
from nst.spec import JobSpec


def run_job(config: dict[str, Any], out: str | Path, *, progress: ProgressFn | None = None) -> dict[str, Any]:
    """Run one job and write its files into out; returns its metrics (also in metrics.json). An error carries what
    the job had done, for its record (nst.jobdir.record_failure)."""
    start = time.perf_counter()
    config, out = jobdir.settings(config), Path(out)
    spec = JobSpec.from_config(config)
    inputs = fingerprints(spec)
    if config.get("threads") is not None:
        torch.set_num_threads(int(config["threads"]))
    try:
        result = run(spec, progress=progress)
    except BaseException as e:  # for its record
        metrics.note(e, inputs=inputs, total_seconds=time.perf_counter() - start)
        raise
    record = metrics.job_metrics(result, config, inputs, seed=spec.seed, total_seconds=time.perf_counter() - start)
    jobdir.write_outputs(out, config, result, record)
    return record
