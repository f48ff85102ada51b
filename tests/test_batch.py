"""nst.batch.GroupLoss: a group's jobs evaluated in one batched pass give each job's own loss terms."""
import math

import pytest
import torch

from nst.batch import GroupLoss
from nst.engine import term_names, term_row
from nst.images import load_image
from nst.transfer import StyleTransfer, Targets
from tests.conftest import CONTENT, STYLE


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
