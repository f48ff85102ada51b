"""The job config's schema: every key of a job, its type and its role, and the rules its values obey.

Hydra type-checks conf/*.yaml and command-line overrides against `JobConfig` (registered in its ConfigStore by
experiments/config.py and listed first in conf/config.yaml's defaults) and refuses unknown keys. The values and
their one-line meanings are in conf/config.yaml. Field metadata says what a key is; every list of keys elsewhere
(a job's identity, paths, sweep axes, report columns, figure labels) is derived from it here:

  identity  part of a job's identity (resume compares it, a job directory's name holds it); default True
  path      a file system path (`~` is expanded)
  input     the path of a file the job reads, unless the value is one of `names`: its bytes are compared, not
            its path
  axis      may be a sweep's axis in its report when typed for every job alike; default True
  report    the place of its column among those every report shows (what tells concatenated sweeps apart)
  column    its report column, where the key's name is taken by a metric
  label     how figures name it
  columns   its preference as the column axis of the pivots and the grid (0 first)
  layers    a set of layers (text in the report, beside its layers' names)
  choices   the library registry ("module:NAME") that holds its named values (nst/preflight.py checks them)
  low, high, strict   its range (`check`)
  optimisation  used by the optimisation only (a feed-forward method, nst/universal.py, has none)
  earlier   for a key added later: the value that a record written before it existed ran with (`EARLIER`)

`check(config, typed)` applies the ranges and the cross-field rules to a resolved config (a plain dict); the
named values (held by the library's registries) and the checks that read files or build the network are
nst/preflight.py's. This module imports nothing of the library, and no torch.
"""
from __future__ import annotations

import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Optional

# the weights that name no file (nst.vgg.ORIGINAL, NORMALIZED; nst.backbones.RANDOM, PRETRAINED); and the starts
# (nst.spec.INITS): values of `weights` and `init` that are names, not paths (tests/test_config.py checks they agree)
NAMED_WEIGHTS = ("original", "normalized", "random", "pretrained")
NAMED_INITS = ("noise", "content", "style")


def key(*, identity: bool = True, path: bool = False, names: tuple = (), input: bool = False, axis: bool = True,
        report: int | None = None, column: str | None = None, label: str | None = None, columns: int | None = None,
        layers: bool = False, low: float | None = None, high: float | None = None, strict: bool = False,
        choices: str | None = None, earlier: Any = MISSING, optimisation: bool = False) -> Any:
    """A schema field without a default (conf/config.yaml gives it) and with its role as metadata."""
    meta = {"identity": identity, "path": path, "names": names, "input": input, "axis": axis, "report": report,
            "column": column, "label": label, "columns": columns, "layers": layers, "low": low, "high": high,
            "strict": strict, "choices": choices, "earlier": earlier, "optimisation": optimisation}
    return field(default=MISSING, metadata=meta)


@dataclass
class OptimizerConfig:
    """conf/optimizer/: the optimiser and its settings."""

    name: str = key(choices="nst.engine:OPTIMIZERS")
    lr: float = key(low=0, strict=True)
    history_size: int = key(low=0)  # >= 1 under L-BFGS (check)
    line_search: Optional[str] = key(choices="nst.engine:LINE_SEARCHES")


@dataclass
class JobConfig:
    """One job's config, in conf/config.yaml's order."""

    content: str = key(path=True, input=True)
    style: Any = key(path=True, input=True)  # a path or a list of paths
    style_blend: Any = key()  # null or one weight per style image
    images_root: str = key(path=True, identity=False, axis=False)
    size: int = key(low=1, axis=False, report=2, columns=5)
    style_scale: Optional[float] = key(low=0, strict=True, high=16, columns=3)
    steps: int = key(low=0, axis=False, optimisation=True)
    multiscale: Any = key()  # null or [[size, steps], ...] (a feed-forward method runs at its last size)
    alpha: float = key(low=0, report=5, label="α", columns=2)
    beta: float = key(low=0, report=6, label="β", columns=0)
    ratio: Optional[float] = key(low=0, strict=True, report=7, label="α/β", columns=1)
    content_layers: Any = key(layers=True, report=8, label="content layers")
    style_layers: Any = key(layers=True, report=9, label="style layers")
    style_layer_weights: Any = key()  # null or one weight per style layer
    loss: str = key(report=4, choices="nst.losses:CONVENTIONS")
    tap: Optional[str] = key(choices="nst.features:TAPS")
    # its report column is not "style_loss": that is the metric; its label not "loss": that is the convention's
    style_loss: str = key(report=10, column="style_loss_fn", label="style loss", choices="nst.style_losses:STYLE_LOSSES")
    tv_weight: float = key(low=0, columns=4)
    preserve_color: Optional[str] = key(choices="nst.color:MODES")
    method: str = key(report=11, choices="nst.spec:METHODS", earlier="gatys")
    wct_alpha: Any = key(label="WCT α", earlier=1.0)  # a number in [0, 1] or one per level (check)
    wct_levels: Any = key(label="WCT levels", earlier=None)  # null or relu{L}_1 levels, 1..5 (check)
    decoders: Optional[str] = key(path=True, earlier=None)  # a directory; its files are inputs (input_files)
    arch: str = key(report=0)
    weights: str = key(path=True, input=True, names=NAMED_WEIGHTS, report=1)
    pooling: str = key(choices="nst.backbones:POOLINGS")
    init: str = key(path=True, input=True, names=NAMED_INITS, optimisation=True)
    # our bound: the noise is around mid-grey in [0, 1] pixel units, so a std of 1 already saturates most pixels once
    # clamped; at 1e9 the first evaluation overflowed fp32 and the job failed as "loss became nan"
    noise_std: float = key(low=0, high=10, optimisation=True)
    seed: int = key(report=3, optimisation=True)  # 0 <= seed < 2**64 (check)
    device: str = key(axis=False)
    precision: str = key(choices="nst.run:PRECISIONS")
    # `threads` changes the rounding (docs/configuration.md), not the experiment
    threads: Optional[int] = key(low=1, identity=False, axis=False)
    progress: bool = key(identity=False, axis=False)
    max_pixels: float = key(low=1, identity=False)  # a budget, not a size: 1e8 as typed is fine
    optimizer: OptimizerConfig = key(optimisation=True)


FIELDS = {f.name: f for f in fields(JobConfig)}
OPTIMIZER_FIELDS = {f.name: f for f in fields(OptimizerConfig)}


def meta(name: str) -> Mapping[str, Any]:
    """A key's metadata (`optimizer.lr` for the optimizer's)."""
    group, _, sub = name.partition(".")
    return OPTIMIZER_FIELDS[sub].metadata if group == "optimizer" and sub else FIELDS[name].metadata


def keys(**wanted: Any) -> tuple[str, ...]:
    """The keys whose metadata has these values, in the schema's order: keys(identity=False), keys(path=True)."""
    return tuple(n for n, f in FIELDS.items() if all(f.metadata[k] == v for k, v in wanted.items()))


def ranked(role: str) -> list[str]:
    """The keys with a rank for `role` ("report", "columns"), in rank order."""
    named = [n for n, f in FIELDS.items() if f.metadata[role] is not None]
    return sorted(named, key=lambda n: FIELDS[n].metadata[role])


EARLIER = {n: f.metadata["earlier"] for n, f in FIELDS.items() if f.metadata["earlier"] is not MISSING}
NOT_IDENTITY = keys(identity=False)  # left out of the resume comparison and of job directory names
NOT_AXES = keys(axis=False)  # set on a command line, never an axis of a sweep's report or figures
PATHS = keys(path=True)  # where `~` means the home directory
LAYER_KEYS = keys(layers=True)


def column(name: str) -> str:
    """The report column of a config key."""
    return (FIELDS[name].metadata["column"] if name in FIELDS else None) or name


def label(col: str) -> str:
    """How figures name a report column's key (`β`), else the column's name."""
    found = next((f.metadata["label"] for n, f in FIELDS.items() if column(n) == col), None)
    return found or col


def names_column(name: str) -> str:
    """The report column of a layer set's names: content_layers -> content_layer_names."""
    return f"{name.removesuffix('s')}_names"


def names_input_file(name: str, value: Any) -> bool:
    """Whether a config value is the path of an input file (nst.inputs.input_files fingerprints them by role)."""
    m = FIELDS[name].metadata if name in FIELDS else None
    return bool(m and m["input"]) and value not in m["names"]


def expand_paths(config: dict[str, Any]) -> dict[str, Any]:
    """config with `~` expanded in its path values (a quoted '~/x.png' reaches us unexpanded; bash expands
    content=~/x only unquoted); other values of these keys (init=noise, weights=original) are left as they are."""
    def expand(v: Any) -> Any:
        return os.path.expanduser(v) if isinstance(v, str) else [expand(x) for x in v] if isinstance(v, list) else v

    return {k: expand(v) if k in PATHS else v for k, v in config.items()}


# ------------------------------------------------------------------------------------------ the rules

class ConfigError(ValueError):
    """A config value that the job cannot run with; the message is one line naming the key and the value."""


def show(value: Any) -> str:
    """A value as messages quote it: null, true, [a,b], 'text', 1e-05."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


class Check:
    """A config being checked, with the text the user typed for each key (Hydra's task overrides), so that
    messages quote what was typed (`beta 1e4`, not `beta 10000.0`)."""

    def __init__(self, config: Mapping[str, Any], typed: Mapping[str, str] | None = None):
        self.cfg, self.typed = config, dict(typed or {})

    def get(self, name: str) -> Any:
        if name in self.cfg:  # a dotted key held as one (check_number("hydra.launcher.n_jobs", ...))
            return self.cfg[name]
        node: Any = self.cfg
        for part in name.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node

    def shown(self, name: str, value: Any = ...) -> str:
        """`key value`, the value as typed (quoted when it is text), else as the config holds it."""
        own = value is ...  # the key's whole value (else a part of it, e.g. one path of a list)
        value = self.get(name) if own else value
        text = self.typed.get(name) if own else None
        if text is None or "${" in text:
            text = show(value)
        elif isinstance(value, str):
            text = repr(text.strip("'\"")) if value != "" else "''"
        return f"{name} {text}"

    def fail(self, name: str, why: str, value: Any = ...) -> ConfigError:
        return ConfigError(f"{self.shown(name, value)} {why}")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def suggest(word: str, choices: list[str]) -> str:
    """"; did you mean x?" for a near miss, else ""."""
    same_but_case = [c for c in choices if c.lower() == word.lower()]  # BF16, VGG19: too far apart for difflib
    close = same_but_case or difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]}?" if close else ""


def expectation(*, low: float | None = 0.0, high: float | None = None, strict: bool = False, integer: bool = False,
                null: bool = False) -> str:
    """What a number must be, as messages say it: "must be an integer >= 1 or null"."""
    text = "must be " + ("an integer" if integer else "a finite number")
    if low is not None:
        text += f" > {low:g}" if strict else f" >= {low:g}"
    text += f" and <= {high:g}" if high is not None else ""
    return text + (" or null" if null else "")


def number_rule(name: str) -> dict[str, Any]:
    """A numeric key's rule from its annotation and metadata: low, high, strict, integer, null."""
    f = FIELDS.get(name) or OPTIMIZER_FIELDS[name.partition(".")[2]]
    kind = str(f.type)
    return {"low": f.metadata["low"], "high": f.metadata["high"], "strict": f.metadata["strict"],
            "integer": "int" in kind, "null": kind.startswith("Optional")}


def check_number(c: Check, name: str, *, low: float | None = 0.0, high: float | None = None, strict: bool = False,
                 integer: bool = False, null: bool = False) -> None:
    value = c.get(name)
    if value is None and null:
        return
    ok = is_int(value) if integer else is_number(value)
    ok = ok and (low is None or (value > low if strict else value >= low)) and (high is None or value <= high)
    if not ok:
        raise c.fail(name, expectation(low=low, high=high, strict=strict, integer=integer, null=null))


def number(name: str, value: Any, **rule: Any) -> None:
    """One number outside a job's config (a resolver's argument, a launcher's setting), checked and worded as
    `check` does; the rule is the schema's for a schema key."""
    check_number(Check({name: value}), name, **(rule or number_rule(name)))


def choice(c: Check, name: str, choices: tuple | list, *, null: bool = False) -> None:
    value = c.get(name)
    if value is None and null or value in choices and isinstance(value, (str, type(None))):
        return
    names = [str(x) for x in choices if x is not None] + (["null"] if null or None in choices else [])
    raise c.fail(name, f"is not one of {' | '.join(names)}" + (suggest(value, names) if isinstance(value, str) else ""))


def as_tuple(value: Any) -> tuple:
    """A config value that may be null, one item or a list -> a tuple."""
    return () if value is None else tuple(value) if isinstance(value, (list, tuple)) else (value,)


def weights_list(c: Check, name: str, count: int | None, what: str, *, nonzero: bool = False) -> None:
    """A list of weights >= 0 (one item or null allowed), `count` of them when given, not all 0 when `nonzero`."""
    value = list(as_tuple(c.get(name)))
    if not value:
        return
    if not all(is_number(v) and v >= 0 for v in value):
        raise c.fail(name, f"must be a list of finite numbers >= 0 (one per {what}) or null")
    if nonzero and sum(value) <= 0:
        raise c.fail(name, f"weights are all 0: at least one {what} needs a weight > 0")
    if count is not None and len(value) != count:
        raise c.fail(name, f"has {len(value)} weight{'s' * (len(value) != 1)} for {count} {what}"
                           f"{'s' * (count != 1)}; give one per {what} or null")


# torch.manual_seed takes -2**63 <= seed too, but wraps a negative seed to 2**64 + seed: seed=-1 and
# seed=18446744073709551615 were two jobs with one noise (and other tools read -1 as "random")
SEED_RANGE = (0, 2 ** 64)


def check(config: Mapping[str, Any], typed: Mapping[str, str] | None = None) -> Check:
    """The rules of a resolved config (a plain dict, no `hydra` key): its keys, their ranges and the rules between
    keys; raises ConfigError on the first broken one. Returns the Check (nst/preflight.py goes on from it: the
    named values, which the library's registries hold, then the files and the network)."""
    c = Check(config, typed)
    unknown = [k for k in config if k not in FIELDS]
    if unknown:
        raise c.fail(unknown[0], "is not a config key" + suggest(unknown[0], list(FIELDS)))
    missing = [k for k in FIELDS if k not in config]
    if missing:
        raise ConfigError(f"{missing[0]} is missing from the config")
    opt = c.get("optimizer")
    if not isinstance(opt, Mapping):
        raise c.fail("optimizer", "must be a config group: optimizer=lbfgs or optimizer=adam")
    extra = sorted(set(opt) - set(OPTIMIZER_FIELDS))
    if extra:
        raise c.fail(f"optimizer.{extra[0]}", f"is not an optimizer key ({', '.join(OPTIMIZER_FIELDS)})")

    for name in (*FIELDS, *(f"optimizer.{k}" for k in OPTIMIZER_FIELDS)):  # ranges, in the schema's order
        if meta(name)["low"] is not None:
            rule = number_rule(name)
            if name == "optimizer.history_size" and opt.get("name") == "lbfgs":
                rule["low"] = 1
            check_number(c, name, **rule)
    seed = c.get("seed")
    if not is_int(seed):
        raise c.fail("seed", "must be an integer (e.g. 0)")
    if seed < SEED_RANGE[0]:
        raise c.fail("seed", "must be >= 0: every run is seeded (no random seed); sweep seeds with seed=0,1,2")
    if seed >= SEED_RANGE[1]:
        raise c.fail("seed", "is out of torch.manual_seed's range, 0 <= seed < 2**64")
    if not isinstance(c.get("progress"), bool):
        raise c.fail("progress", "must be true or false")
    if "optimizer.name" in c.typed:  # it would keep the other group's lr (Adam at L-BFGS's 1.0) and settings
        raise c.fail("optimizer.name", f"switches the optimizer without its settings; give optimizer={opt['name']} "
                                       "(conf/optimizer/: its lr, history_size and line_search)")
    device = c.get("device")
    if device != "auto" and not (isinstance(device, str) and _device_name(device)):
        raise c.fail("device", "is not one of auto | cpu | cuda | cuda:N")
    if not isinstance(c.get("images_root"), str):
        raise c.fail("images_root", "must be a directory path")
    _multiscale(c)

    if c.get("ratio") is not None and "beta" in c.typed:  # else a beta typed or swept beside a preset's ratio is lost
        raise c.fail("beta", f"has no effect while {c.shown('ratio')} is set (beta = alpha / ratio); give one of "
                     "them (ratio=null to use beta)")
    content_layers, style_layers = (_layers(c, k) for k in LAYER_KEYS)
    weights_list(c, "style_layer_weights", len(style_layers) if style_layers else None, "style layer")
    alpha, ratio = c.get("alpha"), c.get("ratio")
    beta = alpha / ratio if ratio is not None else c.get("beta")
    if not content_layers and not style_layers:
        raise ConfigError(f"{c.shown('content_layers')} and {c.shown('style_layers')}: no layers, nothing to "
                          "optimise; give content or style layers")
    if (alpha == 0 or not content_layers) and (beta == 0 or not style_layers) and c.get("tv_weight") == 0:
        parts = [c.shown("alpha") if content_layers else c.shown("content_layers")]
        parts.append((c.shown("beta") if ratio is None else f"{c.shown('ratio')} (beta = alpha / ratio = 0)")
                     if style_layers else c.shown("style_layers"))
        raise ConfigError(f"{' and '.join(parts)}: every loss term is weighted 0, nothing to optimise; "
                          "set alpha > 0 for content or beta > 0 for style")
    styles = as_tuple(c.get("style"))
    if style_layers and not styles:
        raise c.fail("style", "is empty: style_layers need at least one style image")
    if not all(isinstance(s, str) for s in styles):
        raise c.fail("style", "must be an image path or a list of image paths")
    weights_list(c, "style_blend", len(styles) if style_layers else None, "style image", nonzero=True)
    _universal(c)
    init = c.get("init")
    if init == "style" and not style_layers:
        raise c.fail("init", "needs style layers (the style image is read only for them); use noise or content")
    return c


LEVELS = (1, 2, 3, 4, 5)  # nst.decoder.LEVELS: relu1_1 ... relu5_1


def _universal(c: Check) -> None:
    """wct_levels: null or distinct levels 1..5; wct_alpha: one number in [0, 1] or one per level."""
    levels = c.get("wct_levels")
    if levels is not None:
        value = list(as_tuple(levels))
        if not value or not all(is_int(v) and v in LEVELS for v in value) or len(set(value)) < len(value):
            raise c.fail("wct_levels", "must be null (every level with a decoder) or a list of distinct levels "
                                       "1..5 (relu1_1 ... relu5_1), e.g. [1,2,3]")
    alpha = list(as_tuple(c.get("wct_alpha")))
    if not alpha or not all(is_number(a) and 0 <= a <= 1 for a in alpha):
        raise c.fail("wct_alpha", "must be a number in [0, 1] or a list of them, one per level")
    if len(alpha) > 1 and c.get("method") != "gatys" and (levels is None or len(alpha) != len(as_tuple(levels))):
        raise c.fail("wct_alpha", f"has {len(alpha)} values for {c.shown('wct_levels')}: give one number, or one per "
                                  "level with wct_levels listed")


def _device_name(name: str) -> bool:
    kind, _, index = name.partition(":")
    return kind in ("cpu", "cuda") and (not index or index.isdigit()) and not (kind == "cpu" and index)


def _multiscale(c: Check) -> None:
    plan = c.get("multiscale")
    if plan is None:
        return
    example = "a list of [size, steps] pairs, e.g. [[128,200],[256,100]]"
    if not isinstance(plan, list) or not plan:
        raise c.fail("multiscale", f"must be {example}, or null")
    for pair in plan:
        if not isinstance(pair, list) or len(pair) != 2 or not all(is_int(v) for v in pair):
            raise c.fail("multiscale", f"holds {show(pair)}: must be {example}")
        if pair[0] < 1 or pair[1] < 0:
            raise c.fail("multiscale", f"holds {show(pair)}: size must be >= 1 and steps >= 0")
    sizes = [p[0] for p in plan]
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise c.fail("multiscale", f"has sizes {show(sizes)}: sizes must increase (coarse to fine)")


def _layers(c: Check, name: str) -> list:
    value = list(as_tuple(c.get(name)))
    for layer in value:
        if isinstance(layer, bool) or not isinstance(layer, (int, str)) or layer == "":
            raise c.fail(name, f"holds {show(layer)}: each layer is a conv index (0, 1, ...) or a layer name")
    twice = [layer for k, layer in enumerate(value) if layer in value[:k]]
    if twice:
        raise c.fail(name, f"names {show(twice[0])} twice: list each layer once (weigh it with style_layer_weights)")
    return value
