"""nst.batch.GroupLoss: a group's jobs evaluated in one batched pass give each job's own loss terms."""
import logging
import math
import re

import pytest
import torch

from nst.batch import GroupLoss, fitting, group_layers, run_all
from nst.inputs import image_size
from nst.memory import batch_job_mb, weights_mb
from nst.metrics import noted
from nst.run import JobResult, model_for
from nst.spec import JobSpec
from nst.engine import term_names, term_row
from nst.images import load_image
from nst.transfer import StyleTransfer, Targets
from tests.conftest import CONTENT, STYLE, job_config


@pytest.mark.parametrize("per_image", [True, False], ids=["per-image (CPU)", "batched (GPU)"])
@pytest.mark.parametrize("style_loss", ["gram", "mmd_gauss", "bn_stats"])
@pytest.mark.parametrize("loss", ["seed", "paper"])
def test_group_loss_equals_each_job_alone(vgg, loss, style_loss, per_image):
    """Jobs with other layer sets and orders, weights, a 0-weight layer and no content; per-job terms agree."""
    cnn, prep = vgg
    content, style = (prep(load_image(p, (40, 32))) for p in (CONTENT, STYLE))
    jobs = [dict(content_layers=[4], style_layers=[0, 1, 2], weights=None, alpha=1.0, beta=1e3, tv=0.0),
            dict(content_layers=[2], style_layers=[1], weights=[2.0], alpha=3.0, beta=1e2, tv=0.5),
            dict(content_layers=[4], style_layers=[2, 0, 1], weights=[1.0, 0.0, 0.5], alpha=1.0, beta=1e4, tv=0.0),
            dict(content_layers=[], style_layers=[0, 1], weights=None, alpha=0.0, beta=1.0, tv=0.0)]
    models = [StyleTransfer(Targets(cnn, content, style, content_layers=j["content_layers"],
                                    style_layers=j["style_layers"], convention=loss, style_loss=style_loss),
                            alpha=j["alpha"], beta=j["beta"], style_layer_weights=j["weights"], tv_weight=j["tv"])
              for j in jobs]
    group = GroupLoss(models, torch.device("cpu"))
    group.per_image = per_image  # the GPU's way (one pass, every term for every image) runs on the CPU too
    assert len(group.style) < sum(len(j["style_layers"]) for j in jobs)  # shared (layer, target) pairs
    x = torch.randn(4, 3, 32, 40, generator=torch.Generator().manual_seed(0)) * 30
    active = torch.tensor([3, 0, 2])  # a subset, out of order: rows follow `active`
    totals, rows = group(x[:3], active, torch.autocast("cpu", enabled=False))
    for k, j in enumerate(active.tolist()):
        alone = models[j](x[k:k + 1])
        assert group.names[j] == term_names(alone)
        expected = term_row(alone)
        torch.testing.assert_close(rows[k, :len(expected)], expected, rtol=1e-5, atol=1e-6)
        assert all(math.isnan(v) for v in rows[k, len(expected):].tolist())
        torch.testing.assert_close(totals[k], alone.total, rtol=1e-5, atol=1e-6)
    # each row's gradient is its own image's: row 1's loss does not depend on image 0
    x = x[:3].clone().requires_grad_(True)
    (g,) = torch.autograd.grad(group(x, active, torch.autocast("cpu", enabled=False))[0][1], x)
    assert g[0].abs().max() == 0 and g[2].abs().max() == 0 and g[1].abs().max() > 0


def test_a_layer_listed_twice_is_refused(vgg):
    cnn, prep = vgg
    image = prep(load_image(CONTENT, 32))
    with pytest.raises(ValueError, match=r"style_layers \[2, 'relu2_1'\] name relu2_1 twice"):
        Targets(cnn, image, image, content_layers=[4], style_layers=[2, "relu2_1"], convention="paper")


def specs_of(*overrides: list[str]) -> list[JobSpec]:
    """Job specs of tiny configs (32 px, 3 iterations), one per override list."""
    return [JobSpec.from_config(job_config("debug=tiny", "steps=3", "device=cpu", *o)) for o in overrides]


def run_all_results(specs: list[JobSpec], **kwargs) -> dict:
    results: dict = {}
    run_all(specs, done=results.__setitem__, **kwargs)
    return results


def memory_for(specs: list[JobSpec], jobs: float) -> tuple[float, list, tuple[int, int]]:
    """A memory budget (MiB) that holds this many of these jobs in one batch by nst.memory's estimate; the jobs'
    models and size."""
    size = image_size(specs[0].targets.content, 32)
    models = [model_for(s, size, torch.device("cpu"))[0] for s in specs]
    cnn = models[0].targets.encoder.cnn
    content = [layer for m in models for layer in m.targets.content_layers]
    per_job = batch_job_mb(cnn, group_layers(models), "conv", size, history=2, content_layers=content)
    return weights_mb(cnn) + jobs * per_job, models, size


def test_a_group_that_does_not_fit_in_memory_runs_in_smaller_batches(caplog):
    specs = specs_of(["beta=1e2"], ["beta=1e4"], ["beta=1e6", "style_layers=[0,1]"])
    budget, models, size = memory_for(specs, 2.5)
    cpu = torch.device("cpu")
    assert fitting(models, size, 2, cpu, budget) == 2
    assert fitting(models, size, 2, cpu, memory_for(specs, 3.5)[0]) == 3
    assert fitting(models, size, 2, cpu, 1.0) == 1  # each job has passed validation alone: it runs

    whole = run_all_results(specs, memory_mb=1e9)
    with caplog.at_level(logging.WARNING, logger="nst.batch"):
        split = run_all_results(specs, memory_mb=budget)
    assert f"3 jobs at {size[0]}x{size[1]} need an estimated" in caplog.text and "batches of 2" in caplog.text
    assert sorted(split) == [0, 1, 2]
    for k in range(3):  # a smaller batch rounds differently (bmm of 1 row), nothing more
        assert split[k].terms["total_loss"] == pytest.approx(whole[k].terms["total_loss"], rel=0.02)
        assert split[k].iterations == whole[k].iterations == 3


def test_a_batch_that_breaks_fails_its_own_jobs_and_the_sweep_goes_on(tmp_path):
    """A batch whose run raises fails its own jobs with that error; the next batch and the next group still run.
    Here the error is an input file gone since validation: the content (the whole group) or one job's init image
    (its batch of two, when memory splits the group)."""
    gone = tmp_path / "gone.png"
    specs = specs_of([f"content={gone}", "beta=1e2"], [f"content={gone}", "beta=1e4"], ["beta=1e2"], ["beta=1e4"])
    results = run_all_results(specs)
    assert sorted(results) == [0, 1, 2, 3]
    assert all(isinstance(results[k], OSError) and "gone.png" in str(results[k]) for k in (0, 1))
    assert all(isinstance(results[k], JobResult) and results[k].iterations == 3 for k in (2, 3))

    specs = specs_of([f"init={gone}"], ["beta=1e4"], ["beta=1e2"], ["beta=1e6"])  # one group, batches of 2
    results = run_all_results(specs, memory_mb=memory_for(specs, 2.5)[0])
    assert sorted(results) == [0, 1, 2, 3]
    assert all(isinstance(results[k], OSError) and "gone.png" in str(results[k]) for k in (0, 1))
    assert all(isinstance(results[k], JobResult) and results[k].iterations == 3 for k in (2, 3))


def test_a_batched_job_that_diverges_fails_alone_with_the_value_it_reached():
    """The failure names the non-finite loss, as a solo run does (it named the last finite one before)."""
    fixed = ["optimizer.line_search=null", "optimizer.lr=1e4", "steps=10"]  # no line search: steps overshoot
    results = run_all_results(specs_of(["beta=1e9", *fixed], ["beta=1e3", *fixed], ["beta=1e3"]))
    for k in (0, 1):
        assert isinstance(results[k], ArithmeticError), results[k]
        assert re.match(r"loss became (inf|nan) at iteration \d+; lower", str(results[k])), str(results[k])
        done = noted(results[k])  # for its record: the rows up to the last finite evaluation
        assert done["history"] and all(math.isfinite(r["total_loss"]) for r in done["history"])
        assert done["history"][-1]["iteration"] <= done["steps"] and done["device"] == "cpu"
    assert isinstance(results[2], JobResult) and results[2].iterations == 3
