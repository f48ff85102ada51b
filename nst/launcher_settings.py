"""The settings of Hydra's own joblib and submitit-local launchers, checked before a sweep starts (ours check their
own in their setup). Plain mappings: no Hydra here."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nst.config import Check, check_number, choice, is_int

# Hydra's own launchers' settings: {launcher target prefix: {key: rules for nst.config.check_number}}. Each failed
# after Hydra had written multirun.yaml over an earlier sweep's (joblib n_jobs=0 "has no meaning"; submitit
# timeout_min=0 UncompletedJobError, tasks_per_node=0 IndexError with two tracebacks)
JOBLIB = "hydra_plugins.hydra_joblib_launcher."
LAUNCHER_NUMBERS = {
    JOBLIB: {"timeout": {"strict": True, "null": True}},
    "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher": {
        "timeout_min": {"strict": True}, "cpus_per_task": {"low": 1, "integer": True, "null": True},
        "gpus_per_node": {"integer": True, "null": True}, "tasks_per_node": {"low": 1, "integer": True},
        "nodes": {"low": 1, "high": 1, "integer": True}, "mem_gb": {"strict": True, "null": True}},
}


def launcher_settings(launcher: Mapping[str, Any], typed: Mapping[str, str]) -> None:
    """Check the settings of Hydra's joblib and submitit-local launchers (ours check their own in setup)."""
    target = str(launcher.get("_target_", ""))
    c = Check({f"hydra.launcher.{k}": v for k, v in launcher.items()}, typed)
    for prefix, rules in LAUNCHER_NUMBERS.items():
        if target.startswith(prefix):
            for key, rule in rules.items():
                if key in launcher:
                    check_number(c, f"hydra.launcher.{key}", **rule)
    if target.startswith(JOBLIB):  # joblib said "prefer=foo is not a valid backend hint", naming no key
        choice(c, "hydra.launcher.prefer", ("processes", "threads"), null=True)
        choice(c, "hydra.launcher.backend", ("loky", "multiprocessing", "threading", "sequential"), null=True)
        n_jobs = launcher.get("n_jobs")
        if not is_int(n_jobs) or n_jobs == 0:
            raise c.fail("hydra.launcher.n_jobs", "must be a nonzero integer (jobs at once; -1: one per core); by "
                                                  "default it is the cores divided by `threads`")
