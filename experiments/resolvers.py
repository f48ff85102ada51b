"""OmegaConf resolvers used by conf/: embedded images and readable sweep directory names."""
from __future__ import annotations

import os

from omegaconf import OmegaConf

from nst import sweep
from nst.assets import embedded
from nst.fetch import default_images_root


def sweep_dirname(overrides: list[str]) -> str:
    """A job directory name from its overrides (nst/sweep.py), e.g. "beta=1e+03,style_layers=0-1-2"."""
    return sweep.dirname(list(overrides))


def conv_indices(arch: str) -> str:
    """A sweep over every conv index of an architecture (random weights: only the structure counts): "[0],...,[n-1]"."""
    from nst.backbones import backbone
    from nst.features import conv_count

    return ",".join(f"[{i}]" for i in range(conv_count(backbone(str(arch), "random")[0])))


def jobs_for_threads(threads: int | None) -> int:
    """How many parallel jobs keep jobs x threads = cores (threads None, i.e. all cores per job: one job)."""
    from experiments.validate import number

    # checked and worded as validate does: the launcher may resolve this before any job is validated
    number("threads", threads, low=1, integer=True, null=True)
    return 1 if threads is None else max(1, (os.cpu_count() or 1) // threads)


def register() -> None:
    """Register the resolvers once (safe to call again)."""
    for name, fn in {"embedded": lambda name: str(embedded(name)), "sweep_dirname": sweep_dirname,
                     "conv_indices": conv_indices, "jobs_for_threads": jobs_for_threads,
                     "default_images_root": default_images_root}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register()
