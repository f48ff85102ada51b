"""Other torchvision backbones (seeded random weights, nothing is downloadable) through the conv-index scheme. The
layer scan over ResNet18's 20 conv indices is the README's own command, run in tests/test_readme.py."""
import pytest
import torch
import torchvision

from nst.backbones import backbone
from nst.features import Encoder, convs, layer_key
from nst.transfer import StyleTransfer
from tests.conftest import run_app


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    return path


def test_weights_file_is_loaded_and_indices_follow_the_arch(resnet_file):
    net, prep = backbone("resnet18", str(resnet_file), pooling="avg")
    saved = torch.load(resnet_file, weights_only=True)
    torch.testing.assert_close(net.conv1.weight, saved["conv1.weight"])
    assert len(convs(net)) == 20 and layer_key(0, net) == "relu(bn1)"
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    x = prep(torch.rand(1, 3, 64, 64))
    feats = Encoder(net, [0, 19])(x)
    torch.testing.assert_close(feats[0], torch.relu(net.bn1(net.conv1(x))))
    assert feats[19].shape == (1, 512, 2, 2)
    # style transfer works through it, and a random vgg16 differs from it
    model = StyleTransfer(net, x, x, content_layers=[8], style_layers=[0, 4], beta=1)
    assert model(prep(torch.rand(1, 3, 64, 64))).total.item() > 0
    vgg16, _ = backbone("vgg16", "random")
    assert len(convs(vgg16)) == 13


def test_a_file_without_the_classifier_head_or_with_another_loads_its_trunk(resnet_file, tmp_path):
    saved = torch.load(resnet_file, weights_only=True)
    for name, head in (("headless", {}), ("five", {"fc.weight": torch.ones(5, 512), "fc.bias": torch.ones(5)})):
        path = tmp_path / f"{name}.pth"
        torch.save({k: v for k, v in saved.items() if not k.startswith("fc.")} | head, path)
        net, _ = backbone("resnet18", str(path))
        torch.testing.assert_close(net.layer4[1].conv2.weight, saved["layer4.1.conv2.weight"])
        assert net.fc.weight.shape == (1000, 512)
    torch.save({k: v for k, v in saved.items() if k != "layer1.0.bn1.running_mean"}, path)
    with pytest.raises(ValueError, match="layer1.0.bn1.running_mean missing"):
        backbone("resnet18", str(path))


def test_bad_backbones_are_one_line_errors(resnet_file, tmp_path):
    for args, message in ((["arch=vgg16", f"weights={resnet_file}"], "do not fit vgg16"),
                          (["arch=resnet18"], "weights 'original' exist for vgg19 only"),
                          (["arch=lenet", "weights=random"], "arch 'lenet' is not a torchvision architecture")):
        r = run_app("experiments.transfer", "debug=tiny", *args,
                    f"hydra.run.dir={tmp_path}")
        errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
        assert r.returncode == 2 and len(errors) == 1 and message in errors[0], r.stderr[-1500:]
