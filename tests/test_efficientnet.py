"""EfficientNet-Lite0 with its real ImageNet weights (the `efficientnet` extra, part of `dev`): the trunk, its
preprocessing, what a conv index reads, the one-line errors, and content reconstruction through the CLI."""
import subprocess
import sys

import pandas as pd
import pytest
import torch
from torch.nn import functional as F

from nst.backbones import backbone
from nst.efficientnet import LITE, weights_path
from nst.features import Encoder, conv_count, layer_key
from nst.images import load_image
from nst.inputs import image_size
from tests.conftest import CONTENT, ROOT, STYLE, job_config, run_app

MILITARY_UNIFORM = 652  # ImageNet class of matplotlib's grace_hopper.jpg (Grace Hopper in US Navy uniform)


@pytest.fixture(scope="module")
def lite0():
    return backbone("efficientnet_lite0", "pretrained")


def test_pretrained_trunk_with_its_preprocessing_recognises_the_photo(lite0):
    from efficientnet_lite_pytorch import EfficientNet

    net, prep = lite0
    assert prep is LITE
    photo = load_image(str(CONTENT), (224, 224))
    x = prep(photo)
    torch.testing.assert_close(x, photo * 255 / 128 - 127 / 128)
    torch.testing.assert_close(prep.inverse(x), photo)
    # the trunk is the package's feature extractor, module for module (TF "SAME" padding at any size)
    reference = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(weights_path()),
                                             image_size=None).eval()
    odd = prep(load_image(str(CONTENT), (75, 91)))
    with torch.no_grad():
        torch.testing.assert_close(net(odd), reference.extract_features(odd))
        logits = reference._fc(net(x).mean((2, 3)))
    assert logits.argmax().item() == MILITARY_UNIFORM


def test_an_index_is_a_rectified_conv_read_after_relu6_or_before_it(lite0):
    net, prep = lite0
    assert conv_count(net) == 33  # stem, 15 expand + 16 depthwise convs, head; no project conv
    assert [layer_key(i, net) for i in (0, 1, 2, 3, 32)] == [
        "_act0", "_blocks.0._act1", "_blocks.1._act0", "_blocks.1._act1", "_act1"]
    assert layer_key(3, net, "conv") == "_blocks.1._bn1"
    x = prep(load_image(str(CONTENT), image_size(str(CONTENT), 64)))
    relu6, pre = Encoder(net, [7], "relu")(x)[7], Encoder(net, [7], "conv")(x)[7]
    torch.testing.assert_close(relu6, F.relu6(pre))
    assert pre.max() > 6 and pre.min() < 0  # the clipping at 6 matters: a ReLU would read another feature
    assert relu6.shape[-2:] == (8, 7)  # index 7, block 3's stride-2 depthwise conv: 1/8 of 64 x 55
    block = Encoder(net, ["_blocks.3"], "relu")(x)["_blocks.3"]  # a block output: by name
    assert block.shape[1] == 40 and block.min() < 0


def test_weights_are_pretrained_or_random_only(lite0):
    random_net, _ = backbone("efficientnet_lite0", "random")
    assert not torch.equal(random_net._conv_stem.weight, lite0[0]._conv_stem.weight)
    with pytest.raises(ValueError, match="takes pretrained or random"):
        backbone("efficientnet_lite0", "original")
    with pytest.raises(ValueError, match="exist for efficientnet_lite0 only"):
        backbone("resnet18", "pretrained")


def test_softmax_gram_is_its_definition_and_does_not_flatten_efficientnet_maps(lite0):
    """style_loss=gram_softmax (Wang et al. 2021) is the Gram loss of N M · softmax(F); what it does to real maps."""
    from nst.losses import convention
    from nst.style_losses import SCALES, softmax_map, style_loss

    net, prep = lite0
    x = prep(load_image(str(STYLE), (64, 64)))
    relu6, pre = Encoder(net, [0], "relu")(x)[0], Encoder(net, [0], "conv")(x)[0]
    fn, plain = style_loss("gram_softmax", convention("seed")), style_loss("gram", convention("seed"))
    f, s = relu6.flatten(2), (relu6 * 0.5).flatten(2)
    sigma = f.flatten(1).softmax(1).view_as(f) * f.shape[1] * f.shape[2]
    torch.testing.assert_close(softmax_map(f), sigma)
    assert softmax_map(f).mean().item() == pytest.approx(1.0, rel=1e-4)
    expected = plain(sigma.view_as(relu6), plain.target([(softmax_map(s)).view_as(relu6)], [1.0]))
    torch.testing.assert_close(fn(relu6, fn.target([relu6 * 0.5], [1.0])), SCALES["gram_softmax"] * expected)

    def top_share(t: torch.Tensor) -> float:  # the largest entry's share of the map's sum
        return (t.max() / t.sum()).item()

    # it flattens neither map: a ReLU6 output (<= 6) gets somewhat peakier, pre-activations of ~60 collapse
    assert top_share(relu6) < top_share(softmax_map(relu6.flatten(2))) < 1e-3
    assert top_share(softmax_map(pre.flatten(2))) > 0.5 > 100 * top_share(pre.abs())


@pytest.mark.parametrize("overrides, expected", [
    (["backbone=efficientnet_lite0"], None),
    (["backbone=efficientnet_lite0", "content_layers=[33]"], "layer index 33 is out of range; valid: conv indices 0..32"),
    (["backbone=efficientnet_lite0", "style_layers=[relu1_1]"], "unknown layer 'relu1_1'"),
    (["backbone=efficientnet_lite0", "weights=/nope.pth"], "weights '/nope.pth' is not one of pretrained | random"),
    (["arch=resnet18", "weights=pretrained"], "weights 'pretrained' exist for efficientnet_lite0 only"),
])
def test_config_is_checked_against_the_trunk(overrides, expected):
    from experiments.config import typed_overrides
    from nst.config import ConfigError
    from nst.preflight import preflight

    cfg = job_config(*overrides, "size=32")
    if expected is None:
        preflight(cfg, typed_overrides(overrides))
        return
    with pytest.raises(ConfigError) as e:
        preflight(cfg, typed_overrides(overrides))
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_content_reconstruction_through_the_cli_is_sharper_from_a_shallow_layer(tmp_path):
    """The acceptance check of issue 13: real weights, 64 px, a shallow index reconstructs better than a deep one."""
    r = run_app("experiments.transfer", "-m", "arch=efficientnet_lite0", "weights=pretrained", "size=64",
                "steps=50", "alpha=100", "beta=0", "style_layers=[]", "init=noise", "progress=false",
                "content_layers=[0],[20]", f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-2000:]
    report = pd.read_csv(tmp_path / "report.csv").set_index("content_layers")
    assert set(report["status"]) == {"ok"}
    assert report.loc[0, "content_layer_names"] == "_bn0"  # the seed convention taps before the ReLU6
    shallow, deep = report.loc[0, "content_psnr"], report.loc[20, "content_psnr"]
    assert shallow > deep + 5, (shallow, deep)  # measured: 26.5 and 8.9 dB


@pytest.mark.parametrize("args, message", [
    (["weights=original"], "weights 'original' is not one of pretrained | random (arch=efficientnet_lite0)"),
    (["weights=pretrianed"], "did you mean pretrained?"),
])
def test_bad_weights_are_one_line_errors(tmp_path, args, message):
    r = run_app("experiments.transfer", "arch=efficientnet_lite0", "debug=tiny", *args,
                f"hydra.run.dir={tmp_path}")
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1 and message in errors[0], r.stderr[-1500:]
    assert "Traceback" not in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["experiments.transfer", "experiments.layer_scan"])
def test_without_the_extra_the_error_names_it(tmp_path, entry):
    """The package made unimportable, as on an install without the extra (None in sys.modules blocks an import)."""
    code = ("import runpy, sys; sys.modules['efficientnet_lite_pytorch'] = None; "
            "sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")
    r = subprocess.run([sys.executable, "-c", code, entry, "arch=efficientnet_lite0", "weights=pretrained",
                        "size=32", "steps=1", "progress=false", f"hydra.run.dir={tmp_path}",
                        f"hydra.sweep.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert r.returncode == 2 and len(errors) == 1, r.stderr[-1500:]
    assert 'pip install -e ".[efficientnet]"' in errors[0] and "Traceback" not in r.stderr
