"""The body shared by every entry point: run the job, turn bad input into a one-line error."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from experiments.job import finished, run_job, write_failure
from nst.engine import NonFiniteLoss

log = logging.getLogger("nst")
BAD_INPUT = (ValueError, FileNotFoundError, NonFiniteLoss)


def main(cfg: DictConfig) -> float | None:
    """Run one job in Hydra's output directory; a failed job in a sweep is recorded and the sweep goes on."""
    hc = HydraConfig.get()
    out = Path(hc.runtime.output_dir)
    multirun = hc.mode == RunMode.MULTIRUN
    try:
        done = finished(cfg, out)
        if done is not None:  # resume: a re-run sweep redoes only missing or failed jobs
            log.info("job %s is complete, skipped", out.name)
            return done["total_loss"]
        return run_job(cfg, out)["total_loss"]
    except Exception as e:
        write_failure(cfg, out, e)
        if multirun:
            log.error("job %s failed: %s: %s", out.name, type(e).__name__, e)
            return None
        if isinstance(e, BAD_INPUT):
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        raise
