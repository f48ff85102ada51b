"""The engine on CUDA: the same job as on the CPU, every option on the device, mixed precision, a whole sweep.

Marked `cuda`; skipped with the reason where CUDA is absent (CI has no GPU): `benchmarks/gpu_check.sh` runs them.
"""
import json
from contextlib import nullcontext

import pandas as pd
import pytest
import torch

from nst.batch import GroupLoss
from nst.losses import gram
from nst.run import model_for
from nst.job import run_job
from nst.spec import JobSpec
from tests.conftest import job_config, run_app

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available on this machine")]
TINY = ["size=48", "steps=20", "progress=false"]


def run(tmp_path, name: str, *overrides: str) -> dict:
    """One job through the job layer; its metrics."""
    return run_job(job_config(*TINY, *overrides), tmp_path / name)


def test_cuda_job_matches_the_cpu_job(tmp_path):
    gpu, cpu = run(tmp_path, "gpu", "device=cuda"), run(tmp_path, "cpu", "device=cpu")
    assert gpu["device"].startswith("cuda") and cpu["device"] == "cpu"
    for key in ("total_loss", "content_loss", "style_loss"):
        assert gpu[key] == pytest.approx(cpu[key], rel=0.01), key
    assert gpu["peak_memory_mb"] > 0


@pytest.mark.parametrize("style_loss", ["gram", "mmd_linear", "mmd_poly", "mmd_gauss", "bn_stats"])
def test_each_style_loss_on_cuda(tmp_path, style_loss):
    m = run(tmp_path, style_loss, "device=cuda", f"style_loss={style_loss}")
    history = (tmp_path / style_loss / "history.csv").read_text().splitlines()
    first = float(history[1].split(",")[history[0].split(",").index("total_loss")])
    assert m["status"] == "ok" and m["total_loss"] < first


@pytest.mark.parametrize("mode", ["luminance", "histogram"])
def test_colour_preservation_on_cuda(tmp_path, mode):
    """The result keeps the content's colours (tests/test_options.py's measures, on the GPU): its chroma under
    luminance-only transfer, its mean colour under histogram matching; nearer than without preservation."""
    import numpy as np
    from PIL import Image

    from nst.color import to_yiq
    from nst.images import load_image
    from tests.conftest import CONTENT

    def image(name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(Image.open(tmp_path / name / "result.png"), dtype=np.float32) / 255
                                ).permute(2, 0, 1)[None]

    m = run(tmp_path, mode, "device=cuda", f"preserve_color={mode}")
    run(tmp_path, "plain", "device=cuda")
    ours, plain = image(mode), image("plain")
    content = load_image(CONTENT, (m["width"], m["height"]))
    if mode == "luminance":
        def chroma(x: torch.Tensor) -> float:
            return (to_yiq(x)[:, 1:] - to_yiq(content)[:, 1:]).abs().mean().item()

        assert chroma(ours) < 0.01 < 0.03 < chroma(plain)
    else:
        def colour(x: torch.Tensor) -> float:
            return (x.mean((2, 3)) - content.mean((2, 3))).abs().sum().item()

        assert colour(ours) < colour(plain)


def test_multiscale_on_cuda(tmp_path):
    m = run(tmp_path, "ms", "device=cuda", "multiscale=[[32,5],[48,5]]")
    assert m["steps"] == 10 and m["width"] <= 48 and max(m["width"], m["height"]) == 48


@pytest.mark.parametrize("precision, dtype", [("tf32", torch.float32), ("bf16", torch.bfloat16)])
def test_mixed_precision_keeps_gram_and_losses_fp32(tmp_path, precision, dtype):
    m = run(tmp_path, precision, "device=cuda", f"precision={precision}")
    assert m["status"] == "ok"
    spec = JobSpec.from_config(job_config(*TINY, "device=cuda"))
    model, prep = model_for(spec, (36, 48), torch.device("cuda"))
    x = torch.rand(1, 3, 48, 36, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16"):
        feats = model.targets.encoder(prep(x))
        terms = model(prep(x))
    assert next(iter(feats.values())).dtype == dtype  # the network ran in the precision asked for
    assert gram(next(iter(feats.values()))).dtype == torch.float32
    assert all(t.dtype == torch.float32 for t in [terms.total, *terms.style_layers.values(),
                                                   *terms.content_layers.values()])


def test_grid_on_cuda_with_report_and_figures(tmp_path):
    sweep = tmp_path / "grid"
    r = run_app("experiments.grid", "size=32", "steps=5", "progress=false", "device=cuda",
                "beta=1e2,1e4", "style_layers=[0],[0,1]", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (sweep / "report.csv").is_file() and (sweep / "grid.png").is_file()
    records = [json.loads(p.read_text()) for p in sweep.glob("*/metrics.json")]
    assert len(records) == 4 and all(m["status"] == "ok" and m["device"].startswith("cuda") for m in records)


def test_batched_grid_on_cuda_matches_the_basic_grid(tmp_path):
    """hydra/launcher=batched on the GPU's path (one batched pass): the solo runs' final losses within 2%."""
    grid = ["size=32", "steps=3", "progress=false", "device=cuda", "style_layers=[0],[0,1]", "beta=1e3,1e5"]
    reports = {}
    for name, extra in (("basic", []), ("batched", ["hydra/launcher=batched"])):
        r = run_app("experiments.grid", *grid, *extra, f"hydra.sweep.dir={tmp_path / name}", cwd=tmp_path)
        assert r.returncode == 0, r.stderr[-2000:]
        reports[name] = pd.read_csv(tmp_path / name / "report.csv")
    ours, solo = reports["batched"], reports["basic"]
    assert list(ours["job"]) == list(solo["job"]) and set(ours["status"]) == {"ok"}
    assert all(d.startswith("cuda") for d in ours["device_used"])
    for loss, alone in zip(ours["total_loss"], solo["total_loss"]):
        assert loss == pytest.approx(alone, rel=0.02)


def test_batch_autotunes_cudnn_for_its_full_size_only():
    """cuDNN autotuning (a benchmark run per new shape) for the full batch; a shrunk batch uses the heuristics."""
    spec = JobSpec.from_config(job_config(*TINY, "device=cuda"))
    device = torch.device("cuda")
    models = [model_for(spec, (32, 32), device)[0] for _ in range(3)]
    group = GroupLoss(models, device)
    x = torch.rand(3, 3, 32, 32, device=device)
    for rows, tuned in ((slice(0, 3), True), (slice(0, 2), False), (slice(0, 3), True)):
        group(x[rows], torch.arange(3, device=device)[rows], nullcontext())
        assert torch.backends.cudnn.benchmark is tuned
