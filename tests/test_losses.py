import pytest
import torch

from nst import losses


def seeded(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_gram_equals_loop_definition():
    f = seeded(1, 4, 3, 5)
    flat = f[0].reshape(4, -1)
    expected = torch.tensor([[sum(flat[i, k] * flat[j, k] for k in range(15)) for j in range(4)] for i in range(4)])
    torch.testing.assert_close(losses.gram(f)[0], expected, rtol=1e-5, atol=1e-5)


def test_gram_ignores_pixel_order():
    f = seeded(1, 6, 4, 4)
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(1))
    shuffled = f.flatten(2)[..., perm].reshape(f.shape)
    torch.testing.assert_close(losses.gram(f), losses.gram(shuffled), rtol=1e-5, atol=1e-4)


def test_content_conventions():
    f, p = seeded(1, 8, 5, 5, seed=1), seeded(1, 8, 5, 5, seed=2)
    diff2 = [(a - b) ** 2 for a, b in zip(f.flatten().tolist(), p.flatten().tolist())]
    assert losses.content_paper(f, p).item() == pytest.approx(0.5 * sum(diff2), rel=1e-5)
    assert losses.content_seed(f, p).item() == pytest.approx(sum(diff2) / len(diff2), rel=1e-5)
    assert losses.content_paper(f, f).item() == 0 and losses.content_seed(f, f).item() == 0


def test_style_conventions():
    f, s = seeded(1, 6, 4, 3, seed=3), seeded(1, 6, 4, 3, seed=4)
    g, a = losses.gram(f), losses.gram(s)
    n, m = 6, 12
    sq = sum(v * v for v in (g - a).flatten().tolist())
    assert losses.style_paper(g / m, a / m, n).item() == pytest.approx(sq / (4 * n**2 * m**2), rel=1e-5)
    assert losses.style_seed(g / m, a / m, n).item() == pytest.approx(sq / (n**4 * m**2), rel=1e-5)
    assert losses.style_paper(g, g, n).item() == 0


def test_unknown_convention():
    with pytest.raises(ValueError, match="'gatys'.*paper.*seed"):
        losses.convention("gatys")


def test_conventions_tap_and_layer_weights():
    """seed: conv indices read the conv output before its ReLU and style layers add up; paper: rectified, 1/|L|."""
    seed, paper = losses.convention("seed"), losses.convention("paper")
    assert (seed.tap, seed.layer_weights(4)) == ("conv", [1.0] * 4)
    assert (paper.tap, paper.layer_weights(4)) == ("relu", [0.25] * 4)
    assert losses.convention("paper", tap="conv").tap == "conv"  # either convention can use either tap
    with pytest.raises(ValueError, match="loss 'foo'"):
        losses.convention("foo")


def test_seed_constant_is_for_the_caffe_weights_only():
    g, a = seeded(8, 8), seeded(8, 8, seed=1)
    caffe = losses.convention("seed", weights="original")
    assert caffe.style_scale == losses.SEED_STYLE_SCALE["original"] < 1
    for weights in ("normalized", "random", "/some/torchvision/vgg19.pth"):
        assert losses.convention("seed", weights=weights).style_scale == 1.0
    torch.testing.assert_close(caffe.style(g, a, 8), caffe.style_scale * losses.style_seed(g, a, 8))
    assert losses.convention("paper", weights="original").style_scale == 1.0
