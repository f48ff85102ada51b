"""Batched L-BFGS: B independent problems, one batched evaluation per round, each with its own L-BFGS state.

Each problem follows torch.optim.LBFGS(lr, max_iter=steps, max_eval, history_size, line_search_fn, tolerance_grad,
tolerance_change) run in one step() call: same first step, two-loop recursion, curvature test, strong-Wolfe line
search and stopping rules, so a problem's iterates equal a solo torch run up to floating-point rounding.

How: every problem's control flow (the L-BFGS loop and torch's _strong_wolfe) is a Python generator on host floats
that yields requests, as BoTorch's batched L-BFGS-B drives SciPy's reverse-communication loop:
  ("dir",)           compute my next direction d (history update + two-loop), reply (g.d, max|d|);
  ("eval", t, slot)  evaluate f and its gradient at x + t d, keep the gradient in trial slot `slot`, reply (f, g'.d);
  ("step", t, slot)  accept x <- x + t d and the gradient kept in `slot` (-1: keep g; None: not evaluated).
The driver serves all pending requests of a kind together: the vector work runs batched over problems on (B, D)
and (B, m, D) tensors, the objective is called once per round on the problems still running, and each round reads
the device at most twice (one .tolist() of a small table for the directions, one for the evaluation). Problems
that finish, stop or fail (non-finite loss or gradient) drop out of the batch; the others go on unchanged.

Memory: x, d, g, previous g and 3 line-search gradients (8 B D), the history (2 B m D, m = min(history_size,
steps - 1)), and while a direction is computed a newest-first copy of the history in use (up to 2 B m D more).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import torch
from torch import Tensor

from nst.engine import GRADIENT_CAP, non_finite

Objective = Callable[[Tensor, Tensor], "Tensor | tuple[Tensor, Tensor]"]
TRIAL_SLOTS = 3  # gradients a line search holds besides the start point's: two bracket ends and the newest trial


@dataclass
class Step:
    """One problem after one completed iteration (iteration 0: the start point); loss and aux are fn's at x."""

    index: int
    iteration: int
    evaluations: int
    loss: float
    aux: list[float] | None


@dataclass
class BatchResult:
    """Final points (B, ...); per problem fn's loss and aux there, counts, status ("ok", "stopped", "failed")."""

    x: Tensor
    loss: list[float]
    aux: list[list[float] | None]
    iterations: list[int]
    evaluations: list[int]
    status: list[str]
    reason: list[str]


@dataclass
class _Problem:
    index: int
    f: float = math.nan  # the objective at x as the optimiser sees it (divided by the scale when rescale)
    gmax: float = math.nan  # max |g| at x
    gsum: float = math.nan  # sum |g| at x (read at the start only: the first step length)
    loss: float = math.nan  # fn's loss at x
    aux: list[float] | None = None
    t: float = 0.0  # the last step length
    iterations: int = 0
    evaluations: int = 0
    status: str = "running"
    reason: str = ""
    trials: dict[int, tuple[float, float, float, list[float] | None]] = field(default_factory=dict)
    gen: Generator | None = None
    request: tuple | None = None


def _div(a: float, b: float) -> float:
    """a / b with IEEE semantics (torch's tensors give inf or nan where Python floats raise)."""
    if b:
        return a / b
    return math.nan if a == 0 or a != a else math.copysign(math.inf, a) * math.copysign(1.0, b)


def _cubic_interpolate(x1: float, f1: float, g1: float, x2: float, f2: float, g2: float,
                       bounds: tuple[float, float] | None = None) -> float:
    """torch.optim.lbfgs._cubic_interpolate on host floats."""
    xmin_bound, xmax_bound = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * _div(f1 - f2, x1 - x2)
    d2_square = d1 * d1 - g1 * g2  # d1 * d1, not d1 ** 2: Python's ** raises on overflow
    if d2_square >= 0:
        d2 = math.sqrt(d2_square)
        if x1 <= x2:
            min_pos = x2 - (x2 - x1) * _div(g2 + d2 - d1, g2 - g1 + 2 * d2)
        else:
            min_pos = x1 - (x1 - x2) * _div(g1 + d2 - d1, g1 - g2 + 2 * d2)
        return min(max(min_pos, xmin_bound), xmax_bound)
    return (xmin_bound + xmax_bound) / 2.0


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise dot products of (n, D) tensors, one kernel (a batched matrix product)."""
    return torch.bmm(a.unsqueeze(1), b.unsqueeze(2)).view(-1)


def _free(*used: int) -> int:
    return next(s for s in range(TRIAL_SLOTS) if s not in used)


def _strong_wolfe(t: float, f: float, gtd: float, d_norm: float, max_ls: int, c1: float = 1e-4, c2: float = 0.9,
                  tolerance_change: float = 1e-9) -> Generator[tuple, tuple[float, float], tuple[float, int, float]]:
    """torch.optim.lbfgs._strong_wolfe as a generator; returns (f, slot of g, t) of the accepted point.

    Gradients are named by slot (-1: the start point's, held by the driver) instead of held as tensors.
    """
    slot = 0
    f_new, gtd_new = yield ("eval", t, slot)
    t_prev, f_prev, g_prev, gtd_prev = 0.0, f, -1, gtd
    done = False
    ls_iter = 0
    while ls_iter < max_ls:
        if f_new > (f + c1 * t * gtd) or (ls_iter > 1 and f_new >= f_prev):
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, slot]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        if abs(gtd_new) <= -c2 * gtd:
            bracket, bracket_f, bracket_g = [t], [f_new], [slot]
            done = True
            break
        if gtd_new >= 0:
            bracket, bracket_f, bracket_g = [t_prev, t], [f_prev, f_new], [g_prev, slot]
            bracket_gtd = [gtd_prev, gtd_new]
            break
        min_step = t + 0.01 * (t - t_prev)
        max_step = t * 10
        tmp = t
        t = _cubic_interpolate(t_prev, f_prev, gtd_prev, t, f_new, gtd_new, bounds=(min_step, max_step))
        t_prev, f_prev, g_prev, gtd_prev = tmp, f_new, slot, gtd_new
        slot = _free(g_prev)
        f_new, gtd_new = yield ("eval", t, slot)
        ls_iter += 1
    if ls_iter == max_ls:
        bracket, bracket_f, bracket_g = [0.0, t], [f, f_new], [-1, slot]

    # zoom phase
    insuf_progress = False
    low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[-1] else (1, 0)
    while not done and ls_iter < max_ls:
        if abs(bracket[1] - bracket[0]) * d_norm < tolerance_change:
            break
        t = _cubic_interpolate(bracket[0], bracket_f[0], bracket_gtd[0], bracket[1], bracket_f[1], bracket_gtd[1])
        eps = 0.1 * (max(bracket) - min(bracket))
        if min(max(bracket) - t, t - min(bracket)) < eps:
            if insuf_progress or t >= max(bracket) or t <= min(bracket):
                t = max(bracket) - eps if abs(t - max(bracket)) < abs(t - min(bracket)) else min(bracket) + eps
                insuf_progress = False
            else:
                insuf_progress = True
        else:
            insuf_progress = False
        slot = _free(*bracket_g)
        f_new, gtd_new = yield ("eval", t, slot)
        ls_iter += 1
        if f_new > (f + c1 * t * gtd) or f_new >= bracket_f[low_pos]:
            bracket[high_pos], bracket_f[high_pos], bracket_g[high_pos], bracket_gtd[high_pos] = t, f_new, slot, gtd_new
            low_pos, high_pos = (0, 1) if bracket_f[0] <= bracket_f[1] else (1, 0)
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (bracket[high_pos] - bracket[low_pos]) >= 0:
                bracket[high_pos], bracket_f[high_pos] = bracket[low_pos], bracket_f[low_pos]
                bracket_g[high_pos], bracket_gtd[high_pos] = bracket_g[low_pos], bracket_gtd[low_pos]
            bracket[low_pos], bracket_f[low_pos], bracket_g[low_pos], bracket_gtd[low_pos] = t, f_new, slot, gtd_new
    return bracket_f[low_pos], bracket_g[low_pos], bracket[low_pos]


def _lbfgs(p: _Problem, steps: int, lr: float, line_search: str | None, tolerance_grad: float,
           tolerance_change: float, max_eval: int) -> Generator[tuple, tuple[float, float], tuple[str, str]]:
    """The loop of torch.optim.LBFGS.step for one problem whose start point the driver has evaluated."""
    if p.gmax <= tolerance_grad:
        return "stopped", "gradient below tolerance_grad at the start"
    while p.iterations < steps:
        p.iterations += 1  # counted as torch's n_iter: also an iteration that stops at the descent test below
        gtd, d_norm = yield ("dir",)
        prev_f = p.f
        t = (min(1.0, _div(1.0, p.gsum)) if p.iterations == 1 else 1.0) * lr
        if gtd > -tolerance_change:
            return "stopped", f"directional derivative {gtd:.3g} above -tolerance_change"
        if line_search is not None:
            _, slot, t = yield from _strong_wolfe(t, p.f, gtd, d_norm, max_ls=max_eval - p.evaluations)
            yield ("step", t, slot)
        elif p.iterations != steps:  # torch evaluates after a fixed step except in the last iteration
            yield ("eval", t, 0)
            yield ("step", t, 0)
        else:
            yield ("step", t, None)
        if p.iterations == steps:
            break
        if p.evaluations >= max_eval:
            return "stopped", f"max_eval {max_eval} reached"
        if p.gmax <= tolerance_grad:
            return "stopped", "gradient below tolerance_grad"
        if abs(t) * d_norm <= tolerance_change:
            return "stopped", "step below tolerance_change"
        if abs(p.f - prev_f) < tolerance_change:
            return "stopped", "loss change below tolerance_change"
    return "ok", ""


def minimize(fn: Objective, x0: Tensor, *, steps: int, lr: float = 1.0, history_size: int = 100,
             line_search: str | None = "strong_wolfe", tolerance_grad: float = 0.0, tolerance_change: float = 0.0,
             max_eval: int | None = None, rescale: bool = False,
             callback: Callable[[Step], None] | None = None) -> BatchResult:
    """Minimise fn(x, active) over each of the B points stacked in x0 (B, ...), each problem with its own L-BFGS.

    fn(x, active) gets the points of the problems listed in `active` (long, on x0's device) stacked as x (n, ...)
    and returns their losses (n,), or (losses, aux) with aux (n, k) of anything to hand back (loss terms). Rows must
    be independent: row i's gradient is taken from losses.sum(). max_eval defaults to 10 * steps (nst/engine.py).
    rescale: optimise L_b / max(1, |grad L_b(x0)|_2 / GRADIENT_CAP) as nst/engine.py does (losses and aux are still reported as fn
    gives them). callback(Step) is called in problem order for each problem's start and each completed iteration.
    """
    if line_search not in (None, "strong_wolfe"):
        raise ValueError(f"line_search {line_search!r} is not 'strong_wolfe' or None")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps {steps!r} must be an integer >= 0")
    max_eval = 10 * steps if max_eval is None else max_eval
    B, shape = x0.shape[0], x0.shape[1:]
    X = x0.detach().reshape(B, -1).clone()
    n, dev = X.shape[1], X.device
    m = max(1, min(history_size, steps - 1))  # a run never holds more than steps - 1 pairs
    D, G, G_prev = torch.zeros_like(X), torch.zeros_like(X), torch.zeros_like(X)
    trial_g = X.new_zeros(B, TRIAL_SLOTS, n)
    Y, S, rho = X.new_zeros(B, m, n), X.new_zeros(B, m, n), X.new_zeros(B, m)
    H = X.new_ones(B)  # scale of the initial inverse Hessian
    head = torch.zeros(B, dtype=torch.long, device=dev)  # ring buffer: next slot to write; newest is head - 1
    count = torch.zeros(B, dtype=torch.long, device=dev)
    scale = X.new_ones(B)
    problems = [_Problem(b) for b in range(B)]

    def rows(ps: list[_Problem]) -> Tensor:
        return torch.tensor([p.index for p in ps], device=dev)

    def column(values: list[float]) -> Tensor:
        return torch.tensor(values, dtype=X.dtype, device=dev)[:, None]

    def emit(p: _Problem) -> None:
        if callback is not None:
            callback(Step(p.index, p.iterations, p.evaluations, p.loss, p.aux))

    def evaluate(ps: list[_Problem], ts: list[float] | None, slots: list[int] | None,
                 grad: bool = True) -> list[list[float]]:
        """fn and its gradient at x + t d for each problem; one readback of [f, loss, g.d, max|g|, sum|g|, aux...]."""
        i = rows(ps)
        slot = torch.tensor(slots, device=dev) if slots is not None else None
        with torch.no_grad():
            # addcmul: fused like torch's p.add_(d, alpha=t) (bitwise equal on CPU)
            x = X[i] if ts is None else torch.addcmul(X[i], column(ts), D[i])
        with torch.enable_grad() if grad else torch.no_grad():
            x.requires_grad_(grad)
            out = fn(x.view(len(ps), *shape), i)
            losses, aux = out if isinstance(out, tuple) else (out, None)
            if losses.shape != (len(ps),):
                raise ValueError(f"fn must return one loss per problem, shape ({len(ps)},); got {tuple(losses.shape)}")
            if not grad:
                f = losses / scale[i]
                table = [f, losses]
            else:
                first = slots is None
                if first and rescale:  # nst/engine.py's scale c = max(1, |g_0|_2 / GRADIENT_CAP) (see there why)
                    (g,) = torch.autograd.grad(losses.sum(), x)
                    # the norm in float64 as nst/engine.py: in fp32 it overflows to inf at large weights (alpha=1e20
                    # at 32 px), which made the scale inf, the gradient 0 and the job "stopped" at its start point
                    norm = torch.linalg.vector_norm(g, dim=-1, dtype=torch.float64)
                    scale[i] = (norm / GRADIENT_CAP).clamp(min=1.0).to(X.dtype)
                    g = g / scale[i][:, None]
                    f = losses.detach() / scale[i]
                else:
                    f = losses / scale[i]
                    (g,) = torch.autograd.grad(f.sum(), x)
                with torch.no_grad():
                    if first:
                        G[i] = g
                    else:
                        trial_g[i, slot] = g
                    table = [f, losses, _dot(g, D[i]), g.abs().amax(-1), g.abs().sum(-1)]
        table = torch.stack([v.detach().to(torch.float64) for v in table], 1)
        if aux is not None:
            table = torch.cat([table, aux.detach().reshape(len(ps), -1).to(torch.float64)], 1)
        return table.tolist()

    @torch.no_grad()
    def directions(ps: list[_Problem]) -> list[list[float]]:
        """Next direction of each problem: history update + two-loop recursion (-g at iteration 1); (g.d, max|d|)."""
        i, t = rows(ps), column([p.t for p in ps])
        later = torch.tensor([p.iterations > 1 for p in ps], device=dev)
        g = G[i]
        y, s = g - G_prev[i], D[i] * t
        ys = _dot(y, s)
        ok = later & (ys > 1e-10)  # torch's curvature test, per problem on the device (no readback)
        h = head[i]
        Y[i, h] = torch.where(ok[:, None], y, Y[i, h])
        S[i, h] = torch.where(ok[:, None], s, S[i, h])
        rho[i, h] = torch.where(ok, 1.0 / ys, rho[i, h])
        H[i] = torch.where(ok, ys / _dot(y, y), H[i])
        head[i] = torch.where(ok, (h + 1) % m, h)
        count[i] = torch.where(ok, (count[i] + 1).clamp(max=m), count[i])
        # Two-loop recursion batched over problems: the pairs are gathered newest first, (n, K, D), once; rho is 0
        # past a problem's count, which makes those steps no-ops (a = 0, al - be = 0). Vectors are kept as (n, D, 1)
        # columns so that each dot product is one bmm and each update one addcmul (few ops per pair: launch-bound).
        k_max = min(m, max(p.iterations for p in ps) - 1)
        q = -g.unsqueeze(2)
        if k_max:
            order = torch.arange(k_max, device=dev)
            at = (i[:, None], (head[i][:, None] - 1 - order) % m)
            s_k, y_k = S[at], Y[at]
            rho_k = torch.where(order < count[i][:, None], rho[at], 0.0)[:, :, None, None].unbind(1)
            s_row, s_col = s_k.unsqueeze(2).unbind(1), s_k.unsqueeze(3).unbind(1)
            y_row, y_col = y_k.unsqueeze(2).unbind(1), y_k.unsqueeze(3).unbind(1)
            al = []
            for k in range(k_max):
                al.append(torch.bmm(s_row[k], q) * rho_k[k])
                q = torch.addcmul(q, al[k], y_col[k], value=-1)
        r = q * H[i][:, None, None]
        for k in reversed(range(k_max)):
            be = torch.bmm(y_row[k], r) * rho_k[k]
            r = torch.addcmul(r, al[k] - be, s_col[k])
        r = r.squeeze(2)
        D[i] = r
        return torch.stack([_dot(g, r), r.abs().amax(-1)], 1).tolist()

    @torch.no_grad()
    def accept(ps: list[_Problem]) -> None:
        """x <- x + t d; the gradient and values of the accepted trial become the current ones."""
        i, t = rows(ps), column([p.request[1] for p in ps])
        slot = torch.tensor([-2 if p.request[2] is None else p.request[2] for p in ps], device=dev)
        X[i] = torch.addcmul(X[i], t, D[i])  # the same expression as evaluate's trial point
        g = G[i]
        G_prev[i] = torch.where((slot > -2)[:, None], g, G_prev[i])  # -2: not evaluated (the last fixed step)
        G[i] = torch.where((slot >= 0)[:, None], trial_g[i, slot.clamp(min=0)], g)  # -1: t = 0, g stays
        for p in ps:
            p.t, slot = p.request[1], p.request[2]
            if slot is None:
                p.f = p.loss = math.nan  # torch does not evaluate after the last fixed step: done at the end
                p.aux = None
            else:
                if slot >= 0:
                    p.f, p.gmax, p.loss, p.aux = p.trials[slot]
                emit(p)

    def fail(p: _Problem, loss: float, gtd: float) -> None:
        p.status = "failed"
        p.reason = (non_finite(loss, p.iterations) if not math.isfinite(loss) else
                    f"gradient became non-finite at iteration {p.iterations}; lower the learning rate or the loss "
                    "weights")
        if p.gen is not None:
            p.gen.close()

    def advance(p: _Problem, reply: tuple | None) -> None:
        try:
            p.request = p.gen.send(reply)
        except StopIteration as stop:
            p.status, p.reason = stop.value
            p.request = None

    # the start point: one batched evaluation of all problems
    for p, row in zip(problems, evaluate(problems, None, None)):
        p.evaluations = 1
        p.f, p.loss, gtd, p.gmax, p.gsum, p.aux = *row[:5], row[5:] or None
        if not (math.isfinite(p.f) and math.isfinite(gtd)):  # g.d = g.0: nan iff g has a non-finite entry
            fail(p, p.loss, gtd)
            continue
        emit(p)
        if steps == 0:
            p.status = "ok"
            continue
        p.gen = _lbfgs(p, steps, lr, line_search, tolerance_grad, tolerance_change, max_eval)
        advance(p, None)

    running = [p for p in problems if p.status == "running"]
    while running:
        while any(p.request[0] != "eval" for p in running):
            for kind, serve in (("step", accept), ("dir", directions)):
                ps = [p for p in running if p.request[0] == kind]
                if ps:
                    replies = serve(ps)
                    for k, p in enumerate(ps):
                        advance(p, tuple(replies[k]) if replies is not None else None)
                running = [p for p in running if p.status == "running"]
        if not running:
            break
        for p, row in zip(running, evaluate(running, [p.request[1] for p in running],
                                            [p.request[2] for p in running])):
            p.evaluations += 1
            f, loss, gtd, gmax = row[:4]
            if not (math.isfinite(f) and math.isfinite(gtd)):
                fail(p, loss, gtd)
                continue
            p.trials[p.request[2]] = (f, gmax, loss, row[5:] or None)
            advance(p, (f, gtd))
        running = [p for p in running if p.status == "running"]

    # fixed steps (no line search): the last step's point has not been evaluated; do it, uncounted, as engine does
    unseen = [p for p in problems if p.status != "failed" and math.isnan(p.loss) and p.iterations > 0]
    if unseen:
        for p, row in zip(unseen, evaluate(unseen, None, None, grad=False)):
            p.f, p.loss, p.aux = row[0], row[1], row[2:] or None
            if not math.isfinite(p.loss):
                fail(p, p.loss, 0.0)
            else:
                emit(p)
    return BatchResult(X.view(B, *shape), [p.loss for p in problems], [p.aux for p in problems],
                       [p.iterations for p in problems], [p.evaluations for p in problems],
                       [p.status for p in problems], [p.reason for p in problems])
