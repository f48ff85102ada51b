"""Compatible jobs of a sweep optimised as one batch (`hydra/launcher=batched`).

Jobs are compatible when everything that decides the forward pass is the same: network, pooling, images, size,
style loss, loss convention (and so the tap), precision, device and optimiser settings. They may differ in α,
β, layer weights, style and content layer sets, tv_weight and seed. A group runs as one batch, or as several
where memory is short (run_group), with one forward/backward per evaluation for all of a batch's images: on a GPU
one pass through the network cut at the group's deepest layer, on the CPU image by image through each job's own
cut network (GroupLoss). Each job's loss comes from its own layers, targets and weights, and each job has its own
L-BFGS state (nst/batched_lbfgs.py), so it converges (or fails) alone; a batch that breaks fails its own jobs.
Multi-scale and Adam jobs are not batched: they run alone (nst/run.py).
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from typing import Any

import torch

from nst import memory
from nst.batched_lbfgs import Step, minimize
from nst.engine import NonFiniteLoss, names_of, numbers
from nst.features import Encoder
from nst.inputs import image_size, spec_images
from nst.losses import total_variation
from nst.metrics import note, noted
from nst.run import PRECISIONS, JobResult, configure, finish, initial_image, model_for, resolve_device, run
from nst.spec import JobSpec
from nst.transfer import StyleTransfer

log = logging.getLogger(__name__)


# cuDNN autotuning (cudnn.benchmark) runs every candidate algorithm of every convolution, forward and backward,
# for each new input shape; torch caches the choice per shape. A batch keeps its full size until its first job
# finishes, then shrinks once per distinct evaluation count of its jobs (the write-up's grid at 256 px on the CPU:
# 109-115, so 6 more shapes), each autotuned anew. So only the full batch is autotuned; a shrunk one uses cuDNN's
# heuristics. Not yet measured on a GPU: AUTOTUNE_EVERY_SIZE = True tunes every size as before, and
# benchmarks/batched_grid.py --autotune-every-size compares the two.
AUTOTUNE_EVERY_SIZE = False


def group_key(spec: JobSpec) -> tuple | None:
    """What jobs must share to be optimised together; None for a job that runs alone (multi-scale, Adam, a method
    other than gatys)."""
    if len(spec.scales) != 1 or spec.optimizer.name != "lbfgs" or spec.method != "gatys":
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


def run_all(specs: Sequence[JobSpec], *, batch_size: int = 32, memory_mb: float | None = None, done: Done) -> None:
    """Run every job, compatible ones batched (at most batch_size, and what fits in memory_mb: run_group);
    done(job index, JobResult or the job's error) as each finishes."""
    for group in groups(specs, batch_size):
        if len(group) == 1:
            try:
                result: JobResult | BaseException = run(specs[group[0]])
            except KeyboardInterrupt as e:  # what it had done (nst.metrics.note, from nst.run), as _optimise gives
                e.progress = {id(specs[group[0]]): noted(e)}
                raise
            except Exception as e:  # a failing job fails alone (not Ctrl-C or SystemExit: BaseExceptions)
                result = e
            done(group[0], result)
            continue
        results, broken = run_group([specs[i] for i in group], memory_mb), None
        for i in group:
            if broken is None:
                try:
                    result = next(results)
                    if isinstance(result, JobResult) and result.batch is not None:
                        result.batch = [group[b] for b in result.batch]  # the group's positions -> run_all's
                except Exception as e:  # the group's set-up broke (e.g. an image gone): its jobs fail with it
                    broken = e.with_traceback(None)  # no traceback: its frames hold the models
            done(i, result if broken is None else broken)


class GroupLoss:
    """Every job's loss terms for a batch of images, one loss call per distinct (layer, target) for all of them.

    A group's jobs share the images and the loss functions, so a content or style term at one layer with one
    target is the same function for every job that uses it: it is computed once for the whole batch, (B,), and
    each job weighs the terms it uses (α for its content layers, β·w_l for its style layers, 0 for the others'
    layers). A batch of 25 jobs thus costs one Gram matrix product per style layer instead of one per job and
    layer (the per-job loop was ~750 small kernels per evaluation on the GPU; benchmarks/batched_grid.py).
    """

    def __init__(self, models: Sequence[StyleTransfer], device: torch.device):
        first = models[0].targets
        self.encoder = Encoder(first.encoder.cnn, group_layers(models), first.convention.tap)
        self.content_fn, self.style_fn = first.convention.content, first.style_loss
        self.content, content_use = self._columns([(m.targets.content_layers, m.targets.content_targets)
                                                   for m in models])
        self.style, style_use = self._columns([(m.targets.style_layers, m.targets.style_targets) for m in models])

        def table(rows: list[list[float]]) -> torch.Tensor:
            return torch.tensor(rows, dtype=torch.float32, device=device)

        self.listed = [(set(cu), set(su)) for cu, su in zip(content_use, style_use)]  # each job's columns
        self.size = len(models)
        self.per_image = device.type == "cpu"  # see __call__
        self.own = [m.targets.encoder for m in models]  # each job's network, cut at its own deepest layer
        self.content_weights = table([_weigh(use, [1.0] * len(use), len(self.content)) for use in content_use])
        self.style_weights = table([_weigh(use, m.weights, len(self.style)) for m, use in zip(models, style_use)])
        self.alpha = table([[m.alpha for m in models]])[0]
        self.beta = table([[m.beta for m in models]])[0]
        self.tv = table([[m.tv_weight for m in models]])[0]
        # each job's row of terms, in engine.term_row's order, as columns of [total, content, style, tv,
        # content columns, style columns, NaN]; shorter rows are padded with the NaN column
        n_c, n_s = len(self.content), len(self.style)
        rows = [[0, 1, 2, 3] + [4 + c for c in cu] + [4 + n_c + c for c in su]
                for cu, su in zip(content_use, style_use)]
        width = max(map(len, rows))
        self.columns = torch.tensor([r + [4 + n_c + n_s] * (width - len(r)) for r in rows], device=device)
        self.names = [names_of([m.keys[layer] for layer in m.targets.content_layers],
                               [m.keys[layer] for layer in m.style_layers]) for m in models]

    @staticmethod
    def _columns(jobs: list[tuple[list, list]]) -> tuple[list[tuple[Any, Any]], list[list[int]]]:
        """Distinct (layer, target) pairs over the jobs, and each job's pairs as indices, in its own order."""
        columns: list[tuple[Any, Any]] = []
        uses = []
        for layers, targets in jobs:
            use = []
            for layer, target in zip(layers, targets):
                same = [c for c, (l, t) in enumerate(columns) if l == layer and _equal(t, target)]
                if not same:
                    columns.append((layer, target))
                use.append(same[0] if same else len(columns) - 1)
            uses.append(use)
        return columns, uses

    def __call__(self, x: torch.Tensor, active: torch.Tensor, cast: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """The active jobs' total losses (n,) and their term rows (n, width) from one batched pass over x."""
        # CPU: image by image (measured, 2-core EPYC, 25 images at 128 px to conv3_1: one batched pass 0.94 s, 25
        # single ones 0.64 s: cache), each through its own job's network, cut at that job's deepest layer (Fig. 3's
        # batch at 128 px: 14% less time than all to the group's deepest), each term only for the images whose job
        # lists it and without concatenating features (computing every term for every image, or per term over
        # concatenated features, made the write-up's grid 0.85x the basic launcher's speed). GPU: one pass and
        # every term for every image (launch-bound: fewer, larger kernels win).
        jobs = active.tolist() if self.per_image else None  # on the CPU this is no device sync
        if x.is_cuda:  # also for this evaluation's backward, run after this call; configure() resets it
            torch.backends.cudnn.benchmark = AUTOTUNE_EVERY_SIZE or x.shape[0] == self.size
        with cast:
            feats = self.encoder(x) if jobs is None else [self.own[j](image[None])
                                                          for image, j in zip(x.unbind(0), jobs)]
        with torch.autocast(x.device.type, enabled=False):  # the features may be bf16; the losses stay fp32
            content = self._values(self.content, 0, feats, jobs, self.content_fn, x)
            style = self._values(self.style, 1, feats, jobs, self.style_fn, x)
            tv = total_variation(x.float())
            # torch.where, not a product: a job must not see another job's layer, even a non-finite one
            weights = self.content_weights[active]
            content_loss = (torch.where(weights > 0, content, 0.0) * weights).sum(1)
            weights = self.style_weights[active]
            style_loss = (torch.where(weights > 0, style, 0.0) * weights).sum(1)
            total = self.alpha[active] * content_loss + self.beta[active] * style_loss + self.tv[active] * tv
        with torch.no_grad():
            terms = torch.cat([torch.stack([total, content_loss, style_loss, tv], 1), content, style,
                               torch.full_like(tv, math.nan)[:, None]], 1)
            return total, terms.gather(1, self.columns[active])

    def _values(self, columns: list[tuple[Any, Any]], kind: int, feats: Any, jobs: list[int] | None,
                fn: Callable, x: torch.Tensor) -> torch.Tensor:
        """(n, columns) fp32 loss values: from batched features for every image (jobs None), else from each
        image's features for the columns its job lists (0 for the others, which it weighs 0)."""
        if not columns:
            return x.new_zeros((x.shape[0], 0), dtype=torch.float32)
        if jobs is None:
            return torch.stack([fn(feats[layer], target) for layer, target in columns], 1)
        zero = x.new_zeros((1,), dtype=torch.float32)
        return torch.stack([torch.cat([fn(feats[k][layer], target) if c in self.listed[j][kind] else zero
                                       for c, (layer, target) in enumerate(columns)]) for k, j in enumerate(jobs)])


def group_layers(models: Sequence[StyleTransfer]) -> list:
    """Every layer any of the jobs reads, each once, in first-seen order: what a batch's network computes."""
    return list(dict.fromkeys(layer for m in models for layer in m.targets.encoder.layers))


def _weigh(use: list[int], weights: Sequence[float], n: int) -> list[float]:
    """A job's weight on each of n columns: the sum of its weights of the layers that use it, 0 elsewhere."""
    row = [0.0] * n
    for c, w in zip(use, weights):
        row[c] += w
    return row


def _equal(a: Any, b: Any) -> bool:
    """Two targets (tensors or tuples of them) hold the same values."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    return type(a) is type(b) and len(a) == len(b) and all(_equal(u, v) for u, v in zip(a, b))


def run_group(specs: Sequence[JobSpec], memory_mb: float | None = None) -> Iterator[JobResult | BaseException]:
    """Optimise compatible single-scale L-BFGS jobs as one batch, or in several where nst.memory estimates that
    one would not fit in memory_mb (None: what the device has free); each job's result or its error, in order,
    as its batch finishes."""
    start = time.perf_counter()
    first = specs[0]
    device = resolve_device(first.device)
    configure(first, device)
    (long_side, steps), o = first.scales[0], first.optimizer
    size = image_size(first.targets.content, long_side)
    built = [model_for(spec, size, device) for spec in specs]
    models, prep = [m for m, _ in built], built[0][1]
    images = spec_images(first.targets, size)
    n = fitting(models, size, memory.held_pairs({"name": o.name, "history_size": o.history_size}, steps), device,
                memory_mb)
    for k in range(0, len(specs), n):
        try:
            results = _optimise(specs[k:k + n], models[k:k + n], prep, images, size, device, start)
            for result in results:
                if isinstance(result, JobResult):
                    result.batch = list(range(k, min(k + n, len(specs))))
        except Exception as e:  # the batch broke (e.g. out of memory): its own jobs fail with it, the next runs
            results = [e.with_traceback(None)] * len(specs[k:k + n])  # no traceback: its frames hold the tensors
        yield from results
        start = time.perf_counter()


def fitting(models: Sequence[StyleTransfer], size: tuple[int, int], history: int, device: torch.device,
            memory_mb: float | None) -> int:
    """How many of these jobs one batch can hold by nst.memory's estimate in memory_mb (None: what the device has
    free): all of them where that is unknown, and at least one (nst.preflight has checked each job alone)."""
    free = memory.available_mb(device) if memory_mb is None else memory_mb
    if free is None or len(models) == 1:
        return len(models)
    targets = models[0].targets
    content = [layer for m in models for layer in m.targets.content_layers]
    per_job = memory.batch_job_mb(targets.encoder.cnn, group_layers(models), targets.convention.tap, size,
                                  history=history, content_layers=content)
    shared = memory.weights_mb(targets.encoder.cnn) if memory_mb is not None else 0.0  # else already taken
    fit = max(1, min(len(models), int((free - shared) // per_job)))
    if fit < len(models):
        log.warning("%d jobs at %dx%d need an estimated %.0f MiB as one batch, more than the %.0f MiB %s: "
                    "batches of %d", len(models), *size, shared + per_job * len(models), free,
                    "available" if memory_mb is None else "of hydra.launcher.memory_mb", fit)
    return fit


def finite(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A job's history rows with a finite total loss (a failed or interrupted job's record keeps these)."""
    return [r for r in rows if math.isfinite(r.get("total_loss", math.nan))]


def _optimise(specs: Sequence[JobSpec], models: Sequence[StyleTransfer], prep: Any, images: Any,
              size: tuple[int, int], device: torch.device, start: float) -> list[JobResult | BaseException]:
    """One batch of run_group's jobs, their models built: minimize, then each job's result or its error."""
    memory.reset_peak(device)
    first = specs[0]
    (long_side, steps), o = first.scales[0], first.optimizer
    content, styles = images
    loss = GroupLoss(models, device)
    x0 = torch.cat([prep(initial_image(s, content, styles[0] if styles else None, size)) for s in specs]).to(device)
    cast = torch.autocast(device.type, dtype=PRECISIONS[first.precision]) \
        if PRECISIONS[first.precision] is not None else nullcontext()
    history: list[list[dict[str, Any]]] = [[] for _ in specs]
    t0 = time.perf_counter()

    def record(step: Step) -> None:
        terms = dict(zip(loss.names[step.index], step.aux or []))
        history[step.index].append({"size": long_side, "iteration": step.iteration, "evaluations": step.evaluations,
                                    "seconds": time.perf_counter() - t0, **terms})

    try:
        result = minimize(lambda x, active: loss(x, active, cast), x0, steps=steps, lr=o.lr,
                          history_size=o.history_size, line_search=o.line_search, rescale=True, callback=record)
        seconds, setup = time.perf_counter() - t0, t0 - start
        out: list[JobResult | BaseException] = []
        for j, (spec, model) in enumerate(zip(specs, models)):
            if result.status[j] == "failed":  # with what it had done, for its record (nst.metrics.note)
                out.append(note(NonFiniteLoss(result.reason[j]), history=finite(history[j]), steps=result.iterations[j],
                                evaluations=result.evaluations[j], seconds=seconds,
                                peak_memory_mb=memory.peak_mb_or_none(device), device=str(device)))
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
    except KeyboardInterrupt as e:  # what each job had done, for its interrupt record (keyed by its spec)
        ran = {"seconds": time.perf_counter() - t0, "peak_memory_mb": memory.peak_mb_or_none(device),
               "device": str(device)}
        e.progress = {id(spec): {"history": finite(rows),
                                 "steps": rows[-1]["iteration"] if rows else 0,
                                 "evaluations": rows[-1]["evaluations"] if rows else 0, **ran}
                      for spec, rows in zip(specs, history)}
        raise
