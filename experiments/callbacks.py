"""Hydra callback: at the end of every multirun, whatever the launcher, write the report and the figures."""
from __future__ import annotations

import logging
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from experiments.report import publish

log = logging.getLogger("nst")


class SweepReport(Callback):
    """on_multirun_end -> report.csv, pivot tables, figures, and a summary on the console."""

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        try:
            print(publish(sweep_dir))
        except Exception as e:  # the jobs' files stay; the report can be rebuilt with experiments.report
            log.error("report of %s failed: %s: %s", sweep_dir, type(e).__name__, e)
