"""OmegaConf resolvers used by conf/: embedded images and readable sweep directory names."""
from __future__ import annotations

import os

from omegaconf import OmegaConf

from nst.assets import embedded


IGNORED = ("images_root", "progress", "threads")  # keys that do not change a result: not in directory names


def format_value(text: str) -> str:
    """An override's value made readable in a directory name: 1e3 -> 1e+03, [0,1,2] -> 0-1-2, a/b.jpg -> b."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        return "-".join(format_value(t) for t in text[1:-1].split(",") if t.strip()) or "none"
    try:
        number = float(text)
    except ValueError:
        return text.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0] if "/" in text else text
    if number.is_integer() and abs(number) < 1000 and "e" not in text.lower():
        return str(int(number))
    short = f"{number:.0e}"
    return short if float(short) == number else f"{number:g}"


def sweep_dirname(overrides: list[str]) -> str:
    """A job directory name from its overrides, e.g. "beta=1e+03,style_layers=0-1-2"; hydra.* keys are left out."""
    parts = []
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key.startswith("hydra.") or key in IGNORED:
            continue
        parts.append(f"{key}={format_value(value)}")
    return ",".join(sorted(parts)) or "job"


def conv_indices(arch: str) -> str:
    """A sweep over every conv index of a torchvision architecture: "[0],[1],...,[n-1]"."""
    from nst.backbones import torchvision_backbone
    from nst.features import convs

    return ",".join(f"[{i}]" for i in range(len(convs(torchvision_backbone(str(arch), "random")))))


def jobs_for_threads(threads: int | None) -> int:
    """How many parallel jobs keep jobs x threads = cores (threads None, i.e. all cores per job: one job)."""
    cores = os.cpu_count() or 1
    return 1 if threads is None else max(1, cores // max(1, int(threads)))


def register() -> None:
    """Register the resolvers once (safe to call again)."""
    for name, fn in {"embedded": lambda name: str(embedded(name)), "sweep_dirname": sweep_dirname,
                     "conv_indices": conv_indices, "jobs_for_threads": jobs_for_threads}.items():
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn)


register()
