"""Peak memory and seconds per iteration against image size, each size a real job in its own process.

    python benchmarks/memory.py [--device cpu] [--sizes 256 512 1024 2048] [--steps 5] [--precisions fp32 bf16]
                                [--job "arch=efficientnet_lite0 weights=pretrained" ...]

Each (job, precision, size) runs `python -m experiments.transfer` on the embedded images (the default content
and style layers of that network) with L-BFGS without line search (one evaluation per iteration, so the time
does not depend on how long the first line search takes) and reads metrics.json: `peak_memory_mb` (CPU: the
process's peak resident set over the job, so it includes Python, torch and the weights, see the 32 px row;
CUDA: max_memory_allocated) and seconds per evaluation. "estimate" is nst.memory.estimate_mb for the same job
(what the job adds beyond the process; validation refuses a job whose estimate exceeds the free memory). L-BFGS
keeps min(steps - 1, history_size) pairs of image-sized vectors: a long run at 2048 px holds 100 pairs, 7.2 GiB,
which a 5-step run does not; the estimate includes them for the run measured. A size that fails (out of memory,
or refused up front) ends that job's row: larger sizes are not tried.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from machine import describe

ROOT = Path(__file__).resolve().parents[1]


def measure(job: list[str], size: int, precision: str, steps: int, device: str, out: Path) -> dict | str:
    """metrics.json of one job, or the last line of its error output."""
    args = [sys.executable, "-m", "experiments.transfer", *job, f"size={size}", f"steps={steps}",
            f"precision={precision}", f"device={device}", "progress=false", "max_pixels=67108864",
            "optimizer.line_search=null",
            f"hydra.run.dir={out}"]
    r = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        lines = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
        return lines[-1] if lines else f"exit {r.returncode}"
    return json.loads((out / "metrics.json").read_text())


def estimate(metrics: dict, steps: int) -> float:
    """nst.memory.estimate_mb for the job that wrote `metrics`."""
    from nst.preflight import structure
    from nst.memory import job_estimate_mb

    cfg = metrics["config"]
    cnn = structure(cfg["arch"], cfg["weights"], cfg["pooling"])  # the job's network on the meta device
    return job_estimate_mb(cnn, cfg["content_layers"] + cfg["style_layers"], (metrics["width"], metrics["height"]),
                           tap=cfg["tap"], loss=cfg["loss"], optimizer=cfg["optimizer"], steps=steps,
                           content_layers=cfg["content_layers"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 256, 512, 1024, 2048])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--job", action="append", help="overrides naming the network (default: VGG19, original)")
    args = parser.parse_args()
    jobs = args.job or [""]
    print(f"{describe(args.device)}; {args.steps} L-BFGS iterations per job, embedded images")
    print("| network | precision | long side | image | peak MiB | estimate MiB | s / evaluation |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for job in jobs:
            for precision in args.precisions:
                for size in args.sizes:
                    out = Path(tmp) / f"{len(list(Path(tmp).iterdir()))}"
                    m = measure(job.split(), size, precision, args.steps, args.device, out)
                    name = job or "vgg19 original"
                    if isinstance(m, str):
                        print(f"| {name} | {precision} | {size} | | failed: {m[:120]} | |")
                        break
                    print(f"| {name} | {precision} | {size} | {m['width']}x{m['height']} | {m['peak_memory_mb']:.0f} "
                          f"| {estimate(m, args.steps):.0f} | {m['seconds'] / m['evaluations']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
