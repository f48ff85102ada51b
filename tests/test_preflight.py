"""What a job is checked for before it runs (nst/preflight.py, with nst/config.py's rules), in this process: the
config composed by Hydra as a job gets it, the message one line naming the key and the value as typed."""
from __future__ import annotations

import pytest
import torch

from experiments.config import typed_overrides
from nst import preflight
from nst.config import ConfigError
from tests.conftest import job_config

TINY = ["debug=tiny"]


def check(*overrides: str) -> None:
    preflight.preflight(job_config(*TINY, *overrides), typed_overrides(overrides))


def test_the_defaults_pass():
    check()
    check("optimizer=adam")


@pytest.mark.parametrize("overrides, expected", [
    (["init=/nope/start.png"], "init '/nope/start.png' does not exist"),
    (["style=[/nope/a.jpg]"], "style [/nope/a.jpg] does not exist"),
    (["style=[{tiny},/nope/b.jpg]"], "style '/nope/b.jpg' does not exist"),
    (["style=[]"], "style [] is empty"),
    (["device=gpu"], "device 'gpu' is not one of auto | cpu | cuda | cuda:N"),
    (["style_scale=100"], "style_scale 100 must be a finite number > 0 and <= 16"),
    (["optimizer=adam", "optimizer.lr=-1"], "optimizer.lr -1 must be a finite number > 0"),
    (["optimizer.history_size=0"], "optimizer.history_size 0 must be an integer >= 1"),
    (["tap=pre"], "tap 'pre' is not one of"),
    (["weights=orignal"], "did you mean original?"),
    (["arch=resnet18"], "weights 'original' exist for vgg19 only"),
    (["arch=resnet18", "weights=random", "content_layers=[relu4_2]"], "content_layers [relu4_2] is not valid"),
    (["max_pixels=0"], "max_pixels 0 must be a finite number >= 1"),
    (["max_pixels=1e2"], "over max_pixels 100; use a smaller size"),
    (["noise_std=1e9"], "noise_std 1e9 must be a finite number >= 0 and <= 10"),
    (["size=4096"], "size 4096 gives a 3495x4096 image"),
    (["size=8192", "max_pixels=67108864"], "size 8192 gives a 6991x8192 image that needs an estimated"),
    (["multiscale=[[64,2],[4096,2]]"], "multiscale [[64,2],[4096,2]] gives"),
    (["style_scale=16", "size=256"], "style_scale 16 gives a 4096x"),
    (["style_layer_weights=[1,2]"], "style_layer_weights [1,2] has 2 weights for 5 style layers"),
    (["style_layers=[0,1,0]"], "style_layers [0,1,0] names 0 twice"),
    (["tap=conv", "style_layers=[conv1_1,0]"], "style_layers [conv1_1,0] names conv1_1 twice (conv1_1 and 0)"),
    (["content_layers=[]", "style_layers=[]"], "nothing to optimise"),
    (["alpha=0", "ratio=1e-3"], "nothing to optimise"),
    (["beta=1e4", "ratio=1e-3"], "beta 1e4 has no effect while ratio 1e-3 is set"),
    (["painting=shipwreck", "beta=1e4"], "beta 1e4 has no effect while ratio 0.001 is set"),
    (["content_layers=[]", "beta=0"], "content_layers [] and beta 0"),
    (["init=style", "style_layers=[]"], "init 'style' needs style layers"),
    (["tv_weight=-1"], "tv_weight -1 must be a finite number >= 0"),
    (["alpha=nan"], "alpha nan must be a finite number >= 0"),
    (["optimizer.name=adam"], "optimizer.name 'adam' switches the optimizer without its settings; give optimizer=adam"),
    (["seed=99999999999999999999"], "seed 99999999999999999999 is out of torch.manual_seed's range"),
    (["seed=-1"], "seed -1 must be >= 0: every run is seeded (no random seed)"),  # torch wraps it to 2**64 - 1
    (["arch=vit_b_16", "weights=random"], "arch 'vit_b_16' is a vision transformer"),
    (["arch=efficientnet_lite0"], "weights 'original' is not one of pretrained | random (arch=efficientnet_lite0); "
                                  "backbone=efficientnet_lite0 sets arch, weights and its layers"),
    (["+sizee=1"], "sizee 1 is not a config key; did you mean size?"),
    (["multiscale=[[32,2],[64]]"], "multiscale [[32,2],[64]] holds [64]"),
    (["style_blend=[1,2]"], "style_blend [1,2] has 2 weights for 1 style image"),
    (["arch=resnet18", "weights=random", "content_layers=[layer1.0.relu]"],
     "names 'layer1.0.relu', a module the network calls 2 times in one pass"),
    (["arch=resnet18", "weights=random", "content_layers=[fc]"], "names 'fc', whose output is 2-D, not a feature"),
    (["precision=BF16"], "did you mean bf16?"),
    (["size=3", "content_layers=[conv1_1]"], "size 3 gives a 3x3 image, too small for style_layers layer 4 (conv3_1)"),
    (["style_scale=0.05", "size=64"], "style_scale 0.05 gives a 3x2 style image, too small for style_layers layer 4"),
    (["multiscale=[[4,2],[64,2]]"], "multiscale [[4,2],[64,2]] gives a 3x4 image, too small for content_layers"),
    (["arch=alexnet", "weights=random", "size=8"], "size 8 gives a 7x8 image, too small for content_layers layer 4"),
])
def test_careless_values_are_refused_in_one_line(files, overrides, expected):
    with pytest.raises(ConfigError) as e:
        check(*(o.format(**files) for o in overrides))
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides, key", [
    (["init=content", "seed=3"], "seed"),
    (["init=content", "noise_std=0.5"], "noise_std"),
    (["optimizer=adam", "optimizer.history_size=5"], "optimizer.history_size"),
    (["optimizer=adam", "optimizer.line_search=null"], "optimizer.line_search"),
    (["precision=tf32", "device=cpu"], "precision"),
    (["backbone=efficientnet_lite0", "pooling=avg"], "pooling"),
    (["multiscale=[[24,2],[32,2]]", "size=48"], "size"),  # the report showed 48 for a 32 px result
    (["style_layers=[]", "beta=1e5"], "beta"),  # a content reconstruction
    (["content_layers=[]", "alpha=5"], "alpha"),  # a style reconstruction (with a ratio, alpha sets beta)
    (["seed=3", "noise_std=0.5", "optimizer.history_size=5", "precision=bf16", "pooling=avg"], None)])
def test_a_typed_key_without_effect_is_warned_of(caplog, monkeypatch, overrides, key):
    """A sweep over a key the job does not use (seeds of a content start, Adam's history) gave identical cells."""
    monkeypatch.setattr(preflight, "WARNED", set())
    with caplog.at_level("WARNING", logger="nst"):
        check(*overrides)
    warned = [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()]
    assert len(warned) == (key is not None) and all(w.startswith(f"{key}=") for w in warned), warned


def test_a_layer_scan_of_a_vision_transformer_is_refused_as_preflight_refuses_it():
    """layer_scan's sweep (${conv_indices:...}) builds the network before any job's preflight: it said
    "is not a torchvision architecture" of vit_b_16, which is one (trial F)."""
    from experiments.config import conv_indices

    with pytest.raises(ValueError, match=r"arch 'vit_b_16' is a vision transformer \(a fixed 224 px input"):
        conv_indices("vit_b_16")
    assert conv_indices("vgg19") == ",".join(f"[{i}]" for i in range(16))


def test_scalar_layers_and_a_tiny_image_upscaled_are_accepted_with_a_warning(files, caplog):
    check("content_layers=4", "style_layer_weights=null")
    with caplog.at_level("WARNING", logger="nst"):
        check(f"content={files['tiny']}")
    warning = [r.getMessage() for r in caplog.records if "upscaled" in r.getMessage()]
    assert len(warning) == 1 and files["tiny"] in warning[0] and "8x6 px" in warning[0] \
        and "32x24" in warning[0], warning


def test_weights_file_of_the_right_shapes_passes(tmp_path):
    import torchvision

    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    check("arch=resnet18", f"weights={path}", "content_layers=[3]", "style_layers=[0,1]")
    state = torchvision.models.resnet18().state_dict()
    # a head fine-tuned to 5 classes, or none (a self-supervised checkpoint): never run, so both pass
    state["fc.weight"], state["fc.bias"] = torch.zeros(5, 512), torch.zeros(5)
    torch.save(state, path)
    check("arch=resnet18", f"weights={path}", "content_layers=[3]")
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, path)
    check("arch=resnet18", f"weights={path}", "content_layers=[3]")
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, path)
    with pytest.raises(ConfigError, match=r"layer1.0.conv1.weight: \[64, 64, 1, 1\] in the file, \[64, 64, 3, 3\]"):
        check("arch=resnet18", f"weights={path}", "content_layers=[3]")


def test_the_network_is_built_on_the_meta_device_by_the_backbones_own_dispatch():
    """preflight's network is nst.backbones.backbone's, without weights: the same modules, no memory."""
    from nst.backbones import backbone

    for arch, weights in (("vgg19", "original"), ("resnet18", "random"), ("efficientnet_lite0", "pretrained")):
        meta = preflight.structure(arch, weights, "avg")
        real = backbone(arch, weights, pooling="avg")[0]
        assert all(p.is_meta for p in meta.parameters())
        assert [type(m) for m in meta.modules()] == [type(m) for m in real.modules()]
        assert [p.shape for p in meta.parameters()] == [p.shape for p in real.parameters()]
