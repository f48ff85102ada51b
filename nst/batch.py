"""Compatible jobs of a sweep optimised as one batch (`hydra/launcher=batched`).

Jobs are compatible when everything that decides the forward pass is the same: network, pooling, images, size,
style loss, loss convention (and so the tap), precision, device and optimiser settings. They may differ in α,
β, layer weights, style and content layer sets, tv_weight and seed. A group runs one forward/backward per
evaluation for all its images through the network cut at the group's deepest layer; each job's loss comes from
its own layers, targets and weights, and each job has its own L-BFGS state (nst/batched_lbfgs.py), so it
converges (or fails) alone. Multi-scale and Adam jobs are not batched: they run alone (nst/run.py).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any

import torch

from nst import memory
from nst.batched_lbfgs import Step, minimize
from nst.engine import NonFiniteLoss, numbers, term_names, term_row
from nst.features import Encoder
from nst.inputs import image_size, spec_images
from nst.run import PRECISIONS, JobResult, configure, finish, initial_image, model_for, resolve_device, run
from nst.spec import JobSpec

NAMES = ["total_loss", "content_loss", "style_loss", "tv_loss"]


def group_key(spec: JobSpec) -> tuple | None:
    """What jobs must share to be optimised together; None for a job that runs alone (multi-scale, Adam)."""
    if len(spec.scales) != 1 or spec.optimizer.name != "lbfgs":
        return None
    t = spec.targets
    return (t.arch, t.weights, t.pooling, t.content, t.styles, t.style_blend, t.style_scale, t.preserve_color,
            t.loss, t.style_loss, t.tap, spec.scales, spec.optimizer, spec.device, spec.precision)


def groups(specs: Sequence[JobSpec], batch_size: int) -> list[list[int]]:
    """Job indices in groups of compatible jobs of at most batch_size, in first-seen order; lone jobs alone."""
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size!r} must be an integer >= 1")
    by_key: dict[Any, list[int]] = {}
    for i, spec in enumerate(specs):
        key = group_key(spec)
        by_key.setdefault(("alone", i) if key is None else key, []).append(i)
    return [g[k:k + batch_size] for g in by_key.values() for k in range(0, len(g), batch_size)]


Done = Callable[[int, "JobResult | BaseException"], None]


def run_all(specs: Sequence[JobSpec], *, batch_size: int = 32, done: Done) -> None:
    """Run every job, compatible ones batched; done(job index, JobResult or the job's error) as each finishes."""
    for group in groups(specs, batch_size):
        if len(group) == 1:
            try:
                result: JobResult | BaseException = run(specs[group[0]])
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as e:  # a failing job fails alone
                result = e
            done(group[0], result)
            continue
        for i, result in zip(group, run_group([specs[i] for i in group])):
            done(i, result)


def run_group(specs: Sequence[JobSpec]) -> list[JobResult | BaseException]:
    """Optimise compatible single-scale L-BFGS jobs as one batch; each job's result or its error."""
    start = time.perf_counter()
    first = specs[0]
    device = resolve_device(first.device)
    configure(first, device)
    memory.reset_peak(device)
    (long_side, steps), o = first.scales[0], first.optimizer
    size = image_size(first.targets.content, long_side)
    built = [model_for(spec, size, device) for spec in specs]
    models, prep = [m for m, _ in built], built[0][1]
    content, styles = spec_images(first.targets, size)
    layers = list(dict.fromkeys(layer for m in models for layer in m.targets.encoder.layers))
    encoder = Encoder(models[0].targets.encoder.cnn, layers, models[0].targets.convention.tap)
    x0 = torch.cat([prep(initial_image(s, content, styles[0] if styles else None, size)) for s in specs]).to(device)
    cast = torch.autocast(device.type, dtype=PRECISIONS[first.precision]) \
        if PRECISIONS[first.precision] is not None else nullcontext()
    width = max(len(NAMES) + len(m.targets.content_layers) + len(m.style_layers) for m in models)
    keys: list[list[str]] = [[] for _ in specs]  # each job's term names (engine.term_names), as aux's columns

    def objective(x: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each active job's total loss and its terms (padded with NaN to one width) from one batched pass."""
        images = x.unbind(0)  # not slices: a slice's backward writes a zero tensor of the whole batch per job
        with cast:
            if x.device.type == "cpu":  # measured (2-core EPYC, 25 images at 128 px to conv3_1): one batched pass
                per = [encoder(image[None]) for image in images]  # 0.94 s, 25 single ones 0.64 s (cache)
                parts = {layer: [f[layer][0] for f in per] for layer in layers}
            else:  # the GPU wants the batch: one pass for all
                parts = {layer: f.unbind(0) for layer, f in encoder(x).items()}
        totals, aux = [], []
        for k, j in enumerate(active.tolist()):
            t = models[j].terms_of(images[k][None], {layer: f[k][None] for layer, f in parts.items()})
            keys[j], row = term_names(t), term_row(t)
            aux.append(torch.cat([row, row.new_full((width - len(row),), math.nan)]))
            totals.append(t.total)
        return torch.stack(totals), torch.stack(aux)

    history: list[list[dict[str, Any]]] = [[] for _ in specs]
    t0 = time.perf_counter()

    def record(step: Step) -> None:
        terms = dict(zip(keys[step.index], step.aux or []))
        history[step.index].append({"size": long_side, "iteration": step.iteration, "evaluations": step.evaluations,
                                    "seconds": time.perf_counter() - t0, **terms})

    result = minimize(objective, x0, steps=steps, lr=o.lr, history_size=o.history_size, line_search=o.line_search,
                      rescale=True, callback=record)
    seconds, setup = time.perf_counter() - t0, t0 - start
    out: list[JobResult | BaseException] = []
    for j, (spec, model) in enumerate(zip(specs, models)):
        if result.status[j] == "failed":
            out.append(NonFiniteLoss(f"loss became {result.loss[j]} at iteration {result.iterations[j]}; "
                                     "lower the learning rate or the loss weights"))
            continue
        try:
            image = result.x[j:j + 1]
            with torch.no_grad(), cast:
                terms = numbers(model(image))
            out.append(finish(spec, model, prep, image, terms, size, device, history=history[j],
                              iterations=result.iterations[j], evaluations=result.evaluations[j],
                              seconds=seconds, setup_seconds=setup,
                              stop_reason=result.reason[j] or None if result.status[j] == "stopped" else None))
        except Exception as e:
            out.append(e)
    return out
