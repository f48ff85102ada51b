"""`--help` of the entry points, as Hydra's help template (`hydra.help.template: ${nst_help:}` in conf/): what the
command runs, a sweep entry's axes, the config groups it accepts, and every key with its value and the comment
conf/ writes beside it."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import conf
from experiments.errors import refused_groups

CONF = Path(conf.__file__).parent
KEY_LINE = re.compile(r"^(?P<key>[A-Za-z_]\w*):[^#]*?(\s#\s*(?P<note>.*))?$")  # `size: 128   # long side ...`
GROUP_LINE = re.compile(r"^\s+-\s+(?:override\s+)?(?P<group>[\w/]+):[^#]*?(\s#\s*(?P<note>.*))?$")  # defaults


def notes(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """({top-level key: its end-of-line comment}, {config group: the comment on its defaults line}) of a file."""
    keys, groups = {}, {}
    for line in path.read_text().splitlines() if path.is_file() else []:
        for pattern, found in ((KEY_LINE, keys), (GROUP_LINE, groups)):
            m = pattern.match(line)
            if m and m["note"]:
                found.setdefault(m["key" if pattern is KEY_LINE else "group"], m["note"].strip())
    return keys, groups


def header(path: Path) -> str:
    """The comment block that opens a config file, without its `#`s, up to a line of `#` alone (below it: notes for
    who edits the file)."""
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#") or line.strip() == "#":
            break
        lines.append(line.lstrip("#").strip())
    return "\n".join(lines)


def sources(config_name: str) -> list[Path]:
    """The config files whose comments describe this entry's keys, its own first (conf/config.yaml for an entry
    that composes it)."""
    own = CONF / f"{config_name}.yaml"
    composes = config_name != "config" and re.search(r"^\s*-\s*config\s*$", own.read_text(), re.M)
    return [own, CONF / "config.yaml"] if composes else [own]


def shown(value: Any) -> str:
    """A value as it can be typed on the command line: null, true, "", [0, 1], 1000, 0.001."""
    if value is None:
        return "null"
    if value == "":
        return '""'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(v) for v in value) + "]"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return str(value)


def values(cfg: DictConfig, prefix: str = "") -> dict[str, str]:
    """{dotted key: its value as shown}: resolved where it resolves, else as written; `???` where required."""
    out = {}
    for key in cfg:
        name = f"{prefix}{key}"
        if OmegaConf.is_missing(cfg, key):
            out[name] = "??? (required)"
        elif isinstance(cfg._get_node(key), DictConfig):
            out |= values(cfg[key], f"{name}.")
        else:
            try:
                value = cfg[key]
                out[name] = shown(OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value)
            except Exception:  # an interpolation that needs a running job (e.g. ${hydra:...})
                out[name] = str(cfg._get_node(key)._value())
    return out


def text(root: DictConfig) -> str:
    """The help of the entry whose composed config (Hydra's included) is `root`."""
    config_name = root.hydra.job.config_name
    entry = "transfer" if config_name == "config" else config_name
    files = sources(config_name)
    runtime_choices = OmegaConf.select(root, "hydra.runtime.choices") or {}
    key_notes, group_notes = {}, {}
    for path in files:
        keys, groups = notes(path)
        key_notes, group_notes = keys | key_notes, groups | group_notes
    for group, option in runtime_choices.items():
        if option and "/" not in group:  # optimizer=lbfgs: its file's keys, as optimizer.lr ...
            key_notes |= {f"{group}.{k}": v for k, v in notes(CONF / group / f"{option}.yaml")[0].items()}
    sweep = root.hydra.mode is not None and str(root.hydra.mode).endswith("MULTIRUN")
    lines = [f"python -m experiments.{entry} [key=value ...]"
             + (" (a sweep: it always runs as -m)" if sweep else " (one job; -m key=a,b sweeps)"), "",
             header(files[0]), ""]
    axes = OmegaConf.select(root, "hydra.sweeper.params") or {}
    if axes:
        lines += ["== Sweep axes (one job per combination; key=a,b narrows an axis) ==",
                  *(f"  {k} = {v}" for k, v in axes.items()), ""]
    choices = {g: o for g, o in runtime_choices.items() if "/" not in g and g not in refused_groups(config_name)}
    if choices:
        lines.append("== Config groups (group=option) ==")
        for group, option in choices.items():
            options = sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))
            lines.append(f"  {group:<10} = {shown(option):<8} {group_notes.get(group, '')}".rstrip())
            lines.append(f"      options: {', '.join(options)}")
        lines.append("")
    shown_values = values(OmegaConf.masked_copy(root, [k for k in root if k != "hydra"]))
    width = min(28, max(len(k) for k in shown_values)) if shown_values else 0
    lines.append("== Keys (key=value) ==")
    for key, value in shown_values.items():
        note = key_notes.get(key, "")
        value = value if len(value) <= 40 else "…" + value[-39:]  # a long path: its end says what it is
        lines.append(f"  {key:<{width}} = {value:<18} {note}".rstrip())
    lines += ["", "Hydra's own flags: --hydra-help; the composed config: --cfg job; docs/configuration.md"]
    return "\n".join(lines).replace("$", "$$")  # Hydra passes the text through string.Template
