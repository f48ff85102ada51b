"""The sweep vocabulary: override text, job directory names (and sweeps whose jobs cannot each have one), and
layer-set labels.

A job of a sweep is named by its overrides (`beta=1e+03,style_layers=0-1-2`); a path value keeps its file stem
and gains a short hash of the whole value (`content=tubingen~1a2b3c`), so two files with one name in different
folders get two directories.
"""
from __future__ import annotations

import hashlib
import os
import re
import shlex
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


def looks_like_a_file(value: str) -> bool:
    """Whether an override's value reads as a file path (a folder in it, or a file extension)."""
    return "/" in value or re.search(r"\.\w{2,5}$", value) is not None



def hydra_quoted(key: str, value: str) -> str:
    """The override with its value in Hydra's quotes, within the shell's: "content='/x/a=b.jpg'"."""
    if any(ch in value for ch in '"$`\\'):  # the shell would read these inside double quotes
        return shlex.quote(f"{key}='{value}'" if "'" not in value else f'{key}="{value}"')
    return f"\"{key}='{value}'\"" if "'" not in value else f'"{key}=\\"{value}\\""'


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


NAME_MAX = 255  # bytes in a file name: Linux's ext4, xfs, btrfs, NFS; macOS's APFS


def clash(jobs: list[list[str]], sweep_dir: Path, task: list[str]) -> str | None:
    """Why a sweep's jobs (their overrides) cannot each have a directory of their own in sweep_dir: two would share
    one (they differ only in keys outside a job's identity, nst.config.NOT_IDENTITY, or are listed twice), a name is
    too long, a file is in the way, a directory is not its own (`aliased`), or there are none (`task`: the command line, for that message); else None."""
    seen: dict[str, dict[str, str]] = {}
    inodes: dict[tuple[int, int], Path] = {}
    if not jobs:  # `beta=glob(*)` (a glob over a key, not a config group): Hydra launched nothing, exit 1
        swept = [o for o in task if "(" in o]
        return (f"{swept[0] if swept else 'the sweep'}: expands to no jobs"
                + ("; glob() selects options of a config group (painting=glob(*))"
                   if swept and "glob(" in swept[0] else ""))
    for job in jobs:
        name, parsed = dirname(job), parse(job)
        path = sweep_dir / name
        if len(name.encode()) > NAME_MAX:  # else Hydra wrote multirun.yaml, then the job failed: "File name too long"
            key, value = max(parsed.items(), key=lambda kv: len(format_value(kv[1])))
            return (f"{key}={value}: job directory {name[:48]}... would be named in {len(name.encode())} bytes, over "
                    f"the {NAME_MAX} a file name may have; shorten the value (a long file name: link it under a "
                    "shorter one)")
        if path.exists() and not path.is_dir():  # else the sweep stopped there, without its report
            return (f"hydra.sweep.dir={sweep_dir}: {path} is a file, where job {name} writes its directory; move the "
                    "file away or choose another directory")
        if name in seen:
            keys = sorted(k for k in parsed.keys() | seen[name].keys() if parsed.get(k) != seen[name].get(k))
            if not keys:
                return f"the sweep lists job {name} twice; give each value once"
            values = ", ".join(f"{k}={seen[name].get(k)} and {k}={parsed.get(k)}" for k in keys)
            unnamed = [k for k in keys if k in NOT_IDENTITY]
            if not unnamed:  # beta=1000,1e3: two spellings of one value
                return f"{values} are one value (directory {name}); give it once"
            return (f"{values}: these jobs would share the directory {name}, as {', '.join(unnamed)} does not name a "
                    "job's directory (it is not part of a job's identity); run one sweep per value, each in its own "
                    "hydra.sweep.dir")
        seen[name] = parsed
        alias = aliased(path, sweep_dir, inodes)
        if alias:
            return f"hydra.sweep.dir={sweep_dir}: job directory {path} {alias}; remove it (a job writes only into a " \
                   "directory of its own) or choose another directory"
    return None


def aliased(path: Path, sweep_dir: Path, inodes: dict[tuple[int, int], Path]) -> str | None:
    """How a job's directory is not a directory of its own in sweep_dir: a link (to another job's place, or
    outside), or the same directory as another job's (a bind mount); `inodes`: those seen so far, updated."""
    if path.is_symlink():
        return f"is a link to {os.path.realpath(path)}"
    if not path.is_dir():
        return None
    real = os.path.realpath(path)
    if real != os.path.join(os.path.realpath(sweep_dir), path.name):  # a link further up, inside the sweep
        return f"resolves to {real}, outside {sweep_dir}"
    st = path.stat()
    other = inodes.setdefault((st.st_dev, st.st_ino), path)
    return f"is the same directory as {other}" if other != path else None
