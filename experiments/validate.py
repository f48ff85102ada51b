"""One validation layer: every key of a job's resolved config is checked once, before an image is decoded or a
tensor allocated, and the first bad one raises a ConfigError whose message is one line,
`<key> <value as typed> <why / what is accepted>`.

`validate(cfg, typed)` takes the resolved config as a plain dict (no `hydra` key); `typed` maps a key to the text
the user gave on the command line (Hydra's task overrides), so that messages quote what was typed (`beta 1e4`,
not `beta 10000.0`). Cheap checks of what the job will read: image files are opened for their header only
(size, Pillow's decompression-bomb limit), a weights file is loaded memory-mapped and compared tensor by tensor
with the architecture built on the meta device, and layers are resolved on that same weightless network.
Warnings (an image upscaled 3x or more) go to the `nst` logger.
"""
from __future__ import annotations

import difflib
import logging
import math
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nst.efficientnet import ARCH as EFFICIENTNET
from nst.efficientnet import PRETRAINED
from nst.images import fit_long_side
from nst.run import PRECISIONS
from nst.spec import INITS, as_tuple
from nst.vgg import NORMALIZED, ORIGINAL

log = logging.getLogger("nst")

MAX_PIXELS = 4_194_304  # default of `max_pixels` (2048 x 2048) when a config lacks the key
UPSCALE_WARNING = 3.0   # an image upscaled by this factor or more gets a warning
POOLINGS = ("max", "avg")
LINE_SEARCHES = ("strong_wolfe", None)
# torch.manual_seed takes -2**63 <= seed too, but wraps a negative seed to 2**64 + seed: seed=-1 and
# seed=18446744073709551615 were two jobs with one noise (and other tools read -1 as "random")
SEED_RANGE = (0, 2 ** 64)
BUILT_IN = (ORIGINAL, NORMALIZED)  # VGG19 weights that need no file


class ConfigError(ValueError):
    """A config value that the job cannot run with; the message is one line naming the key and the value."""


class _Check:
    """The config being checked, with the typed text of each key for messages."""

    def __init__(self, cfg: Mapping[str, Any], typed: Mapping[str, str] | None):
        self.cfg, self.typed = cfg, dict(typed or {})

    def shown(self, key: str, value: Any = ...) -> str:
        """The value as the user typed it (quoted when it is text), else as the config holds it."""
        own = value is ...  # the key's whole value (else a part of it, e.g. one path of a list)
        value = self.get(key) if own else value
        text = self.typed.get(key) if own else None
        if text is None or "${" in text:
            text = _repr(value)
        elif isinstance(value, str):
            text = repr(text.strip("'\"")) if value != "" else "''"
        return f"{key} {text}"

    def get(self, key: str) -> Any:
        if key in self.cfg:  # a dotted key held as one (experiments.validate.number("hydra.launcher.n_jobs", ...))
            return self.cfg[key]
        node: Any = self.cfg
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        return node

    def fail(self, key: str, why: str, value: Any = ...) -> ConfigError:
        return ConfigError(f"{self.shown(key, value)} {why}")


def _repr(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_repr(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _suggest(word: str, choices: list[str]) -> str:
    same_but_case = [c for c in choices if c.lower() == word.lower()]  # BF16, VGG19: too far apart for difflib
    close = same_but_case or difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]}?" if close else ""


# ---------------------------------------------------------------------------------------------------- simple keys

def _number(c: _Check, key: str, *, low: float = 0.0, strict: bool = False, null: bool = False,
            integer: bool = False, high: float | None = None) -> None:
    value = c.get(key)
    if value is None and null:
        return
    kind = "an integer" if integer else "a finite number"
    bound = f"> {low:g}" if strict else f">= {low:g}"
    bound += f" and <= {high:g}" if high is not None else ""
    ok = (_is_int(value) if integer else _is_number(value)) and (value > low if strict else value >= low) \
        and (high is None or value <= high)
    if not ok:
        raise c.fail(key, f"must be {kind} {bound}" + (" or null" if null else ""))


def number(key: str, value: Any, **rules: Any) -> None:
    """One number outside a job's config (e.g. a resolver's argument), checked and worded as validate does."""
    _number(_Check({key: value}, None), key, **rules)


# Hydra's own launchers' settings: {launcher target prefix: {key: rules for `number`}}. Each failed after Hydra had
# written multirun.yaml over an earlier sweep's (joblib n_jobs=0 "has no meaning"; submitit timeout_min=0
# UncompletedJobError, tasks_per_node=0 IndexError with two tracebacks)
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
    c = _Check({f"hydra.launcher.{k}": v for k, v in launcher.items()}, typed)
    for prefix, rules in LAUNCHER_NUMBERS.items():
        if target.startswith(prefix):
            for key, rule in rules.items():
                if key in launcher:
                    _number(c, f"hydra.launcher.{key}", **rule)
    if target.startswith(JOBLIB):  # joblib said "prefer=foo is not a valid backend hint", naming no key
        _choice(c, "hydra.launcher.prefer", ("processes", "threads"), null=True)
        _choice(c, "hydra.launcher.backend", ("loky", "multiprocessing", "threading", "sequential"), null=True)
        n_jobs = launcher.get("n_jobs")
        if not _is_int(n_jobs) or n_jobs == 0:
            raise c.fail("hydra.launcher.n_jobs", "must be a nonzero integer (jobs at once; -1: one per core); by "
                                                  "default it is the cores divided by `threads`")


def _choice(c: _Check, key: str, choices: tuple | list, *, null: bool = False) -> None:
    value = c.get(key)
    if value is None and null or value in choices and isinstance(value, (str, type(None))):
        return
    names = [str(x) for x in choices if x is not None] + (["null"] if null or None in choices else [])
    hint = _suggest(value, names) if isinstance(value, str) else ""
    raise c.fail(key, f"is not one of {' | '.join(names)}{hint}")


def _bool(c: _Check, key: str) -> None:
    if not isinstance(c.get(key), bool):
        raise c.fail(key, "must be true or false")


def _weights_list(c: _Check, key: str, count: int | None, what: str, *, nonzero: bool = False) -> list[float] | None:
    """A list of weights >= 0 (one item or null allowed), `count` of them when given, not all 0 when `nonzero`."""
    value = list(as_tuple(c.get(key)))
    if not value:
        return None
    if not all(_is_number(v) and v >= 0 for v in value):
        raise c.fail(key, f"must be a list of finite numbers >= 0 (one per {what}) or null")
    if nonzero and sum(value) <= 0:
        raise c.fail(key, f"weights are all 0: at least one {what} needs a weight > 0")
    if count is not None and len(value) != count:
        raise c.fail(key, f"has {len(value)} weight{'s' * (len(value) != 1)} for {count} {what}"
                          f"{'s' * (count != 1)}; give one per {what} or null")
    return value


# ---------------------------------------------------------------------------------------------------- images

def image_header(c: _Check, key: str, path: Any, value: Any = ...) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(path, str) or path.strip() == "":
        raise c.fail(key, "is empty: give an image file path" if path == "" else "must be an image file path", value)
    p = Path(path)
    if p.is_dir():
        raise c.fail(key, "is a directory, not an image file", value)
    if not p.exists():
        raise c.fail(key, "does not exist (no such file)" + _download_hint(p), value)
    if not p.is_file():
        raise c.fail(key, "is not a regular file", value)
    limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                return img.size
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,} pixels, " if found else ""
        raise c.fail(key, f"is an image of {size}over Pillow's decompression-bomb limit of {limit:,} pixels "
                          "(2 x PIL.Image.MAX_IMAGE_PIXELS); refusing to decode it", value) from None
    except PermissionError:
        raise c.fail(key, "cannot be read (permission denied)", value) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise c.fail(key, f"is not an image Pillow can read ({type(e).__name__})", value) from None


def _download_hint(path: Path) -> str:
    """How to get the file when it is one of the paper's images (nst/fetch.py), else ""."""
    try:
        from nst.fetch import missing_hint
    except ImportError:
        return ""
    hint = missing_hint(path)
    return f"; {hint}" if hint else ""


def _upscale_warning(key: str, path: str, native: tuple[int, int], target: tuple[int, int], how: str) -> None:
    factor = max(target) / max(native)
    if factor >= UPSCALE_WARNING:
        log.warning("%s %r is %dx%d px, upscaled %.1fx to %dx%d (%s): expect a blurry result", key, path,
                    *native, factor, *target, how)


# ---------------------------------------------------------------------------------------------------- network

def _in_place(net: Any) -> Any:
    """Its ReLUs in place (the same shapes on the meta device): torch's out-of-place relu on meta imports
    torch._dynamo, 0.9 s at the start of every command that passed validation."""
    import torch

    for module in net.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = True
    return net


def structure(arch: str, weights: str, pooling: str):
    """The backbone nst.backbones.backbone would build, on the meta device (no memory, no weights); None if it
    cannot be built there."""
    import torch

    from nst.vgg import vgg19_features

    try:
        with torch.device("meta"):
            if arch == "vgg19" and weights != "random":
                return _in_place(vgg19_features(pooling=pooling if pooling in POOLINGS else "max"))
            if arch == EFFICIENTNET:
                from nst.efficientnet import efficientnet_lite0

                return efficientnet_lite0("random")
            import torchvision

            return torchvision.models.get_model(arch, weights=None)
    except Exception:  # an architecture that cannot be built on meta: the job's own errors apply
        return None


# our bound: the noise is around mid-grey in [0, 1] pixel units, so a std of 1 already saturates most pixels once
# clamped; at 1e9 the first evaluation overflowed fp32 and the job failed as "loss became nan"
NOISE_STD_BOUND = 10.0
BYTES_PER_PIXEL_BOUND = 16_384  # above any network's need here (VGG19, paper layers, L-BFGS history 100: ~5 KB)


def _memory(c: _Check, net: Any, layers: list, size: tuple[int, int], plan: list | None,
            content_layers: list) -> None:
    """Refuse up front a job whose estimated peak memory exceeds what its device has free (nst/memory.py)."""
    from nst.memory import available_mb, held_pairs, job_estimate_mb
    from nst.run import resolve_device

    try:
        device = resolve_device(c.get("device"))
    except ValueError:  # no CUDA here: the job's own error applies
        return
    free = available_mb(device)
    pixels = size[0] * size[1]
    if net is None or not layers or free is None or pixels * BYTES_PER_PIXEL_BOUND < free * 2**20:
        return  # nothing to estimate, or far from the limit (the estimate's first meta pass costs ~1-3 s)
    opt, steps = c.get("optimizer"), max(p[1] for p in plan) if plan else c.get("steps")
    need = job_estimate_mb(net, layers, size, tap=c.get("tap"), loss=c.get("loss"), optimizer=opt, steps=steps,
                           content_layers=content_layers)
    if need > free:
        raise c.fail("multiscale" if plan else "size",
                     f"gives a {size[0]}x{size[1]} image that needs an estimated {need / 1024:.1f} GiB on {device}, "
                     f"more than the {free / 1024:.1f} GiB available; use a smaller size, a smaller "
                     f"optimizer.history_size (each L-BFGS pair {12 * pixels / 2**20:.0f} MiB, {held_pairs(opt, steps)} kept) "
                     "or precision=bf16 (activations in half the memory)")


def _fits(c: _Check, key: str, net: Any, layers: dict[str, list], size: tuple[int, int], what: str,
          tap: str) -> None:
    """Refuse an image size at which a requested layer's feature map would be empty (after the network's pooling
    and strides), with a meta-device pass: nothing is computed. Before, the job failed at run time naming no key."""
    if net is None or min(size) >= TOO_SMALL_BOUND:
        return
    import torch

    from nst.features import Encoder, layer_key

    image = torch.empty(1, 3, size[1], size[0], device="meta")
    for layers_key, value in layers.items():
        for layer in value:
            try:
                _in_place(Encoder(net, [layer], tap))(image)  # the Encoder turns them off: it keeps conv outputs
            except RuntimeError:  # pooling: "Output size is too small"; a conv: "Kernel size can't be greater"
                name = f" ({layer_key(layer, net, tap)})" if isinstance(layer, int) else ""
                raise c.fail(key, f"gives a {size[0]}x{size[1]} {what}, too small for {layers_key} layer "
                                  f"{_repr(layer)}{name}: its feature map would be empty; use a larger size or "
                                  "shallower layers") from None


TOO_SMALL_BOUND = 256  # no image this size loses a feature map: VGG19's deepest layer is at 1/16, torchvision's at 1/32


GROUPS = ("optimizer", "backbone", "experiment", "painting")  # conf/config.yaml's config groups, one option each


def _groups(c: _Check) -> None:
    """The config groups as typed: one option each. A list is Hydra's multi-select, which merges the options in
    order: painting=[starry_night,the_scream] ran The Scream alone, silently."""
    for group in GROUPS:
        text = c.typed.get(group, "")
        if text.startswith("["):
            raise ConfigError(f"{group}={text}: one {group} per job; sweep them with -m {group}={text.strip('[]')}")
    if "style" in c.typed and "painting" in c.typed:  # experiment=paper_fig2 sweeps painting: typed for its jobs
        raise ConfigError(f"style={c.typed['style']} would replace painting={c.typed['painting']}'s image, while "
                          f"its ratio and its name in the report stay; give one of them (ratio=... with style=)")


def _layers(c: _Check, key: str, net: Any) -> list:
    value = list(as_tuple(c.get(key)))
    for layer in value:
        if isinstance(layer, bool) or not isinstance(layer, (int, str)) or layer == "":
            raise c.fail(key, f"holds {_repr(layer)}: each layer is a conv index (0, 1, ...) or a layer name")
    twice = [layer for k, layer in enumerate(value) if layer in value[:k]]
    if twice:
        raise c.fail(key, f"names {_repr(twice[0])} twice: list each layer once (weigh it with style_layer_weights)")
    if net is not None:
        from nst.features import resolve

        for layer in value:
            try:
                resolve(layer, net)
            except ValueError as e:
                raise c.fail(key, f"is not valid: {e}") from None
    return value


def _reached(c: _Check, net: Any, layers: dict[str, list], tap: str) -> None:
    """Refuse a layer whose module the network's (eval-mode) forward pass calls twice (a ResNet block's shared
    ReLU: which call a hook reads would depend on the other layers requested), never (googlenet's auxiliary
    heads), or whose output is no (N, C, H, W) feature map (a classifier layer: it ran, or failed with an
    IndexError, exit 1). One pass at 224 px on the meta device: nothing is computed."""
    import torch

    from nst.features import layer_key, resolve

    if net is None:
        return
    for key, value in layers.items():  # one layer as a name and as an index ([conv1_1,0] with tap conv): the job
        names = [layer_key(layer, net, tap) for layer in value]  # failed at run time, a sweep's alone
        for k, name in enumerate(names):
            if name in names[:k]:
                raise c.fail(key, f"names {name} twice ({value[names.index(name)]} and {value[k]}): "
                                  "list each layer once (weigh it with style_layer_weights)")
    modules = {(key, layer): resolve(layer, net, tap)[0] for key, value in layers.items() for layer in value}
    seen: dict[tuple, list[int]] = {k: [] for k in modules}
    handles = [module.register_forward_hook(
        lambda _m, _i, out, k=k: seen[k].append(out.dim() if isinstance(out, torch.Tensor) else 0))
        for k, module in modules.items()]
    training = net.training
    try:
        with torch.no_grad():
            net.eval()(torch.empty(1, 3, 224, 224, device="meta"))
    except Exception:  # a network that does not run on meta: the job's own errors apply
        return
    finally:
        net.train(training)
        for handle in handles:
            handle.remove()
    for (key, layer), outputs in seen.items():
        shown = _repr(layer) + (f" ({layer_key(layer, net, tap)})" if isinstance(layer, int) else "")
        if len(outputs) > 1:
            raise c.fail(key, f"names {shown}, a module the network calls {len(outputs)} times in one pass "
                              "(a ResNet block's shared ReLU): which output it means would depend on the other "
                              "layers; name the module before it (e.g. its bn2) or give a conv index")
        if not outputs:
            raise c.fail(key, f"names {shown}, which the network's forward pass never runs (in eval mode)")
        if outputs[0] != 4:
            raise c.fail(key, f"names {shown}, whose output is {outputs[0]}-D, not a feature map "
                              "(N, C, H, W): a classifier layer; give a convolutional layer")


def _weights(c: _Check, arch: str) -> None:
    key, value = "weights", c.get("weights")
    if value == "random":
        return
    if arch == EFFICIENTNET:  # no state_dict path: the trunk is ours, a file's keys would be the package's
        if value != PRETRAINED:
            hint = "" if "weights" in c.typed else f"; backbone={EFFICIENTNET} sets arch, weights and its layers"
            raise c.fail(key, f"is not one of {PRETRAINED} | random (arch={arch})"
                         + (_suggest(value, [PRETRAINED, "random"]) if isinstance(value, str) else "") + hint)
        return
    if value == PRETRAINED:
        raise c.fail(key, f"exist for {EFFICIENTNET} only; give arch={arch} "
                          + ("original, normalized" if arch == "vgg19" else "a state_dict path") + " or 'random'")
    if value in BUILT_IN:
        if arch != "vgg19":
            raise c.fail(key, f"exist for vgg19 only; give arch={arch} a state_dict path or 'random'")
        return
    if not isinstance(value, str) or value.strip() == "":
        raise c.fail(key, f"must be {' | '.join(BUILT_IN)} (vgg19), random or a state_dict file path")
    path = Path(value)
    if path.is_dir():
        raise c.fail(key, "is a directory, not a state_dict file")
    if not path.is_file():
        raise c.fail(key, f"does not exist: give a {arch} state_dict file, random or {' | '.join(BUILT_IN)} (vgg19)"
                     + _suggest(value, ["random", *BUILT_IN]))
    import torch

    try:  # memory-mapped: the tensors are not read; weights_only always (a weights file is never code)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a legacy (non-zip) torch.save file cannot be mapped; or not a torch file at all
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise c.fail(key, f"is not a state_dict file (torch.load with weights_only=True failed: "
                              f"{type(e).__name__}); give a file written by torch.save(model.state_dict())") from None
    if not isinstance(state, Mapping) or not state or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise c.fail(key, "is not a state_dict file (a dict of parameter names to tensors); give a file written "
                          "by torch.save(model.state_dict())")
    net = structure(arch, "random", "max")  # the torchvision architecture the file must fit
    if net is None:
        return
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if arch == "vgg19":  # nst.vgg.load_torchvision reads the conv layers (`features.*`) only
        expected = {k: s for k, s in expected.items() if k.startswith("features.")}
        found = {k: s for k, s in found.items() if k.startswith("features.")}
        unexpected: list[str] = []
    else:  # the classifier head is never run: a file may lack it or hold another shape (nst.backbones.head_keys)
        from nst.backbones import head_keys

        head = head_keys(net)
        expected = {k: s for k, s in expected.items() if k not in head}
        found = {k: s for k, s in found.items() if k not in head}
        unexpected = sorted(set(found) - set(expected))
    missing = sorted(set(expected) - set(found))
    wrong = sorted(k for k in set(expected) & set(found) if expected[k] != found[k])
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
    if wrong:
        k = wrong[0]
        problems.append(f"{len(wrong)} of another shape (e.g. {k}: {list(found[k])} in the file, "
                        f"{list(expected[k])} in {arch})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if problems:
        raise c.fail(key, f"do not fit {arch}: " + ", ".join(problems))


def _device(c: _Check) -> None:
    value = c.get("device")
    if value == "auto":
        return
    found = re.fullmatch(r"(cpu|cuda)(?::(\d+))?", value) if isinstance(value, str) else None
    if found is None:
        raise c.fail("device", "is not one of auto | cpu | cuda | cuda:N")
    if found.group(1) == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise c.fail("device", "requested but CUDA is not available (use device=auto or cpu)")
        count = torch.cuda.device_count()
        if found.group(2) is not None and int(found.group(2)) >= count:
            raise c.fail("device", f"does not exist: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")


def _optimizer(c: _Check) -> None:
    from nst.engine import OPTIMIZERS

    opt = c.get("optimizer")
    if not isinstance(opt, Mapping):
        raise c.fail("optimizer", "must be a config group: optimizer=lbfgs or optimizer=adam")
    extra = sorted(set(opt) - {"name", "lr", "history_size", "line_search"})
    if extra:
        raise c.fail(f"optimizer.{extra[0]}", "is not an optimizer key (name, lr, history_size, line_search)")
    _choice(c, "optimizer.name", OPTIMIZERS)
    if "optimizer.name" in c.typed:  # it would keep the other group's lr (Adam at L-BFGS's 1.0) and settings
        raise c.fail("optimizer.name", f"switches the optimizer without its settings; give optimizer={opt['name']} "
                                       "(conf/optimizer/: its lr, history_size and line_search)")
    _number(c, "optimizer.lr", strict=True)
    lbfgs = opt["name"] == "lbfgs"
    _number(c, "optimizer.history_size", low=1 if lbfgs else 0, integer=True)
    _choice(c, "optimizer.line_search", LINE_SEARCHES)


def _multiscale(c: _Check) -> list[tuple[int, int]] | None:
    plan = c.get("multiscale")
    if plan is None:
        return None
    example = "a list of [size, steps] pairs, e.g. [[128,200],[256,100]]"
    if not isinstance(plan, list) or not plan:
        raise c.fail("multiscale", f"must be {example}, or null")
    for pair in plan:
        if not isinstance(pair, list) or len(pair) != 2 or not all(_is_int(v) for v in pair):
            raise c.fail("multiscale", f"holds {_repr(pair)}: must be {example}")
        if pair[0] < 1 or pair[1] < 0:
            raise c.fail("multiscale", f"holds {_repr(pair)}: size must be >= 1 and steps >= 0")
    sizes = [p[0] for p in plan]
    if any(b <= a for a, b in zip(sizes, sizes[1:])):
        raise c.fail("multiscale", f"has sizes {_repr(sizes)}: sizes must increase (coarse to fine)")
    return [tuple(p) for p in plan]


# ---------------------------------------------------------------------------------------------------- validate

def validate(cfg: dict, typed: Mapping[str, str] | None = None) -> None:
    """Check every key of a job's resolved config (a plain dict without `hydra`); raise ConfigError on the first
    bad one. `typed`: {key: text as typed on the command line}, quoted in messages."""
    from nst.color import MODES as COLOR_MODES
    from nst.features import TAPS
    from nst.losses import CONVENTIONS, convention
    from nst.style_losses import STYLE_LOSSES

    c = _Check(cfg, typed)
    unknown = [k for k in cfg if k not in CHECKED]
    if unknown:
        raise c.fail(unknown[0], "is not a config key" + _suggest(unknown[0], list(CHECKED)))
    missing = [k for k in CHECKED if k not in cfg and k not in OPTIONAL]
    if missing:
        raise ConfigError(f"{missing[0]} is missing from the config")

    _groups(c)

    # the keys that need no file
    if "max_pixels" in cfg:
        _number(c, "max_pixels", low=1)  # a budget, not a size: 1e8 as typed is fine
    _number(c, "size", low=1, integer=True)
    _number(c, "style_scale", strict=True, high=16, null=True)
    _number(c, "steps", integer=True)
    plan = _multiscale(c)
    _number(c, "alpha")
    _number(c, "beta")
    _number(c, "ratio", strict=True, null=True)
    if c.get("ratio") is not None and "beta" in c.typed:  # else a beta typed or swept beside a preset's ratio is lost
        raise c.fail("beta", f"has no effect while {c.shown('ratio')} is set (beta = alpha / ratio); give one of "
                     "them (ratio=null to use beta)")
    _number(c, "tv_weight")
    _number(c, "noise_std", high=NOISE_STD_BOUND)
    seed = c.get("seed")
    if not _is_int(seed):
        raise c.fail("seed", "must be an integer (e.g. 0)")
    if seed < SEED_RANGE[0]:
        raise c.fail("seed", "must be >= 0: every run is seeded (no random seed); sweep seeds with seed=0,1,2")
    if seed >= SEED_RANGE[1]:
        raise c.fail("seed", "is out of torch.manual_seed's range, 0 <= seed < 2**64")
    _number(c, "threads", low=1, integer=True, null=True)
    _bool(c, "progress")
    _choice(c, "loss", sorted(CONVENTIONS))
    _choice(c, "tap", list(TAPS), null=True)
    _choice(c, "style_loss", list(STYLE_LOSSES))
    _choice(c, "preserve_color", list(COLOR_MODES), null=True)
    _choice(c, "pooling", POOLINGS)
    _choice(c, "precision", tuple(PRECISIONS))
    _device(c)
    _optimizer(c)
    if not isinstance(c.get("images_root"), str):
        raise c.fail("images_root", "must be a directory path")

    # the network: architecture, weights, layers
    arch = c.get("arch")
    if arch != "vgg19":  # torchvision is imported only for other architectures
        from nst.backbones import TRANSFORMER_REFUSAL, TRANSFORMERS, architectures

        names = architectures()
        if isinstance(arch, str) and arch.startswith(TRANSFORMERS):
            raise c.fail("arch", TRANSFORMER_REFUSAL)
    if arch != "vgg19" and (not isinstance(arch, str) or arch not in names):
        raise c.fail("arch", f"is not a torchvision architecture or {EFFICIENTNET} (e.g. vgg19, vgg16, resnet18)"
                     + (_suggest(arch, names) if isinstance(arch, str) else ""))
    if arch == EFFICIENTNET:
        from nst.efficientnet import missing

        reason = missing()
        if reason:
            raise c.fail("arch", reason)
    _weights(c, arch)
    net = structure(arch, str(c.get("weights")), str(c.get("pooling")))
    content_layers = _layers(c, "content_layers", net)
    style_layers = _layers(c, "style_layers", net)
    tap = convention(c.get("loss"), tap=c.get("tap")).tap  # the convention's own where tap is null
    _reached(c, net, {"content_layers": content_layers, "style_layers": style_layers}, tap)
    _weights_list(c, "style_layer_weights", len(style_layers) if style_layers else None, "style layer")

    # something to optimise
    alpha, beta = c.get("alpha"), c.get("beta")
    ratio = c.get("ratio")
    beta_used = alpha / ratio if ratio is not None else beta
    if not content_layers and not style_layers:
        raise ConfigError(f"{c.shown('content_layers')} and {c.shown('style_layers')}: no layers, nothing to "
                          "optimise; give content or style layers")
    if (alpha == 0 or not content_layers) and (beta_used == 0 or not style_layers) and c.get("tv_weight") == 0:
        parts = [c.shown("alpha") if content_layers else c.shown("content_layers")]
        parts.append((c.shown("beta") if ratio is None else f"{c.shown('ratio')} (beta = alpha / ratio = 0)")
                     if style_layers else c.shown("style_layers"))
        raise ConfigError(f"{' and '.join(parts)}: every loss term is weighted 0, nothing to optimise; "
                          "set alpha > 0 for content or beta > 0 for style")

    # the images: headers only
    sizes = [p[0] for p in plan] if plan else [c.get("size")]
    budget = cfg.get("max_pixels", MAX_PIXELS)
    content = c.get("content")
    native = image_header(c, "content", content)
    long_side = max(sizes)
    target = fit_long_side(*native, long_side)
    if target[0] * target[1] > budget:
        key = "multiscale" if plan else "size"
        raise c.fail(key, f"gives a {target[0]}x{target[1]} image = {target[0] * target[1]:,} pixels, over "
                          f"max_pixels {budget:,.0f}; use a smaller size or raise max_pixels")
    _upscale_warning("content", content, native, target, f"size={long_side}")
    smallest = fit_long_side(*native, min(sizes))  # the first scale's
    _fits(c, "multiscale" if plan else "size", net, {"content_layers": content_layers, "style_layers": style_layers},
          smallest, "image", tap)
    _memory(c, net, content_layers + style_layers, target, plan, content_layers)

    styles = list(as_tuple(c.get("style")))
    if style_layers:
        if not styles:
            raise c.fail("style", "is empty: style_layers need at least one style image")
        for path in styles:  # with several styles a message quotes the one at fault
            native_style = image_header(c, "style", path, path if len(styles) > 1 else ...)
            scale = c.get("style_scale")
            size = target if scale is None else fit_long_side(*native_style, max(1, round(scale * max(target))))
            if scale is not None:
                _fits(c, "style_scale", net, {"style_layers": style_layers},
                      fit_long_side(*native_style, max(1, round(scale * max(smallest)))), "style image", tap)
            if size[0] * size[1] > budget:
                raise c.fail("style_scale", f"gives a {size[0]}x{size[1]} style image = {size[0] * size[1]:,} "
                                            f"pixels, over max_pixels {budget:,.0f}")
            _upscale_warning("style", path, native_style, size,
                             "the content's size" if scale is None else f"style_scale={scale}")
        _weights_list(c, "style_blend", len(styles), "style image", nonzero=True)
    else:
        if not all(isinstance(s, str) for s in styles):
            raise c.fail("style", "must be an image path or a list of image paths")
        _weights_list(c, "style_blend", None, "style image", nonzero=True)

    init = c.get("init")
    if init == "style" and not style_layers:
        raise c.fail("init", "needs style layers (the style image is read only for them); use noise or content")
    if init not in INITS:
        if not isinstance(init, str) or not Path(init).suffix and not Path(init).is_dir():
            raise c.fail("init", f"is not one of {' | '.join(INITS)} or an image file (a path with its extension)"
                         + (_suggest(init, list(INITS)) if isinstance(init, str) else ""))
        native_init = image_header(c, "init", init)
        _upscale_warning("init", init, native_init, target, "the content's size")
    _no_effect(c, net)


def _no_effect(c: _Check, net: Any) -> None:
    """Warn of a key typed for this job that changes nothing in it: a sweep over it gave identical cells and
    spent the time of each, with no word."""
    import torch

    from nst.run import resolve_device

    why: dict[str, str] = {}
    if c.get("init") != "noise":  # the seed draws the noise start and nothing else (targets, weights=random: fixed)
        why["seed"] = why["noise_std"] = f"only the white-noise start uses it, not {c.shown('init')}"
    if c.get("optimizer")["name"] == "adam":
        why["optimizer.history_size"] = why["optimizer.line_search"] = "an L-BFGS setting, unused by Adam"
    if c.get("precision") == "tf32" and resolve_device(c.get("device")).type == "cpu":
        why["precision"] = "tf32 changes CUDA's matrix products and convolutions only; on the CPU it is fp32"
    if not as_tuple(c.get("style_layers")):  # a content reconstruction, a layer scan (trial F)
        why["beta"] = why["ratio"] = why["style_loss"] = "no style layers to weigh"
    if not as_tuple(c.get("content_layers")) and c.get("ratio") is None:  # with a ratio, alpha sets beta
        why["alpha"] = "no content layers to weigh"
    if c.get("multiscale"):  # trial F: a report's `size` then showed 32 for a 48 px result
        why["size"] = why["steps"] = "multiscale sets every scale's size and iterations"
    if net is not None and not any(isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)) for m in net.modules()):
        why["pooling"] = f"{c.get('arch')} has no pooling layer to set"
    for key, reason in why.items():
        if key in c.typed and (key, reason) not in _WARNED and log.isEnabledFor(logging.WARNING):
            _WARNED.add((key, reason))  # not while app.check_sweep silences the jobs' checks: the first job warns
            log.warning("%s=%s has no effect here (%s): runs that differ only in it give the same image",
                        key, c.typed[key], reason)


_WARNED: set[tuple[str, str]] = set()  # each once per process: a sweep's jobs share it


# every key of conf/config.yaml, in its order (tests/test_bad_input.py keeps the two in step); `optimizer` is the
# config group (conf/optimizer/*.yaml: name, lr, history_size, line_search)
CHECKED = ("content", "style", "style_blend", "images_root", "size", "style_scale", "steps", "multiscale", "alpha",
           "beta", "ratio", "content_layers", "style_layers", "style_layer_weights", "loss", "tap", "style_loss",
           "tv_weight",
           "preserve_color", "arch", "weights", "pooling", "init", "noise_std", "seed", "device", "precision",
           "threads", "progress", "max_pixels", "optimizer")
OPTIONAL = ("max_pixels",)  # a config written before the key existed gets MAX_PIXELS
OPTIMIZER_KEYS = ("name", "lr", "history_size", "line_search")
