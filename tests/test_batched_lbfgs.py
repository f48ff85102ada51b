"""nst.batched_lbfgs.minimize against torch.optim.LBFGS run on each problem alone (float64, CPU, fast)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from nst.batched_lbfgs import Step, minimize
from nst.engine import loss_scale

F64 = torch.float64


def solo(f, x0: torch.Tensor, steps: int, *, lr: float = 1.0, line_search: str | None = "strong_wolfe",
         tolerance_grad: float = 0.0, max_eval: int | None = None, scale: bool = False):
    """torch.optim.LBFGS configured as nst/engine.py does, one step() call: (x, n_iter, func_evals)."""
    x = x0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=lr, max_iter=steps, max_eval=max_eval or 10 * steps, history_size=100,
                            line_search_fn=line_search, tolerance_grad=tolerance_grad, tolerance_change=0.0)
    c = None

    def closure():
        nonlocal c
        opt.zero_grad()
        loss = f(x) if c is None else f(x) / c
        loss.backward()
        if scale and c is None:  # nst/engine.py's rescaling by max(1, |g_0|_2 / GRADIENT_CAP)
            c = loss_scale(x.grad.norm().item())
            x.grad.div_(c)
            loss = loss.detach() / c
        return loss

    opt.step(closure)
    return x.detach(), opt.state[x]["n_iter"], opt.state[x]["func_evals"]


def rosenbrock(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Per-row Rosenbrock, x (n, D), curvature a (n,)."""
    return (a[:, None] * (x[:, 1:] - x[:, :-1] ** 2) ** 2 + (1 - x[:, :-1]) ** 2).sum(-1)


def gram_loss(x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Per-row Gram matching of a (n, 8, 8, 8) feature map to target Grams (n, 8, 8): a quartic."""
    f = x.flatten(2)
    g = f @ f.transpose(1, 2) / f.shape[-1]
    return weight * ((g - target) ** 2).sum((1, 2))


def gram_problems(b: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, 8, 64, generator=gen, dtype=F64) ** 2  # non-negative, as ReLU features
    target = feats @ feats.transpose(1, 2) / 64
    weight = torch.tensor([1.0, 3.0, 0.3, 10.0][:b], dtype=F64)
    x0 = 0.5 * torch.randn(b, 8, 8, 8, generator=gen, dtype=F64)
    return x0, target, weight


def close(a: torch.Tensor, b: torch.Tensor, rel: float) -> bool:
    return (a - b).abs().max().item() <= rel * max(1.0, b.abs().max().item())


@pytest.mark.parametrize("line_search", ["strong_wolfe", None])
def test_single_problem_follows_torch_iterates(line_search):
    x0 = torch.randn(1, 20, generator=torch.Generator().manual_seed(0), dtype=F64)
    a = torch.tensor([100.0], dtype=F64)
    # the same run cut after k iterations (max_eval fixed so that the line search's budget is the same)
    for k, rel in [(1, 1e-14), (2, 1e-14), (5, 1e-14), (10, 1e-13), (25, 1e-11), (50, 1e-6)]:
        # Rosenbrock amplifies rounding: torch itself moves ~2e-8 at 50 iterations for a 1e-16 change of x0
        ref, n_iter, evals = solo(lambda x: rosenbrock(x[None], a)[0], x0[0], k, line_search=line_search,
                                  max_eval=500)
        r = minimize(lambda x, i: rosenbrock(x, a[i]), x0, steps=k, line_search=line_search, max_eval=500)
        assert (r.iterations, r.evaluations, r.status) == ([n_iter], [evals], ["ok"])
        assert close(r.x[0], ref, rel), (k, (r.x[0] - ref).abs().max())
        assert r.loss[0] == pytest.approx(rosenbrock(ref[None], a).item(), rel=max(rel, 1e-12))


@pytest.mark.parametrize("line_search", ["strong_wolfe", None])
def test_single_gram_problem_matches_torch(line_search):
    x0, target, weight = gram_problems(1)
    lr = 1.0 if line_search else 0.2
    ref, n_iter, evals = solo(lambda x: gram_loss(x[None], target, weight)[0], x0[0], 50, lr=lr,
                              line_search=line_search)
    r = minimize(lambda x, i: gram_loss(x, target[i], weight[i]), x0, steps=50, lr=lr, line_search=line_search)
    assert (r.iterations, r.evaluations, r.status) == ([n_iter], [evals], ["ok"])
    assert close(r.x[0], ref, 1e-10)
    assert r.loss[0] == pytest.approx(gram_loss(ref[None], target, weight).item(), rel=1e-9, abs=1e-10)


def test_batch_equals_solo_runs():
    x0, target, weight = gram_problems(4)
    r = minimize(lambda x, i: gram_loss(x, target[i], weight[i]), x0, steps=50)
    for b in range(4):
        ref, n_iter, evals = solo(lambda x: gram_loss(x[None], target[b:b + 1], weight[b:b + 1])[0], x0[b], 50)
        assert (r.iterations[b], r.evaluations[b], r.status[b]) == (n_iter, evals, "ok")
        assert close(r.x[b], ref, 1e-8)
        assert r.loss[b] == pytest.approx(gram_loss(ref[None], target[b:b + 1], weight[b:b + 1]).item(), rel=1e-8)
    assert len(set(r.evaluations)) > 1  # the line searches differed, so problems waited for each other


def test_nan_fails_alone():
    x0, target, weight = gram_problems(4)
    calls = [0] * 4

    def fn(x, i):
        loss = gram_loss(x, target[i], weight[i])
        for row, b in enumerate(i.tolist()):
            calls[b] += 1
            if b == 2 and calls[b] >= 7:
                loss = loss + torch.where(torch.arange(len(i)) == row, math.nan, 0.0)  # not loss * nan: 0 * nan
        return loss

    r = minimize(fn, x0, steps=40)
    assert r.status[2] == "failed" and "nan" in r.reason[2] and r.evaluations[2] == 7
    assert torch.isfinite(r.x[2]).all() and math.isfinite(r.loss[2])  # the last accepted point
    for b in (0, 1, 3):
        ref, n_iter, evals = solo(lambda x: gram_loss(x[None], target[b:b + 1], weight[b:b + 1])[0], x0[b], 40)
        assert (r.iterations[b], r.evaluations[b], r.status[b]) == (n_iter, evals, "ok")
        assert close(r.x[b], ref, 1e-8)


def test_problems_stop_independently():
    # 0: starts at its minimum (zero gradient); 1: a quadratic, converged long before the budget; 2: Rosenbrock
    gen = torch.Generator().manual_seed(3)
    centre = torch.randn(3, 10, generator=gen, dtype=F64)
    h = torch.linspace(1.0, 4.0, 10, dtype=F64)
    a = torch.tensor(100.0, dtype=F64)
    kind = torch.tensor([0, 0, 1])
    x0 = torch.randn(3, 10, generator=gen, dtype=F64)
    x0[0] = centre[0]

    def fn(x, i):
        quad = (h * (x - centre[i]) ** 2).sum(-1)
        return torch.where(kind[i] == 0, quad, rosenbrock(x, a.expand(len(i))))

    r = minimize(fn, x0, steps=60, tolerance_grad=1e-9)
    assert r.status == ["stopped", "stopped", "ok"] and r.iterations[0] == 0 and r.evaluations[0] == 1
    assert 0 < r.iterations[1] < 30 and "tolerance_grad" in r.reason[1]
    for b in range(3):
        ref, n_iter, evals = solo(lambda x: fn(x[None], torch.tensor([b]))[0], x0[b], 60, tolerance_grad=1e-9)
        assert (r.iterations[b], r.evaluations[b]) == (n_iter, evals)
        assert close(r.x[b], ref, 1e-8)


def test_conv_net_gram_loss():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU())
    net = net.to(F64).requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    content, style = torch.rand(1, 3, 16, 16, generator=gen, dtype=F64), torch.rand(1, 3, 16, 16, generator=gen,
                                                                                    dtype=F64)

    def feats(x):
        h1 = net[:2](x)
        return h1, net[2:](h1)

    def gram(f):
        f = f.flatten(2)
        return f @ f.transpose(1, 2) / f.shape[-1]

    p = feats(content)[1]
    grams = [gram(f) for f in feats(style)]
    beta = torch.tensor([1e1, 1e2, 1e3], dtype=F64)

    def fn(x, i):
        h = feats(x)
        c = ((h[1] - p) ** 2).mean((1, 2, 3))
        s = sum(((gram(f) - a) ** 2).mean((1, 2)) for f, a in zip(h, grams))
        return c + beta[i] * s, torch.stack([c, s], 1)

    x0 = torch.rand(3, 3, 16, 16, generator=gen, dtype=F64)
    seen: list[Step] = []
    r = minimize(fn, x0, steps=30, callback=seen.append)
    for b in range(3):
        ref, n_iter, evals = solo(lambda x: fn(x[None], torch.tensor([b]))[0][0], x0[b], 30)
        assert (r.iterations[b], r.evaluations[b], r.status[b]) == (n_iter, evals, "ok")
        assert close(r.x[b], ref, 1e-6)
        c, s = fn(ref[None], torch.tensor([b]))[1][0].tolist()
        assert r.aux[b] == pytest.approx([c, s], rel=1e-6)
        mine = [st for st in seen if st.index == b]  # the callback: the start, then each iteration once, in order
        assert [st.iteration for st in mine] == list(range(31))
        assert mine[-1].loss == r.loss[b] and mine[-1].aux == r.aux[b] and mine[-1].evaluations == r.evaluations[b]


def test_rescale_matches_engine_scaling():
    x0, target, weight = gram_problems(2, seed=5)
    weight = weight * 1e12  # |g_0|_2 > GRADIENT_CAP, so the scale matters
    x = x0[:1].clone().requires_grad_(True)
    gram_loss(x, target[:1], weight[:1]).sum().backward()
    assert loss_scale(x.grad.norm().item()) > 10
    r = minimize(lambda x, i: gram_loss(x, target[i], weight[i]), x0, steps=30, rescale=True)
    for b in range(2):
        f = lambda x: gram_loss(x[None], target[b:b + 1], weight[b:b + 1])[0]  # noqa: E731
        ref, n_iter, evals = solo(f, x0[b], 30, scale=True)
        assert (r.iterations[b], r.evaluations[b]) == (n_iter, evals)
        assert close(r.x[b], ref, 1e-8)
        assert r.loss[b] == pytest.approx(f(ref).item(), rel=1e-6)  # reported unscaled


def test_rescale_survives_a_gradient_whose_fp32_norm_overflows():
    """|g_0|_2 is taken in float64 as nst/engine.py does: in fp32 it overflowed to inf (a sum of squares above
    3.4e38), which made the scale inf, the gradient 0 and the problem "stopped" at its start point."""
    gen = torch.Generator().manual_seed(0)
    target = torch.randn(2, 64, generator=gen)
    weight = torch.tensor([1.0, 1e19])  # problem 1: gradient entries ~2e19, |g|^2 ~1e40 in fp32 = inf
    x0 = torch.zeros(2, 64)
    fn = lambda x, i: weight[i] * ((x - target[i]) ** 2).sum(-1)  # noqa: E731
    assert torch.isinf((2 * weight[1] * (x0[1] - target[1])).norm())
    r = minimize(fn, x0, steps=5, rescale=True)
    for b in range(2):
        start = fn(x0[b:b + 1], torch.tensor([b])).item()
        assert r.status[b] != "failed" and r.iterations[b] >= 1, r.reason[b]  # the bug: 0 iterations, "stopped"
        assert r.loss[b] < 1e-6 * start


def test_no_line_search_reports_the_final_point_and_zero_steps():
    x0, target, weight = gram_problems(2)
    fn = lambda x, i: gram_loss(x, target[i], weight[i])  # noqa: E731
    r = minimize(fn, x0, steps=5, lr=0.2, line_search=None)
    assert r.evaluations == [5, 5]  # torch's count: no evaluation after the last fixed step ...
    assert r.loss == pytest.approx(fn(r.x, torch.arange(2)).tolist(), rel=1e-12)  # ... but the loss is reported
    r0 = minimize(fn, x0, steps=0)
    assert torch.equal(r0.x, x0) and r0.iterations == [0, 0] and r0.status == ["ok", "ok"]
    with pytest.raises(ValueError):
        minimize(fn, x0, steps=5, line_search="armijo")
