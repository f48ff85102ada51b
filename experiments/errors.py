"""Hydra's and OmegaConf's errors (composition, overrides, types, interpolation, output directories) in one line
that names the key and the value as typed; a job's own errors are nst.jobdir.describe's."""
from __future__ import annotations

import argparse
import difflib
import re
import sys
from pathlib import Path
from typing import NoReturn

import conf
from nst import sweep
from nst.config import FIELDS, OPTIMIZER_FIELDS, ConfigError, expectation, number_rule
from nst.jobdir import bad_input, write_error

# conf/'s config groups (one option each): its folders but hydra/
GROUPS = tuple(sorted(p.name for p in Path(conf.__file__).parent.iterdir() if p.is_dir()
                      and not p.name.startswith(("_", ".")) and p.name != "hydra"))
KNOWN_KEYS = [k for k in FIELDS if k != "optimizer"] + [f"optimizer.{k}" for k in OPTIMIZER_FIELDS]
TYPES = {"Integer": "an integer", "Float": "a number", "Boolean": "true or false"}


class OneLineParser(argparse.ArgumentParser):
    """argparse's errors as one `error:` line with the usage in it, exit 2 (argparse printed the usage first)."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split()[1:])
        self.exit(2, f"error: {message}; usage: {usage}\n")


class JobFailed(BaseException):
    """A single job's error on its way to `entry`: a BaseException, so that Hydra passes it through untouched
    (for an Exception it would print its own "Error executing job" line first)."""

    def __init__(self, error: BaseException, before_sweep: bool = False):
        super().__init__(str(error))
        self.error = error
        self.before_sweep = before_sweep  # found by the sweep's check: Hydra's own errors are then bad input (exit 2)


def first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[0] + (" …" if len(lines) > 1 else "")) if lines else ""


def argv_override(key: str) -> str | None:
    """The command-line override of a key, as typed (`sizee=128`)."""
    for arg in sys.argv[1:]:
        if arg.lstrip("+~").partition("=")[0] == key:
            return arg
    return None


def refused_groups(config_name: str) -> set[str]:
    """The config groups an entry refuses: the presets (experiment=) run under experiments.transfer only."""
    return set() if config_name == "config" else {"experiment"}


def refused_arguments(config_name: str) -> str | None:
    """Why the command line is refused before Hydra composes anything, else None."""
    preset = argv_override("experiment")
    if "experiment" in refused_groups(config_name) and preset and preset.partition("=")[2] not in ("", "null"):
        # a preset is a sweep of its own; composed under this entry's config, the entry's keys and sweep override
        # and extend it (e.g. the grid's beta axis beside Fig. 3's ratio axis: 100 jobs, not 20)
        return (f"{preset}: a preset is a sweep of its own, which experiments.{config_name}'s settings would "
                f"change; run python -m experiments.transfer {preset.lstrip('+')}")
    for group in GROUPS:  # a list is Hydra's multi-select, which merges the options in order:
        typed = argv_override(group)  # painting=[starry_night,the_scream] ran The Scream alone, silently
        value = typed.partition("=")[2] if typed else ""
        if value.startswith("["):
            return f"{typed}: one {group} per job; sweep them with -m {group}={value.strip('[]')}"
    style, painting = argv_override("style"), argv_override("painting")
    if style and painting:  # experiment=paper_fig2 sweeps painting: typed for its jobs
        return (f"{style} would replace {painting}'s image, while its ratio and its name in the report stay; give "
                "one of them (ratio=... with style=)")
    subdir = argv_override("hydra.sweep.subdir")
    if subdir:  # resume, the report and the exit status find a sweep's jobs by these names (nst/sweep.py)
        return (f"{subdir}: a sweep's job directories are named from their swept values (resume and the report "
                "find them by these names); choose where the sweep goes with hydra.sweep.dir")
    return None


def is_bad_input(error: BaseException) -> bool:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    return isinstance(error, (HydraException, OmegaConfBaseException, OSError, *bad_input()))


def wrong_type(key: str, cause: BaseException) -> str | None:
    """A value the schema's type refuses, as our rules word it: `steps 1.5 must be an integer >= 0`."""
    converted = re.search(r"Value '(.*?)' (?:of type '(\w+)' )?could not be converted to (\w+)", str(cause)) \
        or re.search(r"Value '(.*?)' (?:of type '(\w+)' )?is not a valid (bool)", str(cause))
    if not converted or (key not in FIELDS and not key.startswith("optimizer.")):
        return None
    typed = argv_override(key)  # as typed, unless a sweep's: then the job's value that failed
    text = typed.partition("=")[2] if typed and "," not in typed else converted.group(1)
    try:
        float(text)
        shown = text
    except ValueError:
        shown = repr(text.strip("'\""))
    kind = converted.group(3).capitalize().replace("Bool", "Boolean")
    if kind == "Boolean":
        return f"{key} {shown} must be true or false"
    if kind not in TYPES:
        return None
    rule = number_rule(key)
    why = expectation(**rule) if rule["low"] is not None else f"must be {TYPES[kind]}" + (
        " or null" if rule["null"] else "")
    return f"{key} {shown} {why}"


def describe_hydra_error(error: BaseException) -> str:
    """Hydra's and OmegaConf's errors in one line."""
    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    text = str(error)
    if isinstance(error, ConfigError):  # ours (e.g. a launcher setting): already `<key> <value> <why>`
        return first_line(error)
    if isinstance(error, MissingConfigException):
        missing = error.missing_cfg_file or ""
        group, _, option = missing.rpartition("/")
        typed = argv_override(group) if group else None
        if group and error.options:
            hint = [o for o in error.options if o.lower() == option.lower()] \
                or difflib.get_close_matches(option, list(error.options), n=1)
            return (f"{typed or f'{group}={option}'}: no such option in conf/{group}/; one of "
                    f"{', '.join(sorted(o for o in error.options if not o.startswith('_')))}"
                    + (f"; did you mean {hint[0]}?" if hint else ""))
        return first_line(error)
    if "Config group override must be a string or a list. Got NoneType" in text:  # painting=null
        typed = next((a for a in sys.argv[1:] if re.fullmatch(r"[+~]?\w+=(null|None|~)?", a)
                      and a.lstrip("+~").partition("=")[0] in GROUPS), None)
        group = typed.lstrip("+~").partition("=")[0] if typed else "a config group"
        return f"{typed or 'a config group'}: a config group takes one of its options, not null; leave {group} out " \
               "for none (its default)"
    multiple = re.match(r"Multiple values for (\w+)\. To override", text)
    if multiple:  # +experiment=paper_fig2: the group is in the defaults list already (as null)
        typed = argv_override(multiple.group(1)) or multiple.group(1)
        return f"{typed}: {multiple.group(1)} is in the config already; give {typed.lstrip('+')} (without the +)"
    ambiguous = re.match(r"Ambiguous value for argument '(([^=']+)=([^']*))'", text)
    if isinstance(error, ConfigCompositionException) and ambiguous:  # Hydra's three-line advice, in one
        override, key, values = ambiguous.groups()
        if sweep.looks_like_a_file(values) and Path(values).expanduser().exists():  # one file, a comma in its name
            return (f"{override}: a file name with a comma needs Hydra's quotes, inside the shell's: "
                    f"{sweep.hydra_quoted(key, values)}")
        return (f"{override}: a comma list is a sweep, which needs -m (python -m experiments."
                f"{Path(sys.argv[0]).stem} -m ... {override}); a list value is {key}=[{values}]")
    if isinstance(error, ConfigCompositionException):
        cause = error.__cause__
        override = re.search(r"Could not override '([^']+)'", text)
        merging = re.search(r"Error merging override ([^=\s]+)=", text)
        delete = re.search(r"Could not delete from config\. '([^']+)' does not exist", text)
        launcher = re.search(r"not in '(\w+LauncherConf)'", str(cause or ""))
        if override and override.group(1).startswith("hydra.launcher.") and launcher:
            typed = argv_override(override.group(1)) or override.group(1)
            return (f"{typed}: not a setting of this launcher ({launcher.group(1)}); choose the launcher that has "
                    "it first, e.g. hydra/launcher=batched (conf/hydra/launcher/: batched, parallel, local, slurm)")
        if override and re.search(r"not in struct|not in '\w+Config'", str(cause or "")) or delete:
            key = (override or delete).group(1)
            typed = argv_override(key) or key
            hint = difflib.get_close_matches(key, KNOWN_KEYS, n=1)
            return f"{typed}: unknown key {key}" + (f"; did you mean {hint[0]}?" if hint else "")
        if merging and cause is not None:
            mistyped = wrong_type(merging.group(1), cause)
            if mistyped:
                return mistyped
        cause_text = first_line(cause) if cause else ""
        return first_line(error) + (f": {cause_text}" if cause_text and cause_text not in text else "")
    unknown = re.search(r"Error in call to target '([\w.]+)':\s*TypeError\(.*unexpected keyword argument '(\w+)'", text,
                        re.S)
    if unknown and "hydra_plugins" in unknown.group(1):  # `+hydra.launcher.<typo>=...`: the launcher's __init__
        key = f"hydra.launcher.{unknown.group(2)}"
        typed = argv_override(key)
        return f"{typed or key}: not a setting of this launcher ({unknown.group(1).rpartition('.')[2]})"
    if isinstance(error, OverrideParseException):
        override = getattr(error, "override", None) or ""
        key, _, value = override.partition("=")
        if re.search(r"(^|[\[,(])\s*~", value):  # bash left it unexpanded (quoted, or in a list): Hydra's grammar
            # has no bare ~: quote each ~ path where it was typed (a list [a,~/b], a sweep a,~/b)
            quoted = re.sub(r"(^|[\[,(])\s*(~[^,\])]*)", r"\1'\2'", value)
            return f"{override}: a path starting with ~ needs Hydra's quotes: \"{key}={quoted}\" (or, for one path, " \
                   "no quotes at all, for bash to expand it)"
        if sweep.looks_like_a_file(value):  # `=`, `'`, a space or a letter such as é: Hydra's grammar wants quotes
            return f"cannot parse the override {override!r}: a file name with such characters needs Hydra's quotes " \
                   f"around the value, inside the shell's: {sweep.hydra_quoted(key, value)}"
        return f"cannot parse the override {override!r}: {first_line(error)}" if override else first_line(error)
    if isinstance(error, OmegaConfBaseException):
        key = getattr(error, "full_key", None)
        mistyped = wrong_type(str(key), error) if key else None
        if mistyped:  # a preset's YAML, or a value set in a group's option
            return mistyped
        msg = re.sub(r"^\w+ raised while resolving interpolation: ", "", str(error).splitlines()[0] if text else "")
        return f"{key}: {msg}" if key and key not in msg else msg
    if isinstance(error, OSError) and error.filename is not None:
        for key in ("hydra.run.dir", "hydra.sweep.dir"):
            typed = argv_override(key)
            if typed and str(error.filename).startswith(typed.partition("=")[2].rstrip("/")):
                break
        else:
            typed = None
        why = error.strerror or type(error).__name__
        what = "write" if write_error(error) else "create the output directory"
        if typed:
            return f"{typed}: cannot {what} {str(error.filename)!r}: {why}"
        return (f"cannot create {str(error.filename)!r}: {why} (the output directory is set by hydra.run.dir, "
                "or hydra.sweep.dir with -m)")
    return f"{type(error).__name__}: {first_line(error)}"

