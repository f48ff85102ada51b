"""Hydra callback: at the end of every multirun, whatever the launcher, write the report and the figures."""
from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.app import SESSION
from experiments.sweeps import check_sweep

log = logging.getLogger("nst")


class SweepReport(Callback):
    """on_multirun_end -> report.csv, pivot tables, figures, and a summary on the console.

    The sweep directory is remembered at the start (experiments.app.SESSION), so that an interrupted sweep, which
    never reaches on_multirun_end, still gets the report of the jobs that finished (experiments.app.entry).
    """

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        SESSION.sweep_dir, SESSION.reported = Path(config.hydra.sweep.dir), False
        check_sweep(config)  # a sweep none of whose jobs could run is refused before it starts

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from experiments.report import publish

        sweep_dir = Path(config.hydra.sweep.dir)
        SESSION.sweep_dir = sweep_dir
        try:
            print(publish(sweep_dir))
        except Exception as e:  # the jobs' files stay; the report can be rebuilt with experiments.report
            log.error("report of %s failed: %s: %s", sweep_dir, type(e).__name__, e)
            SESSION.report_failed = True
        SESSION.reported = True
