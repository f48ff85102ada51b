"""`hydra/launcher=batched`: a sweep's compatible jobs optimised as one batch on one device (nst/batch.py).

Hydra finds this launcher through the `hydra_plugins` namespace package; the work is in batches.py beside it.
It runs nst-sweeps jobs only (it does not call the task function of another app). No `from __future__ import
annotations` here: Hydra loads this module outside sys.modules, where dataclasses cannot resolve string annotations.
"""
from collections.abc import Sequence
from typing import Optional
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.nst_batched_launcher.batched_launcher.BatchedLauncher"
    batch_size: int = 32  # the most jobs in one batch (memory: activations grow with it)
    memory_mb: Optional[float] = None  # the memory a batch may take, MiB; None: what the device has free


ConfigStore.instance().store(group="hydra/launcher", name="batched_base", node=BatchedLauncherConf, provider="nst-sweeps")


class BatchedLauncher(Launcher):
    """Prepares every job as Hydra's basic launcher would (directory, .hydra/, preflight, resume), then runs
    the jobs that are not done in batches of compatible ones."""

    def __init__(self, batch_size: int = 32, memory_mb: Optional[float] = None) -> None:
        self.batch_size, self.memory_mb = batch_size, memory_mb
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        """Checks the settings here, before the sweeper writes the sweep's multirun.yaml (launch is after)."""
        from nst.config import ConfigError

        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ConfigError(f"hydra.launcher.batch_size {self.batch_size!r} must be an integer >= 1")
        if self.memory_mb is not None and not 0 < self.memory_mb < float("inf"):
            raise ConfigError(f"hydra.launcher.memory_mb {self.memory_mb:g} must be a number of MiB > 0, or null "
                              "(what the device has free)")
        self.config, self.hydra_context = config, hydra_context

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from hydra_plugins.nst_batched_launcher.batches import launch

        assert self.config is not None and self.hydra_context is not None
        return launch(self.hydra_context, self.config, job_overrides, initial_job_idx, self.batch_size,
                      self.memory_mb)
