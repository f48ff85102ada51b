"""The optimisation loop: image pixels optimised by L-BFGS (or Adam); each iteration reported through a callback.

The loop keeps no history and writes no record: its caller collects the iterations it is handed (`Trace`), and
an error raised here says how far the loop got (`iterations`, `evaluations`, `seconds` on Interrupted and
NonFiniteLoss)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch

from nst.transfer import Terms

OPTIMIZERS = ("lbfgs", "adam")
LINE_SEARCHES = ("strong_wolfe", None)  # L-BFGS's: torch's strong-Wolfe search, or plain lr-sized steps
EVALUATIONS_PER_ITERATION = 10  # L-BFGS max_eval = 10 x steps (torch's default: 1.25 x max_iter)

# The loss L-BFGS sees is L / c with c = loss_scale(|g_0|_2), g_0 the first gradient.
# Why scale: torch's strong-Wolfe line search interpolates in fp32 (g·d is a tensor); in the first iteration its
# cubic's d1 ~ |g_0|_2², so d1² overflows fp32 (3.4e38) once |g_0|_2 > ~1.4e9. Measured on the paper convention at
# 128 px (content relu4_2, style relu1_1..relu5_1, beta 1e3: loss 4.7e13, |g_0|_2 = 1.4e10): unscaled, or scaled down
# to |g|_2 = 1e10, iteration 1's line search made a NaN step; scaled to 1e9, 1e8 or 1e6 it ran (beta 1e5 too at 1e6).
# Why not always: torch's L-BFGS is NOT invariant to c. It keeps a curvature pair only when y·s > 1e-10, an absolute
# threshold, i.e. c·1e-10 in the loss's own units. The former c = |g_0|_1 (1.8e4) on a content reconstruction (relu1_1,
# alpha 100, 32 px, seed convention, white noise, tubingen) skipped 276 updates from iteration 671 and ended at a loss
# of 3.5e-4 after 1000 iterations (elsewhere it stopped at 960); with c = 1 it skipped none and ended at 7.7e-5. A fixed
# c = 100 kept that case whole but made the NaN at beta 1e5. So: c = 1 unless |g_0|_2 > GRADIENT_CAP, else the
# gradient is brought down to GRADIENT_CAP, leaving fp32 a factor ~1e14 of headroom on d1².
GRADIENT_CAP = 1e6


class NonFiniteLoss(ArithmeticError):
    """The loss became NaN or infinite; `iterations`, `evaluations`, `seconds`: how far the loop got."""

    iterations: int | None = None
    evaluations: int | None = None
    seconds: float | None = None


class NoProgress(ArithmeticError):
    """An optimisation that ended no lower than it started (nst.run.no_progress): its image is its start."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (a KeyboardInterrupt) during optimise(); `iterations`: updates applied to the image by then."""

    def __init__(self, iterations: int, evaluations: int | None = None, seconds: float | None = None):
        super().__init__(f"interrupted after {iterations} iterations")
        self.iterations, self.evaluations, self.seconds = iterations, evaluations, seconds


@dataclass
class Progress:
    """The state after one iteration; `terms` are the loss terms evaluated during it (before its update)."""

    iteration: int
    evaluations: int
    seconds: float
    terms: dict[str, float]


@dataclass
class Result:
    """The optimised image (network input space) and how it got there; `terms` are evaluated at the image.

    `iterations` is the number of updates applied: `steps` unless L-BFGS stopped early, and then `stop_reason` says
    why (None when all `steps` ran).
    """

    image: torch.Tensor
    terms: dict[str, float]
    iterations: int
    evaluations: int
    seconds: float
    stop_reason: str | None = None


class Trace(list):
    """The iterations a callback is handed, in order, as a job's history: a later row of one iteration replaces
    the earlier (the result's row replaces the last iteration's when that iteration applied no update)."""

    def __call__(self, p: Progress) -> None:
        if self and self[-1].iteration == p.iteration:
            self[-1] = p
        else:
            self.append(p)


def term_names(terms: Terms) -> list[str]:
    """The names of an evaluation's terms, in the order of term_row()."""
    return names_of(list(terms.content_layers), list(terms.style_layers))


def names_of(content_keys: list[str], style_keys: list[str]) -> list[str]:
    """Term names for the given content and style layer keys (`relu4_2`, ...), in the order of term_row()."""
    return (["total_loss", "content_loss", "style_loss", "tv_loss"] + [f"content/{k}" for k in content_keys]
            + [f"style/{k}" for k in style_keys])


def term_row(terms: Terms) -> torch.Tensor:
    """Every term of an evaluation stacked into one small fp32 tensor, left on the device (no host read)."""
    values = [terms.total, terms.content, terms.style, terms.tv, *terms.content_layers.values(),
              *terms.style_layers.values()]
    return torch.stack([v.detach().float() for v in values])


def numbers(terms: Terms) -> dict[str, float]:
    """Every term of an evaluation as floats, read back from the device in one transfer."""
    return dict(zip(term_names(terms), term_row(terms).tolist()))


def loss_scale(gradient_norm: float, cap: float = GRADIENT_CAP) -> float:
    """The divisor c >= 1 of the loss L-BFGS sees: 1 unless the first gradient's L2 norm exceeds `cap`."""
    return max(1.0, gradient_norm / cap)


def check_finite(loss: float, iteration: int) -> None:
    """Raise NonFiniteLoss when the total loss is NaN or infinite."""
    if not math.isfinite(loss):
        raise NonFiniteLoss(non_finite(loss, iteration))


def non_finite(loss: float, iteration: int) -> str:
    """Why a job stopped on a NaN or infinite loss, and what to change."""
    if iteration == 0:  # before any step: the weights, not the optimiser (alpha=1e40)
        return (f"loss is {loss} at the start, before any step: the weighted terms overflow float32; lower alpha, "
                "beta or tv_weight")
    return f"loss became {loss} at iteration {iteration}; lower the learning rate or the loss weights"


def make_optimizer(name: str, params: list[torch.Tensor], *, steps: int, lr: float, history_size: int = 100,
                   line_search: str | None = "strong_wolfe") -> torch.optim.Optimizer:
    """L-BFGS running up to `steps` iterations in one step() call, or Adam (one step() per iteration)."""
    if name == "lbfgs":
        # Tolerances 0 (torch: 1e-7 on the gradient, 1e-9 on changes): the paper's fixed budgets. L-BFGS then stops
        # before `steps` only when it cannot move: a gradient exactly 0, a direction that does not descend, a line
        # search that finds no lower loss (a zero step) or max_eval spent; optimise() records which (lbfgs_stop).
        # The strong-Wolfe line search costs ~1.15 evaluations per iteration and stops the overshoots that plain
        # lr=1 steps make on the quartic Gram loss (measured: 150x lower final loss at beta=1e6, style
        # relu1_1+relu1_2, 60 iterations).
        return torch.optim.LBFGS(params, lr=lr, max_iter=steps, max_eval=EVALUATIONS_PER_ITERATION * steps,
                                 history_size=history_size, line_search_fn=line_search, tolerance_grad=0.0,
                                 tolerance_change=0.0)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    raise ValueError(f"optimizer {name!r} is not one of {list(OPTIMIZERS)}")


def lbfgs_stop(state: dict, *, steps: int, max_eval: int, gradient_is_zero: bool,
               line_search: str | None) -> tuple[int, str | None]:
    """(updates applied, why torch's L-BFGS stopped before `steps` or None) from its state after step() returned.

    torch's LBFGS.step (tolerances 0) leaves its loop early on: a gradient exactly 0 (before the first iteration or
    after an update), g·d > 0 for the new direction d (checked before any evaluation of that iteration, which then
    applied no update), a zero step d·t = 0 (the line search returned t = 0: no trial point lowered the loss; that
    iteration applied no update either) or func_evals >= max_eval. The state it saves tells them apart: n_iter, d, t
    and prev_flat_grad (the gradient d was computed from); whether the gradient at the result is 0 is the caller's.
    """
    n = state.get("n_iter", 0)
    if n >= steps:
        return n, None
    if gradient_is_zero:
        return n, "gradient is zero"
    if state.get("func_evals", 0) >= max_eval:
        return n, f"evaluation budget spent ({max_eval} evaluations)"
    d, t, g = state.get("d"), state.get("t"), state.get("prev_flat_grad")
    if d is not None and g is not None and float(g.dot(d)) > 0:
        return n - 1, "not a descent direction"
    if d is not None and t is not None and float((d * t).abs().max()) == 0:
        if line_search:
            return n - 1, "line search failed: no lower loss along the search direction"
        return n - 1, "no progress: zero step"
    return n, "stopped early (reason not recognised)"


class History:
    """Hands each iteration to the callback: row k is the last evaluation made during iteration k."""

    def __init__(self, callback: Callable[[Progress], None] | None):
        self.pending: Progress | None = None
        self.callback = callback if callback is not None else (lambda p: None)

    def record(self, p: Progress) -> None:
        """An evaluation: it replaces the pending row of its iteration; one of a later iteration emits that row."""
        if self.pending is not None and self.pending.iteration != p.iteration:
            self.callback(self.pending)
        self.pending = p

    def flush(self) -> None:
        """Emit the pending row now (Adam: one evaluation per iteration, so it is final)."""
        if self.pending is not None:
            self.callback(self.pending)
            self.pending = None

    def finish(self, p: Progress) -> None:
        """The result's row ends the history, in place of any row of its iteration (emitted already when the last
        iteration applied no update: the callback then sees that iteration twice, as `Trace` expects); evaluations
        of later iterations (those that applied no update) are dropped."""
        if self.pending is not None and self.pending.iteration < p.iteration:
            self.callback(self.pending)
        self.pending = None
        self.callback(p)


def optimise(model: Callable[[torch.Tensor], Terms], init: torch.Tensor, *, steps: int, optimizer: str = "lbfgs",
             lr: float = 1.0, history_size: int = 100, line_search: str | None = "strong_wolfe",
             autocast: torch.dtype | None = None, callback: Callable[[Progress], None] | None = None) -> Result:
    """Minimise model(image).total over the image's pixels for `steps` iterations, starting from `init`.

    `callback` gets row k, the last evaluation made during iteration k (row 0: the start; the last row: the
    result). Raises NonFiniteLoss on a NaN/inf loss (L-BFGS: at that evaluation; Adam: at the end of that
    iteration) and Interrupted on a KeyboardInterrupt (from Ctrl-C or the callback), each with how far it got.

    Host reads: the loss terms of an evaluation are stacked into one device tensor (term_row). L-BFGS must read each
    evaluation's loss anyway (torch's LBFGS calls float() on the closure's value), so the closure reads the whole row
    in that one transfer, after the backward is queued, and hands L-BFGS the loss as a host tensor: one read per
    evaluation in all (before: ours, before the backward, plus torch's). Adam needs none, so its row is read once
    per iteration, after the update is queued (the NaN guard). The first evaluation also reads |g_0|_2 (loss_scale)
    in the same transfer.
    """
    x = init.detach().clone().requires_grad_(True)
    max_eval = EVALUATIONS_PER_ITERATION * max(1, steps)
    opt = make_optimizer(optimizer, [x], steps=max(1, steps), lr=lr, history_size=history_size,
                         line_search=line_search)
    cast = torch.autocast(x.device.type, dtype=autocast) if autocast is not None else nullcontext()
    history = History(callback)
    start = time.perf_counter()
    evaluations, adam_done, lbfgs_running = 0, 0, False
    scale = 0.0  # L-BFGS's loss divisor: unknown (0) until the first evaluation, then loss_scale(|g_0|_2) >= 1
    stop: tuple[int, str | None] | None = None

    def completed() -> int:
        if stop is not None:
            return stop[0]
        if optimizer == "lbfgs":  # n_iter counts the iteration in progress from its start
            n = opt.state[x].get("n_iter", 0)
            return max(0, n - 1) if lbfgs_running else n
        return adam_done

    def evaluate() -> Terms:
        nonlocal evaluations
        opt.zero_grad(set_to_none=True)
        with cast:
            terms = model(x)
        evaluations += 1
        return terms

    def progress(iteration: int, names: list[str], values: list[float]) -> Progress:
        return Progress(iteration, evaluations, time.perf_counter() - start, dict(zip(names, values)))

    def lbfgs_closure() -> torch.Tensor:
        nonlocal scale
        iteration = opt.state[x].get("n_iter", 0)
        terms = evaluate()
        row = term_row(terms)
        if not scale:  # the first evaluation: |g_0|_2 comes back in the same transfer as the terms
            terms.total.backward()
            norm = torch.linalg.vector_norm(x.grad, dtype=torch.float64)
            *values, gradient_norm = torch.cat([row.double(), norm[None]]).tolist()
            check_finite(values[0], iteration)
            if not math.isfinite(gradient_norm):
                raise NonFiniteLoss(f"the gradient's norm became {gradient_norm} at the start")
            scale = loss_scale(gradient_norm)
            x.grad.div_(scale)
        else:
            (terms.total if scale == 1 else terms.total / scale).backward()
            values = row.tolist()
            check_finite(values[0], iteration)
        history.record(progress(iteration, term_names(terms), values))
        return torch.tensor(values[0] / scale, dtype=torch.float64)  # on the host: torch's float() reads nothing

    rows: list[tuple[int, torch.Tensor, list[str]]] = []

    def adam_closure() -> torch.Tensor:
        terms = evaluate()
        rows.append((adam_done, term_row(terms), term_names(terms)))
        terms.total.backward()
        return terms.total.detach()

    try:
        if optimizer == "lbfgs":
            if steps:
                lbfgs_running = True
                opt.step(lbfgs_closure)  # all iterations in one call; L-BFGS counts them in its state
                lbfgs_running = False
        else:
            for _ in range(steps):
                opt.step(adam_closure)
                adam_done += 1
                iteration, row, names = rows.pop()
                values = row.tolist()  # after the update is queued: one read per iteration, the NaN guard
                check_finite(values[0], iteration)
                history.record(progress(iteration, names, values))
                history.flush()
        seconds = time.perf_counter() - start
        early = optimizer == "lbfgs" and opt.state[x].get("n_iter", 0) < steps
        with (nullcontext() if early else torch.no_grad()), cast:
            opt.zero_grad(set_to_none=True)
            terms = model(x)
        if early:  # is the gradient at the result exactly 0 (torch's first stopping test)?
            terms.total.backward()
            stop = lbfgs_stop(opt.state[x], steps=steps, max_eval=max_eval, line_search=line_search,
                              gradient_is_zero=not bool(x.grad.any()))
        final = numbers(terms)
        iterations = completed()
        check_finite(final["total_loss"], iterations)
        history.finish(Progress(iterations, evaluations, seconds, final))
    except BaseException as e:  # how far it got, for the job's record; the rows were handed to the callback
        ran = {"evaluations": evaluations, "seconds": time.perf_counter() - start}
        if isinstance(e, KeyboardInterrupt) and not isinstance(e, Interrupted):
            raise Interrupted(completed(), **ran) from e
        if isinstance(e, (Interrupted, NonFiniteLoss)):
            e.iterations, e.evaluations, e.seconds = completed(), ran["evaluations"], ran["seconds"]
        raise
    return Result(x.detach(), final, iterations, evaluations, seconds, stop[1] if stop else None)
