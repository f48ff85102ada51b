"""Hydra's side of the job config: the schema (nst/config.py) in Hydra's ConfigStore, the resolvers conf/ uses,
and a composed config as the plain dict a job reads. Importing the `experiments` package registers them."""
from __future__ import annotations

import os
import re
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, ListConfig, OmegaConf

from nst import sweep
from nst.assets import embedded
from nst.fetch import default_images_root
from nst.config import ConfigError, JobConfig, expand_paths, number

SCHEMA = "job_schema"  # conf/config.yaml lists it first in its defaults


def typed_overrides(overrides: Any) -> dict[str, str]:
    """{key: value text} of Hydra's task overrides, as the user typed them (`beta=1e4` -> {"beta": "1e4"})."""
    if isinstance(overrides, ListConfig):  # read, not resolved: `content=${oc.env:X}` is text here
        overrides = OmegaConf.to_container(overrides, resolve=False)
    typed = {}
    for item in overrides or []:
        key, sep, value = str(item).lstrip("+~").partition("=")
        if sep:
            typed[key] = value
    return typed


def resolved(cfg: DictConfig, typed: dict[str, str] | None = None) -> dict[str, Any]:
    """The job's config as plain Python, interpolations resolved, without the `hydra` key, `~` expanded in its
    paths; an interpolation that cannot be resolved is a ConfigError naming its key."""
    from omegaconf import open_dict
    from omegaconf.errors import OmegaConfBaseException

    if "hydra" in cfg:  # a launcher's copy of a job's config holds Hydra's own: not the job's to resolve
        cfg = cfg.copy()
        with open_dict(cfg):
            cfg.pop("hydra")
    try:
        c = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as e:
        key = str(getattr(e, "full_key", "") or "")
        value = (typed or {}).get(key)
        if value is None and key:
            value = OmegaConf.to_container(cfg, resolve=False)
            for part in key.split("."):
                value = value.get(part) if isinstance(value, dict) else None
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        why = re.sub(r"^\w+ raised while resolving interpolation: ", "", why).strip("'\"")
        raise ConfigError(f"{key} {value} cannot be resolved: {why}".strip()) from None
    return expand_paths(c)


def sweep_dirname(overrides: list[str]) -> str:
    """A job directory name from its overrides (nst/sweep.py), e.g. "beta=1e+03,style_layers=0-1-2"."""
    return sweep.dirname(list(overrides))


def conv_indices(arch: str) -> str:
    """A sweep over every conv index of an architecture (random weights: only the structure counts): "[0],...,[n-1]"."""
    from nst.backbones import backbone
    from nst.features import conv_count

    return ",".join(f"[{i}]" for i in range(conv_count(backbone(str(arch), "random", meta=True)[0])))


def jobs_for_threads(threads: int | None) -> int:
    """How many parallel jobs keep jobs x threads = cores (threads None, i.e. all cores per job: one job)."""
    number("threads", threads)  # checked and worded as a job's: the launcher may resolve this before any job
    return 1 if threads is None else max(1, (os.cpu_count() or 1) // threads)


def nst_help(_root_: DictConfig) -> str:
    """hydra.help.template: the entry's help (experiments/help.py)."""
    from experiments.help import text

    return text(_root_)


def register() -> None:
    """Register the schema and the resolvers once (safe to call again)."""
    ConfigStore.instance().store(name=SCHEMA, node=JobConfig, provider="nst-sweeps")
    for name, fn in {"embedded": lambda name: str(embedded(name)), "sweep_dirname": sweep_dirname,
                     "conv_indices": conv_indices, "jobs_for_threads": jobs_for_threads,
                     "default_images_root": lambda: default_images_root(), "nst_help": nst_help}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register()
