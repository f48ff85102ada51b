"""Each style loss against its written definition on seeded random features, and its invariants."""
import math

import pytest
import torch

from nst import style_losses
from nst.losses import convention, gram

SEED = convention("seed")


def features(m_side: int, seed: int, n: int = 4) -> torch.Tensor:
    """(1, n, m_side, m_side) non-negative features, like a ReLU's."""
    return torch.randn(1, n, m_side, m_side, generator=torch.Generator().manual_seed(seed)).relu()


def mmd2(x: torch.Tensor, y: torch.Tensor, k) -> float:
    """MMD² (V-statistic) between the position vectors of two feature maps, by its definition."""
    x, y = x.flatten(2)[0].T.double(), y.flatten(2)[0].T.double()
    return (k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()).item()


def loss(name: str, f: torch.Tensor, s: torch.Tensor, seed: int = 0) -> float:
    fn = style_losses.style_loss(name, SEED)
    return fn(f, fn.target([s], [1.0], seed=seed)).item() / style_losses.SCALES[name]


def test_mmd_linear_and_poly_equal_their_kernels():
    f, s = features(5, 1), features(6, 2)  # different sizes: statistics are per position
    n = f.shape[1]
    assert loss("mmd_linear", f, s) == pytest.approx(mmd2(f, s, lambda a, b: a @ b.T) / n, rel=1e-4)
    c = (s.flatten(2)[0] ** 2).sum(0).mean().item()  # E_S |x|²
    poly = mmd2(f, s, lambda a, b: (a @ b.T + c) ** 2)
    assert loss("mmd_poly", f, s) == pytest.approx(poly / n**2, rel=1e-4)


def test_mmd_gauss_approximates_the_gaussian_kernel(monkeypatch):
    f, s = features(5, 3), features(6, 4)
    x = s.flatten(2)[0].T.double()
    d2 = torch.cdist(x, x).pow(2).mean().item()  # the style's mean squared distance between positions
    exact = mmd2(f, s, lambda a, b: torch.exp(-torch.cdist(a, b).pow(2) / d2))
    monkeypatch.setattr(style_losses, "RANDOM_FEATURES", 40000)
    assert loss("mmd_gauss", f, s) == pytest.approx(exact, rel=0.05)


def test_bn_stats_matches_means_and_deviations():
    f, s = features(5, 5), features(6, 6)
    a, b = f.flatten(2)[0].double(), s.flatten(2)[0].double()
    expected = ((a.mean(1) - b.mean(1)) ** 2 + (a.std(1, unbiased=False) - b.std(1, unbiased=False)) ** 2).mean()
    assert loss("bn_stats", f, s) == pytest.approx(expected.item(), rel=1e-3)


@pytest.mark.parametrize("name", list(style_losses.STYLE_LOSSES))
def test_invariants(name):
    f, s = features(6, 7), features(6, 8)
    perm = torch.randperm(36, generator=torch.Generator().manual_seed(9))
    shuffled = f.flatten(2)[..., perm].reshape(f.shape)
    assert loss(name, f, f) == pytest.approx(0, abs=1e-6)
    assert loss(name, shuffled, s) == pytest.approx(loss(name, f, s), rel=1e-4)
    if name == "gram_softmax":  # its softmax normalises each image as a whole: a blend is not the side-by-side image
        return
    # a 50/50 blend of two styles is the mixture of their positions: both images side by side
    fn = style_losses.style_loss(name, SEED)
    blended = fn(f, fn.target([s, f], [0.5, 0.5]))
    side_by_side = fn(f, fn.target([torch.cat([s, f], -1)], [1.0]))
    assert blended.item() == pytest.approx(side_by_side.item(), rel=1e-4, abs=1e-9)
    assert loss(name, f, s) > 0


def test_unknown_style_loss():
    with pytest.raises(ValueError, match="'wasserstein' is not one of.*mmd_gauss"):
        style_losses.style_loss("wasserstein", SEED)


def test_gram_backward_equals_autograds():
    f = torch.randn(1, 5, 4, 3, generator=torch.Generator().manual_seed(10), requires_grad=True)
    upstream = torch.randn(1, 5, 5, generator=torch.Generator().manual_seed(11))  # not symmetric
    (gram(f) * upstream).sum().backward()
    ours, f.grad = f.grad, None
    flat = f.flatten(2)
    ((flat @ flat.transpose(1, 2)) * upstream).sum().backward()
    torch.testing.assert_close(ours, f.grad)
    assert math.isclose(gram(f)[0, 0, 1].item(), (f[0, 0] * f[0, 1]).sum().item(), rel_tol=1e-5)
