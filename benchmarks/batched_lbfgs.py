"""Wall time of B style-transfer problems optimised as one batch (nst.batched_lbfgs) vs B sequential torch L-BFGS runs.

    python benchmarks/batched_lbfgs.py [--size 128] [--steps 50] [--batches 1 5 25] [--device cpu|cuda]
        [--dtype float32|float64] [--repeats 1]

Problem b: Gatys 2016 through the real VGG19 (original weights, max pooling), paper convention (content relu4_2,
style relu1_1..relu5_1, w_l = 1/5), alpha = 1, beta_b log-spaced over 1e1..1e4, one noise start shared by all (a
sweep over beta). Both sides run the same objective and steps with torch.optim.LBFGS's set-up in nst/engine.py
(lr 1, max_eval 10 x steps, history 100, strong Wolfe, tolerances 0) and its loss rescaling by max(1, |g_0|_1);
"sequential" runs torch.optim.LBFGS on one problem after the other. "evals only": as many batched evaluations
(forward + backward of all B) as the batched run made rounds, without an optimiser: the floor of the batched time.
Times are the minimum over --repeats, after a warm-up evaluation. "agree": the largest relative difference of the
two sides' final losses. In float64 it is ~1e-14 (the same iterates). In float32 it is ~1e-3..1e-1, and as large
as between torch.optim.LBFGS and itself started from x0 changed by 1e-7 relative (measured: 14% after 3 iterations,
5% after 10): the fp32 paper-convention loss (Grams ~1e13) carries rounding noise that depends on the batch's
kernels, and the line search's decisions amplify it. Wall times on a shared CPU are noisy.
"""
from __future__ import annotations

import argparse
import os
import time

import torch

from nst.assets import embedded
from nst.backbones import backbone
from nst.batched_lbfgs import minimize
from nst.engine import loss_scale
from nst.metrics import cpu_model
from nst.features import Encoder
from nst.images import load_image
from nst.losses import gram

CONTENT_LAYER = "relu4_2"
STYLE_LAYERS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]


def grams(f: torch.Tensor) -> torch.Tensor:
    """Per-position Gram matrices (n, C, C): nst.losses.gram (fp32) in float32, a plain product in float64."""
    g = gram(f) if f.dtype == torch.float32 else f.flatten(2) @ f.flatten(2).transpose(1, 2)
    return g / f[0, 0].numel()


def objective(size: int, device: str, dtype: torch.dtype, betas: torch.Tensor):
    """fn(x, active) -> (total losses, [content, style]) for the problems `active`, and the shared start image."""
    cnn, prep = backbone("vgg19", "original", pooling="max")
    enc = Encoder(cnn.to(device, dtype), [CONTENT_LAYER, *STYLE_LAYERS])
    content = prep(load_image(embedded("grace_hopper"), (size, size))).to(device, dtype)
    style = prep(load_image(embedded("kandinsky"), (size, size))).to(device, dtype)
    betas = betas.to(device, dtype)
    with torch.no_grad():
        p = enc(content)[CONTENT_LAYER]
        a = [grams(enc(style)[k]) for k in STYLE_LAYERS]

    def fn(x: torch.Tensor, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = enc(x)
        c = 0.5 * (f[CONTENT_LAYER] - p).pow(2).sum((1, 2, 3))
        s = sum(0.2 * (grams(f[k]) - ak).pow(2).sum((1, 2)) / (4.0 * f[k].shape[1] ** 2)
                for k, ak in zip(STYLE_LAYERS, a))
        return c + betas[active] * s, torch.stack([c, s], 1).detach()

    noise = 0.5 + 0.1 * torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    return fn, prep(noise).to(device, dtype)


def sequential(fn, x0: torch.Tensor, steps: int) -> tuple[list[float], int]:
    """Each problem alone with torch.optim.LBFGS as nst/engine.py sets it up: final losses, evaluations."""
    losses, evals = [], 0
    for b in range(x0.shape[0]):
        x = x0[b:b + 1].clone().requires_grad_(True)
        opt = torch.optim.LBFGS([x], lr=1.0, max_iter=steps, max_eval=10 * steps, history_size=100,
                                line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)
        active = torch.tensor([b], device=x.device)
        scale = None

        def closure():
            nonlocal scale, evals
            opt.zero_grad(set_to_none=True)
            total = fn(x, active)[0][0]
            evals += 1
            loss = total if scale is None else total / scale
            loss.backward()
            if scale is None:  # nst/engine.py's scaling, as minimize(rescale=True) applies it
                scale = loss_scale(x.grad.norm().item())
                x.grad.div_(scale)
                loss = loss.detach() / scale
            return loss

        opt.step(closure)
        with torch.no_grad():
            losses.append(fn(x.detach(), active)[0].item())
    return losses, evals


def timed(run, device: str, repeats: int):
    """(minimum seconds over repeats, the last run's result)."""
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = run()
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 5, 25])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    dtype = getattr(torch, args.dtype)
    gpu = torch.cuda.get_device_name() if args.device == "cuda" else "-"
    load = "%.1f" % os.getloadavg()[0] if hasattr(os, "getloadavg") else "?"
    print(f"CPU: {cpu_model()} ({torch.get_num_threads()} threads, load {load}); GPU: {gpu}; torch {torch.__version__}")
    print(f"VGG19 original weights, {args.size} px, {args.steps} L-BFGS iterations (strong Wolfe), {args.dtype}, "
          f"min of {args.repeats}")
    print(f"{'B':>3} | {'batched s':>9} | {'evals only s':>12} | {'sequential s':>12} | {'speed-up':>8} | "
          f"{'evals batched/seq':>17} | agree")
    print("--: | --------: | -----------: | -----------: | -------: | ----------------: | ----:")
    for b in args.batches:
        betas = torch.logspace(1, 4, b) if b > 1 else torch.tensor([1e3])
        fn, start = objective(args.size, args.device, dtype, betas)
        x0 = start.expand(b, -1, -1, -1).contiguous()
        for n in (b, 1):  # warm-up: allocator and kernels of both batch sizes
            fn(x0[:n].clone().requires_grad_(True), torch.arange(n, device=args.device))[0].sum().backward()
        t_batch, r = timed(lambda: minimize(fn, x0, steps=args.steps, rescale=True), args.device, args.repeats)
        t_seq, (seq_losses, seq_evals) = timed(lambda: sequential(fn, x0, args.steps), args.device, args.repeats)
        def evals_only(rounds: int = max(r.evaluations)) -> None:
            for _ in range(rounds):
                x = x0.clone().requires_grad_(True)
                (g,) = torch.autograd.grad(fn(x, torch.arange(b, device=args.device))[0].sum(), x)

        t_floor, _ = timed(evals_only, args.device, args.repeats)
        agree = max(abs(u - v) / abs(v) for u, v in zip(r.loss, seq_losses))
        failed = sum(s == "failed" for s in r.status)
        print(f"{b:>3} | {t_batch:>9.2f} | {t_floor:>12.2f} | {t_seq:>12.2f} | {t_seq / t_batch:>7.2f}x | "
              f"{sum(r.evaluations):>8}/{seq_evals:<8} | {agree:.1e}" + (f" ({failed} failed)" if failed else ""))


if __name__ == "__main__":
    main()
