"""Seconds per L-BFGS iteration and peak memory by image size and precision, on a GPU (or the CPU).

    python benchmarks/gpu_bench.py [--device cuda] [--sizes 256 512] [--steps 20] [--repeats 3]

The paper layer set (content relu4_2, style relu1_1 ... relu5_1, loss=paper, avg pooling, original weights) on
tubingen + composition_vii (the embedded images when ../shared/images is absent), white-noise start. Per size
and precision: median seconds per iteration over --repeats runs of --steps iterations (after one warm-up run,
which also lets cuDNN pick its kernels), the evaluations of the last run (a line search that struggles, e.g. with
a noisy loss, costs evaluations per iteration), peak memory of the run (CUDA: max_memory_allocated), and the
final total loss relative to fp32's after the same iterations.
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import torch
from machine import describe

from nst import memory
from nst.assets import embedded
from nst.engine import optimise
from nst.images import load_image
from nst.transfer import StyleTransfer
from nst.vgg import vgg19

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared/images"
PRECISIONS = {"fp32": None, "tf32": None, "bf16": torch.bfloat16}


def images(root: Path) -> tuple[Path, Path]:
    """The paper pair when present, else the embedded pair."""
    pair = root / "content/tubingen.jpg", root / "style/composition_vii.jpg"
    return pair if all(p.is_file() for p in pair) else (embedded("grace_hopper"), embedded("kandinsky"))


def measure(net, prep, content: Path, style: Path, size: int, precision: str, steps: int, repeats: int,
            device: torch.device) -> tuple[float, float, float, int]:
    """(median s/iteration, peak MiB, final total loss, evaluations of the last run) for one size and precision."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "tf32"
    torch.backends.cudnn.benchmark = device.type == "cuda"
    c = load_image(content, size)
    s = load_image(style, (c.shape[-1], c.shape[-2]))
    model = StyleTransfer(net, prep(c).to(device), prep(s).to(device), content_layers=["relu4_2"],
                          style_layers=["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"], alpha=1, beta=1e3,
                          convention="paper")
    init = prep(0.5 + 0.1 * torch.randn(c.shape, generator=torch.Generator().manual_seed(0))).to(device)
    optimise(model, init, steps=2, autocast=PRECISIONS[precision])  # warm-up
    times, loss, evaluations = [], float("nan"), 0
    memory.reset_peak(device)
    for _ in range(repeats):
        r = optimise(model, init, steps=steps, autocast=PRECISIONS[precision])
        times.append(r.seconds / max(1, r.iterations))
        loss, evaluations = r.terms["total_loss"], r.evaluations
    return statistics.median(times), memory.peak_mb(device), loss, evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=Path, default=IMAGES)
    args = parser.parse_args()
    device = torch.device(args.device)
    net, prep = vgg19(pooling="avg")
    net = net.to(device)
    content, style = images(args.images)
    print(f"{describe(device)}; {content.stem} + {style.stem}, "
          f"{args.steps} iterations, median of {args.repeats}")
    print("| size | precision | s/iteration | vs fp32 | evaluations | peak MiB | final loss vs fp32 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        base = None
        for precision in args.precisions:
            sec, peak, loss, evaluations = measure(net, prep, content, style, size, precision, args.steps,
                                                   args.repeats, device)
            base = base or (sec, loss)
            print(f"| {size} | {precision} | {sec:.4f} | {base[0] / sec:.2f}x | {evaluations} | {peak:.0f} | "
                  f"{loss / base[1] - 1:+.1%} |", flush=True)


if __name__ == "__main__":
    main()
