"""Hydra callback: at the end of every multirun, whatever the launcher, write the report and the figures."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from experiments.app import SESSION
from experiments.errors import JobFailed
from experiments.sweeps import MULTIRUN_FILE, check_sweep
from nst import jobdir
from nst.files import own_copy, room_for
from nst.processes import RUN

log = logging.getLogger("nst")


class SweepReport(Callback):
    """on_multirun_end -> report.csv, pivot tables, figures, and a summary on the console.

    The sweep directory is remembered at the start (experiments.app.SESSION), so that an interrupted sweep, which
    never reaches on_multirun_end, still gets the report of the jobs that finished (experiments.app.entry).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        SESSION.sweep_dir, SESSION.reported = Path(config.hydra.sweep.dir), False
        check_sweep(config)  # a sweep none of whose jobs could run is refused before it starts
        # every job, in whatever process runs it, knows its command ($NST_RUN: its record's `run`; a job process
        # exits when its command is gone): Hydra sets it for each job; a reused joblib worker's own is an earlier one's
        with read_write(config.hydra.overrides):
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{RUN}='{os.environ[RUN]}'")
        # Hydra's sweeper rewrites multirun.yaml in place next: on a full disk, an earlier sweep's was left empty
        # (the report finds the sweep's jobs by it), and in a copy made with hard links it is the original's too
        path = SESSION.sweep_dir / MULTIRUN_FILE
        if path.is_file():
            try:
                room_for(path, OmegaConf.to_yaml(config).encode())
                own_copy(path)
            except OSError as e:  # said as Hydra's own failure to make the directory is
                raise JobFailed(e, before_sweep=True) from None

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from experiments.report import publish

        sweep_dir = Path(config.hydra.sweep.dir)
        SESSION.sweep_dir = sweep_dir
        try:
            print(publish(sweep_dir, started=SESSION.started))
        except Exception as e:  # the jobs' files stay; the report can be rebuilt with experiments.report
            log.error("report of %s failed: %s", sweep_dir, jobdir.describe(e))
            SESSION.report_failed = True
        SESSION.reported = True
