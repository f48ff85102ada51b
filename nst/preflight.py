"""Everything a job is checked for before it runs, in one call: `preflight(config, typed)`.

First the schema's rules (nst/config.py: keys, ranges, rules between keys), then what costs a little more but
decodes no image and allocates no tensor: image files are opened for their header only (size, Pillow's
decompression-bomb limit), a weights file is loaded memory-mapped and compared tensor by tensor with its
architecture, the network is built on the meta device by nst.backbones itself and the layers resolved on it, a
meta-device pass finds layers that are never reached or too small, and the memory estimate (nst/memory.py) is held
against what the device has free. The first problem raises a ConfigError, one line naming the key and the value
as typed. Warnings (an image upscaled 3x or more, a typed key that changes nothing) go to the `nst` logger.
The apps and the library's own callers use this same function (nst/jobdir.py's `start`).
"""
from __future__ import annotations

import errno
import logging
import os
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nst.config import (FIELDS, LAYER_KEYS, NAMED_INITS, OPTIMIZER_FIELDS, Check, ConfigError, as_tuple, check,
                        choice, keys, meta, number_rule, show, suggest)

log = logging.getLogger("nst")

UPSCALE_WARNING = 3.0   # an image upscaled by this factor or more gets a warning
BYTES_PER_PIXEL_BOUND = 16_384  # above any network's need here (VGG19, paper layers, L-BFGS history 100: ~5 KB)
TOO_SMALL_BOUND = 256  # no image this size loses a feature map: VGG19's deepest layer is at 1/16, torchvision's at 1/32


def preflight(config: Mapping[str, Any], typed: Mapping[str, str] | None = None) -> None:
    """Check a job's resolved config (a plain dict without `hydra`); raise ConfigError on the first problem.
    `typed`: {key: text as typed on the command line}, quoted in messages."""
    from nst.images import fit_long_side
    from nst.losses import convention

    PENDING.clear()
    c = check(config, typed)
    for name, names in choices().items():
        choice(c, name, names, null=number_rule(name)["null"])
    _device(c)
    arch = c.get("arch")
    _arch(c, arch)
    _weights(c, arch)
    net = structure(arch, str(c.get("weights")), str(c.get("pooling")))
    layers = {k: list(as_tuple(c.get(k))) for k in LAYER_KEYS}
    tap = convention(c.get("loss"), tap=c.get("tap")).tap  # the convention's own where tap is null
    _resolved(c, net, layers, tap)
    _reached(c, net, layers, tap)

    plan = c.get("multiscale")
    sizes = [p[0] for p in plan] if plan else [c.get("size")]
    scaled = "multiscale" if plan else "size"
    budget = c.get("max_pixels")
    content = c.get("content")
    native = image_header(c, "content", content)
    target = fit_long_side(*native, max(sizes))
    if target[0] * target[1] > budget:
        raise c.fail(scaled, f"gives a {target[0]}x{target[1]} image = {target[0] * target[1]:,} pixels, over "
                             f"max_pixels {budget:,.0f}; use a smaller size or raise max_pixels")
    _upscale_warning("content", content, native, target, f"size={max(sizes)}")
    smallest = fit_long_side(*native, min(sizes))  # the first scale's
    _fits(c, scaled, net, layers, smallest, "image", tap)
    _memory(c, net, layers["content_layers"] + layers["style_layers"], target, plan, layers["content_layers"])

    styles = list(as_tuple(c.get("style")))
    if layers["style_layers"]:
        scale = c.get("style_scale")
        for path in styles:  # with several styles a message quotes the one at fault
            native_style = image_header(c, "style", path, path if len(styles) > 1 else ...)
            size = target if scale is None else fit_long_side(*native_style, max(1, round(scale * max(target))))
            if scale is not None:
                _fits(c, "style_scale", net, {"style_layers": layers["style_layers"]},
                      fit_long_side(*native_style, max(1, round(scale * max(smallest)))), "style image", tap)
            if size[0] * size[1] > budget:
                raise c.fail("style_scale", f"gives a {size[0]}x{size[1]} style image = {size[0] * size[1]:,} "
                                            f"pixels, over max_pixels {budget:,.0f}")
            _upscale_warning("style", path, native_style, size,
                             "the content's size" if scale is None else f"style_scale={scale}")
    init = c.get("init")
    if init not in NAMED_INITS:
        if not isinstance(init, str) or not Path(init).suffix and not Path(init).is_dir():
            raise c.fail("init", f"is not one of {' | '.join(NAMED_INITS)} or an image file (a path with its "
                                 "extension)" + (suggest(init, list(NAMED_INITS)) if isinstance(init, str) else ""))
        _upscale_warning("init", init, image_header(c, "init", init), target, "the content's size")
    _decoders(c)
    _no_effect(c, net)
    for args in PENDING:
        log.warning(*args)
    PENDING.clear()


def _decoders(c: Check) -> None:
    """Every method but gatys transforms one style image; a feed-forward one needs a decoder file for each of its
    levels, in `decoders` or shipped."""
    from nst import decoder

    method, where = c.get("method"), c.get("decoders")
    if method == "gatys":
        return
    if len(as_tuple(c.get("style"))) != 1:
        raise c.fail("style", f"must be one image for method {method!r} (style_blend is the gatys method's)")
    if method == "wct_opt":
        return
    if where is not None and not Path(where).is_dir():
        raise c.fail("decoders", "is not a directory of decoder files (decoder_relu3_1.pt, ...)")
    has = decoder.available(where)
    levels = list(as_tuple(c.get("wct_levels"))) or has
    if not levels:
        raise c.fail("decoders", "holds no decoder_relu{L}_1.pt, and none is shipped; train one: python -m "
                                 "experiments.train_decoder")
    need = levels if method == "wct" else [max(levels)]  # adain: the deepest only
    lacking = [L for L in need if L not in has]
    if lacking:
        L, name = lacking[0], decoder.file_name(lacking[0])
        where_not = f"{c.shown('decoders')} has no {name} and none is shipped" if where is not None else \
            f"no {name} is shipped"
        raise ConfigError(f"wct_levels {show(levels)}: {where_not} (levels {show(has)} are); train it: python -m "
                          f"experiments.train_decoder level={L} images=DIR")


def choices() -> dict[str, tuple]:
    """{key: its named values} of the keys that take one, from the library registry the schema names for each
    (imported here: torch)."""
    import importlib

    found = {}
    for name in (*FIELDS, *(f"optimizer.{k}" for k in OPTIMIZER_FIELDS)):
        where = meta(name)["choices"]
        if where:
            module, _, attr = where.partition(":")
            names = getattr(importlib.import_module(module), attr)
            found[name] = tuple(names)  # a dict: its keys
    return found


# ---------------------------------------------------------------------------------------------------- images

def image_header(c: Check, name: str, path: Any, value: Any = ...) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(path, str) or path.strip() == "":
        raise c.fail(name, "is empty: give an image file path" if path == "" else "must be an image file path", value)
    p = Path(path)
    if p.is_dir():
        raise c.fail(name, "is a directory, not an image file", value)
    if not p.exists() and p.is_symlink():  # not "no such file": the link is there, what it names is not
        try:
            p.stat()
            why = "cannot be followed"
        except OSError as e:
            why = ("is a loop of symbolic links" if e.errno == errno.ELOOP
                   else f"is a link to {os.readlink(p)!r}, which does not exist")
        raise c.fail(name, why, value)
    if not p.exists():
        raise c.fail(name, "does not exist (no such file)" + _download_hint(p), value)
    if not p.is_file():
        raise c.fail(name, "is not a regular file", value)
    limit = 2 * Image.MAX_IMAGE_PIXELS if Image.MAX_IMAGE_PIXELS else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as img:
                return img.size
    except Image.DecompressionBombError as e:
        found = re.search(r"\((\d+) pixels\)", str(e))
        size = f"{int(found.group(1)):,} pixels, " if found else ""
        raise c.fail(name, f"is an image of {size}over Pillow's decompression-bomb limit of {limit:,} pixels "
                           "(2 x PIL.Image.MAX_IMAGE_PIXELS); refusing to decode it", value) from None
    except PermissionError:
        raise c.fail(name, "cannot be read (permission denied)", value) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise c.fail(name, f"is not an image Pillow can read ({type(e).__name__})", value) from None


def _download_hint(path: Path) -> str:
    """How to get the file when it is one of the paper's images (nst/fetch.py), else ""."""
    from nst.fetch import missing_hint

    hint = missing_hint(path)
    return f"; {hint}" if hint else ""


PENDING: list[tuple] = []  # warnings of the job being checked: said once the whole check has passed (a refused
# job printed "upscaled 13.7x, expect a blurry result" beside the error that it will not run)


def _upscale_warning(name: str, path: str, native: tuple[int, int], target: tuple[int, int], how: str) -> None:
    factor = max(target) / max(native)
    if factor >= UPSCALE_WARNING:
        PENDING.append(("%s %r is %dx%d px, upscaled %.1fx to %dx%d (%s): expect a blurry result", name, path,
                        *native, factor, *target, how))


# ---------------------------------------------------------------------------------------------------- device, network

def _device(c: Check) -> None:
    value = c.get("device")
    if not value.startswith("cuda"):
        return
    import torch

    if not torch.cuda.is_available():
        raise c.fail("device", "requested but CUDA is not available (use device=auto or cpu)")
    count, index = torch.cuda.device_count(), value.partition(":")[2]
    if index and int(index) >= count:
        raise c.fail("device", f"does not exist: this machine has {count} CUDA device(s), cuda:0..cuda:{count - 1}")


def _arch(c: Check, arch: Any) -> None:
    from nst.efficientnet import ARCH as EFFICIENTNET

    if arch == "vgg19":  # torchvision is imported only for other architectures
        return
    from nst.backbones import TRANSFORMER_REFUSAL, TRANSFORMERS, architectures

    if isinstance(arch, str) and arch.startswith(TRANSFORMERS):
        raise c.fail("arch", TRANSFORMER_REFUSAL)
    names = architectures()
    if not isinstance(arch, str) or arch not in names:
        raise c.fail("arch", f"is not a torchvision architecture or {EFFICIENTNET} (e.g. vgg19, vgg16, resnet18)"
                     + (suggest(arch, names) if isinstance(arch, str) else ""))
    if arch == EFFICIENTNET:
        from nst.efficientnet import missing

        reason = missing()
        if reason:
            raise c.fail("arch", reason)


def _in_place(net: Any) -> Any:
    """Its ReLUs in place (the same shapes on the meta device): torch's out-of-place relu on meta imports
    torch._dynamo, 0.9 s at the start of every command that passed preflight."""
    import torch

    for module in net.modules():
        if isinstance(module, torch.nn.ReLU):
            module.inplace = True
    return net


def structure(arch: str, weights: str, pooling: str) -> Any:
    """The backbone nst.backbones.backbone builds, on the meta device (no memory, no weights); None if it
    cannot be built there (the job's own errors then apply)."""
    from nst.backbones import backbone

    try:
        return _in_place(backbone(arch, weights, pooling=pooling, meta=True)[0])
    except Exception:
        return None


def _resolved(c: Check, net: Any, layers: dict[str, list], tap: str) -> None:
    """Every layer names a module of the network, and no module twice (a name and an index of one layer)."""
    if net is None:
        return
    from nst.features import layer_key, resolve

    for name, value in layers.items():
        for layer in value:
            try:
                resolve(layer, net)
            except ValueError as e:
                raise c.fail(name, f"is not valid: {e}") from None
        keys = [layer_key(layer, net, tap) for layer in value]  # [conv1_1,0] with tap conv: the job failed at
        for k, key in enumerate(keys):  # run time, a sweep's alone
            if key in keys[:k]:
                raise c.fail(name, f"names {key} twice ({value[keys.index(key)]} and {value[k]}): "
                                   "list each layer once (weigh it with style_layer_weights)")


def _reached(c: Check, net: Any, layers: dict[str, list], tap: str) -> None:
    """Refuse a layer whose module the network's (eval-mode) forward pass calls twice (a ResNet block's shared
    ReLU: which call a hook reads would depend on the other layers requested), never (googlenet's auxiliary
    heads), or whose output is no (N, C, H, W) feature map (a classifier layer: it ran, or failed with an
    IndexError, exit 1). One pass at 224 px on the meta device: nothing is computed."""
    if net is None:
        return
    import torch

    from nst.features import layer_key, resolve

    modules = {(name, layer): resolve(layer, net, tap)[0] for name, value in layers.items() for layer in value}
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
    for (name, layer), outputs in seen.items():
        shown = show(layer) + (f" ({layer_key(layer, net, tap)})" if isinstance(layer, int) else "")
        if len(outputs) > 1:
            raise c.fail(name, f"names {shown}, a module the network calls {len(outputs)} times in one pass "
                               "(a ResNet block's shared ReLU): which output it means would depend on the other "
                               "layers; name the module before it (e.g. its bn2) or give a conv index")
        if not outputs:
            raise c.fail(name, f"names {shown}, which the network's forward pass never runs (in eval mode)")
        if outputs[0] != 4:
            raise c.fail(name, f"names {shown}, whose output is {outputs[0]}-D, not a feature map "
                               "(N, C, H, W): a classifier layer; give a convolutional layer")


def _fits(c: Check, name: str, net: Any, layers: dict[str, list], size: tuple[int, int], what: str,
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
                shown = f" ({layer_key(layer, net, tap)})" if isinstance(layer, int) else ""
                raise c.fail(name, f"gives a {size[0]}x{size[1]} {what}, too small for {layers_key} layer "
                                   f"{show(layer)}{shown}: its feature map would be empty; use a larger size or "
                                   "shallower layers") from None


def _memory(c: Check, net: Any, layers: list, size: tuple[int, int], plan: list | None,
            content_layers: list) -> None:
    """Refuse up front a job whose estimated peak memory exceeds what its device has free (nst/memory.py)."""
    from nst.memory import available_mb, held_pairs, job_estimate_mb
    from nst.run import resolve_device

    device = resolve_device(c.get("device"))
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
                     f"optimizer.history_size (each L-BFGS pair {12 * pixels / 2**20:.0f} MiB, "
                     f"{held_pairs(opt, steps)} kept) or precision=bf16 (activations in half the memory)")


# ---------------------------------------------------------------------------------------------------- weights files

def _weights(c: Check, arch: str) -> None:
    from nst.efficientnet import ARCH as EFFICIENTNET
    from nst.efficientnet import PRETRAINED
    from nst.vgg import NORMALIZED, ORIGINAL

    built_in = (ORIGINAL, NORMALIZED)  # VGG19 weights that need no file
    name, value = "weights", c.get("weights")
    if value == "random":
        return
    if arch == EFFICIENTNET:  # no state_dict path: the trunk is ours, a file's keys would be the package's
        if value != PRETRAINED:
            hint = "" if "weights" in c.typed else f"; backbone={EFFICIENTNET} sets arch, weights and its layers"
            raise c.fail(name, f"is not one of {PRETRAINED} | random (arch={arch})"
                         + (suggest(value, [PRETRAINED, "random"]) if isinstance(value, str) else "") + hint)
        return
    if value == PRETRAINED:
        raise c.fail(name, f"exist for {EFFICIENTNET} only; give arch={arch} "
                           + ("original, normalized" if arch == "vgg19" else "a state_dict path") + " or 'random'")
    if value in built_in:
        if arch != "vgg19":
            raise c.fail(name, f"exist for vgg19 only; give arch={arch} a state_dict path or 'random'")
        return
    if not isinstance(value, str) or value.strip() == "":
        raise c.fail(name, f"must be {' | '.join(built_in)} (vgg19), random or a state_dict file path")
    path = Path(value)
    if path.is_dir():
        raise c.fail(name, "is a directory, not a state_dict file")
    if not path.is_file():
        raise c.fail(name, f"does not exist: give a {arch} state_dict file, random or {' | '.join(built_in)} (vgg19)"
                     + suggest(value, ["random", *built_in]))
    _fits_architecture(c, arch, _state_dict(c, path))


def _state_dict(c: Check, path: Path) -> Mapping[str, Any]:
    import torch

    try:  # memory-mapped: the tensors are not read; weights_only always (a weights file is never code)
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # a legacy (non-zip) torch.save file cannot be mapped; or not a torch file at all
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise c.fail("weights", f"is not a state_dict file (torch.load with weights_only=True failed: "
                                    f"{type(e).__name__}); give a file written by torch.save(model.state_dict())") \
                from None
    if not isinstance(state, Mapping) or not state or \
            not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise c.fail("weights", "is not a state_dict file (a dict of parameter names to tensors); give a file "
                                "written by torch.save(model.state_dict())")
    return state


def _fits_architecture(c: Check, arch: str, state: Mapping[str, Any]) -> None:
    """A state_dict's tensors against the architecture's (on the meta device), tensor by tensor."""
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
        raise c.fail("weights", f"do not fit {arch}: " + ", ".join(problems))


# ---------------------------------------------------------------------------------------------------- no effect

WARNED: set[tuple[str, str]] = set()  # each once per process: a sweep's jobs share it


def _no_effect(c: Check, net: Any) -> None:
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
    if c.get("method") == "gatys":
        why["wct_alpha"] = why["wct_levels"] = why["decoders"] = "the gatys method uses no feature transform"
    elif c.get("method") in ("wct", "adain"):
        for name in [*keys(optimisation=True), *(f"optimizer.{k}" for k in OPTIMIZER_FIELDS)]:
            why[name] = f"{c.shown('method')} is feed-forward: nothing is optimised"
        why["precision"] = f"{c.shown('method')} runs in fp32 (its transform in float64)"
    if c.get("method") == "wct_opt":
        why["decoders"] = "wct_opt reaches its targets by optimisation, without a decoder"
    for name, reason in why.items():
        if name in c.typed and (name, reason) not in WARNED and log.isEnabledFor(logging.WARNING):
            WARNED.add((name, reason))  # not while the sweep's check silences the jobs' checks: the first job warns
            log.warning("%s=%s has no effect here (%s): runs that differ only in it give the same image",
                        name, c.typed[name], reason)

