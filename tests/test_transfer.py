import math

import pytest
import torch
from torch import nn

from nst.engine import NonFiniteLoss, Trace, optimise
from nst.features import Encoder, convs, layer_key
from nst.images import load_image
from nst.transfer import StyleTransfer
from tests.conftest import CONTENT, STYLE


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1),
                         nn.AvgPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())


def test_any_cnn_indices_count_its_convs():
    cnn = small_cnn()
    assert len(convs(cnn)) == 3
    # conv 0 is followed by a ReLU (its output is used); conv 1 is not (relu is applied to it)
    assert [layer_key(i, cnn) for i in range(3)] == ["1", "relu(2)", "5"]
    x = torch.randn(1, 3, 8, 8)
    feats = Encoder(cnn, [1, 0])(x)
    torch.testing.assert_close(feats[1], torch.relu(cnn[2](cnn[1](cnn[0](x)))))
    assert (feats[0] >= 0).all()


def test_style_transfer_runs_on_a_small_cnn():
    """Content-only and style-only optimisation both work through any conv net."""
    cnn = small_cnn()
    content, style, init = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16), torch.rand(1, 3, 16, 16)
    for layers, term in (({"content_layers": [2], "style_layers": []}, "content_loss"),
                         ({"content_layers": [], "style_layers": [0, 1]}, "style_loss")):
        model = StyleTransfer(cnn, content, style, alpha=1, beta=1, convention="paper", **layers)
        history = Trace()
        result = optimise(model, init, steps=30, callback=history)
        assert result.terms[term] * 10 < history[0].terms[term]
    assert set(model(init).style_layers) == {"1", "relu(2)"}


def test_total_is_weighted_sum_and_layer_weights_default(vgg):
    net, prep = vgg
    c = prep(load_image(CONTENT, 32))
    s = prep(load_image(STYLE, (c.shape[-1], c.shape[-2])))
    model = StyleTransfer(net, c, s, content_layers=[4], style_layers=[0, 2], alpha=2.0, beta=30.0,
                          convention="paper")
    t = model(prep(torch.rand(c.shape)))
    assert model.weights == [0.5, 0.5]  # paper: w_l = 1/|layers|
    expected_style = 0.5 * sum(t.style_layers.values())
    assert t.style.item() == pytest.approx(expected_style.item(), rel=1e-6)
    assert t.total.item() == pytest.approx(2.0 * t.content.item() + 30.0 * t.style.item(), rel=1e-6)
    assert model(c).content.item() == 0.0  # the content target reproduces itself


@pytest.mark.parametrize("kwargs, match", [
    ({"style_layer_weights": [1.0]}, "one weight per style layer"), ({"style_layers": [99]}, "index 99"),
])
def test_layers_and_weights_that_do_not_fit_are_refused(vgg, kwargs, match):
    net, prep = vgg
    c = prep(load_image(CONTENT, 32))
    args = {"content_layers": [4], "style_layers": [0, 1]} | kwargs
    with pytest.raises(ValueError, match=match):
        StyleTransfer(net, c, c, **args)


def test_too_small_for_the_deepest_layer(vgg):
    net, prep = vgg
    c = prep(load_image(CONTENT, 12))
    with pytest.raises(ValueError, match=r"image size 10x12 is too small for layers \['relu5_1'\]"):
        StyleTransfer(net, c, None, content_layers=["relu5_1"], style_layers=[])


def test_nan_stops_the_job(vgg):
    net, prep = vgg
    c = prep(load_image(CONTENT, 32))
    model = StyleTransfer(net, c, None, content_layers=[0], style_layers=[])
    bad = c.clone()
    bad[..., 0, 0] = math.nan
    with pytest.raises(NonFiniteLoss, match="nan"):
        optimise(model, bad, steps=3)


def test_a_job_that_did_not_lower_its_loss_fails_with_what_to_try(tmp_path):
    # Adam at lr 1e-30 moves no float32 pixel: the image is its noise start (as a bf16 job whose first line search
    # failed was, which ended `ok`)
    from tests.conftest import run_app

    ran = run_app("experiments.transfer", "debug=tiny", "optimizer=adam", "optimizer.lr=1e-30", "steps=2",
                  f"hydra.run.dir={tmp_path}")
    assert ran.returncode == 2, ran.stderr[-2000:]
    assert [line for line in ran.stderr.splitlines() if line.startswith("error:")] == [ran.stderr.strip().splitlines()[-1]]
    assert "no progress at 32 px" in ran.stderr and "try another optimizer.lr or optimizer=lbfgs" in ran.stderr
    import json

    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "failed" and record["steps"] == 2 and not (tmp_path / "result.png").exists()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * math.log10(1.0 / ((a.clamp(0, 1) - b) ** 2).mean().item())


@pytest.mark.slow
def test_content_reconstruction_fig1_claim(vgg):
    """From noise, relu1_1 reconstructs the photo (>= 30 dB); relu5_2 keeps less of it (>= 3 dB lower)."""
    net, prep = vgg
    img = load_image(CONTENT, 64)
    init = prep(0.5 + 0.1 * torch.randn(img.shape, generator=torch.Generator().manual_seed(0)))
    scores = {}
    for index in (0, 13):
        model = StyleTransfer(net, prep(img), None, content_layers=[index], style_layers=[], alpha=100, beta=0)
        scores[index] = psnr(prep.inverse(optimise(model, init, steps=100).image), img)  # 34.8, 8.8 dB
    assert scores[0] >= 30.0, scores
    assert scores[13] <= scores[0] - 3.0, scores


@pytest.mark.slow
def test_style_only_lowers_style_loss_100x(vgg):
    net, prep = vgg
    style = prep(load_image(STYLE, 64))
    model = StyleTransfer(net, None, style, content_layers=[], style_layers=[0, 2, 4, 8], alpha=0, beta=1.0)
    init = prep(0.5 + 0.1 * torch.randn(style.shape, generator=torch.Generator().manual_seed(0)))
    history = Trace()
    result = optimise(model, init, steps=100, callback=history)
    assert history[0].iteration == 0
    assert result.terms["style_loss"] * 100 <= history[0].terms["style_loss"]


def test_tap_reads_before_or_after_the_relu(vgg):
    """Index 4 under tap=conv is conv3_1's output (negative values occur); under tap=relu it is relu3_1 (never)."""
    net, prep = vgg
    x = prep(load_image(CONTENT, 32))
    pre, post = Encoder(net, [4], tap="conv")(x)[4], Encoder(net, [4], tap="relu")(x)[4]
    assert (pre < 0).any() and (post >= 0).all()
    torch.testing.assert_close(post, torch.relu(pre))
    assert (layer_key(4, net, "conv"), layer_key(4, net, "relu")) == ("conv3_1", "relu3_1")
    seed = StyleTransfer(net, x, x, content_layers=[4], style_layers=[0, 2], convention="seed")
    assert set(seed(x).style_layers) == {"conv1_1", "conv2_1"} and seed.keys[4] == "conv3_1"


def test_seed_sums_style_layers_and_paper_averages(vgg):
    net, prep = vgg
    c = prep(load_image(CONTENT, 32))
    s = prep(load_image(STYLE, (c.shape[-1], c.shape[-2])))
    x = prep(torch.rand(c.shape))
    for convention, weight in (("seed", 1.0), ("paper", 1 / 3)):
        model = StyleTransfer(net, c, s, content_layers=[], style_layers=[0, 2, 4], convention=convention)
        t = model(x)
        assert t.style.item() == pytest.approx(weight * sum(v.item() for v in t.style_layers.values()), rel=1e-5)
