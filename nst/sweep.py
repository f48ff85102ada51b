"""The sweep vocabulary: override text, job directory names, which keys are axes, and layer-set labels.

A job of a sweep is named by its overrides (`beta=1e+03,style_layers=0-1-2`); a path value keeps its file stem
and gains a short hash of the whole value (`content=tubingen~1a2b3c`), so two files with one name in different
folders get two directories.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from nst.config import LAYER_KEYS, NOT_IDENTITY, names_column

NAMES_COLUMNS = {k: names_column(k) for k in LAYER_KEYS}  # content_layers -> content_layer_names


def parse(items: list[str]) -> dict[str, str]:
    """Hydra override strings -> {key: value text}; hydra.* keys are left out."""
    pairs = (item.lstrip("+~").partition("=") for item in items or [])
    return {k: v for k, _, v in pairs if not k.startswith("hydra.")}


def is_path(text: str) -> bool:
    """Whether an override value names a file (it holds a folder separator)."""
    return "/" in text or "\\" in text


def short_hash(text: str) -> str:
    """Six hex digits of a value's sha256: the same value always gives the same name."""
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def format_value(text: str) -> str:
    """An override's value made readable in a directory name: 1e3 -> 1e+03, [0,1,2] -> 0-1-2, a/b.jpg -> b~hash."""
    text = re.sub(r"\\(.)", r"\1", text.strip())  # Hydra's escapes in a swept value's text: $\{a\:b\} -> ${a:b}
    if text.startswith("[") and text.endswith("]"):
        return "-".join(format_value(t) for t in text[1:-1].split(",") if t.strip()) or "none"
    try:
        number = float(text)
    except ValueError:
        if is_path(text):  # `~` as the job reads it (nst.config.expand_paths): '~/x' and bash's /home/u/x agree
            text = os.path.expanduser(text)
            return f"{Path(text.rstrip('/')).stem}~{short_hash(text)}"
        if "${" in text:  # an interpolation (content=${embedded:grace_hopper}): its words, and the hash
            words = re.sub(r"[^\w.-]+", "_", text).strip("_")
            return f"{words}~{short_hash(text)}"
        return text
    if number.is_integer() and abs(number) < 1000 and "e" not in text.lower():
        return str(int(number))
    short = f"{number:.0e}"
    if float(short) == number:
        return short
    # exact, so that two values give two directories (%g kept 6 digits: seeds 20240101 and 20240102 shared one);
    # an integer from its text, beyond a float's 53 bits
    return str(int(text)) if text.lstrip("+-").isdigit() else repr(number)


def dirname(overrides: list[str]) -> str:
    """A job directory name from its overrides, e.g. "beta=1e+03,style_layers=0-1-2"."""
    parts = [f"{k}={format_value(v)}" for k, v in parse(overrides).items() if k not in NOT_IDENTITY]
    return ",".join(sorted(parts)) or "job"


def cell(value: object) -> object:
    """A config value as a table cell: lists -> "0,1,2", paths -> file stem, numbers stay numbers."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(cell(v)) for v in value) if value else "none"
    if isinstance(value, str) and is_path(value):
        return Path(value).stem
    return value


def layer_names(layers: list | None, names: dict[str, str]) -> str:
    """A layer set as its readable names ("relu1_1,relu2_1"), from a job's `layers` record."""
    return ",".join(names.get(str(v), str(v)) for v in layers or [])
