"""The feature transforms against their definitions (nst/wct.py): WCT's whitening and colouring, its blend, AdaIN,
and the degenerate inputs (a flat image, a one-pixel style), which give the documented fallback and never NaN."""
import pytest
import torch

from nst.wct import adain, colour, moments, wct, whiten


def features(c=8, h=20, w=25, seed=0, scale=3.0):
    """Correlated features (C, H, W): a random mixing of independent channels, a mean per channel."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(c, c, generator=g, dtype=torch.float64)
    base = torch.randn(c, h * w, generator=g, dtype=torch.float64) * scale
    return (mix @ base + torch.randn(c, 1, generator=g, dtype=torch.float64) * 5).reshape(c, h, w)


def flat(f):
    return f.reshape(f.shape[0], -1).double()


def test_whitened_features_have_identity_covariance_and_zero_mean():
    white = whiten(flat(features()))
    m, cov = moments(white)
    assert torch.allclose(cov, torch.eye(8, dtype=torch.float64), atol=1e-8)
    assert m.abs().max() < 1e-10


def test_coloured_features_have_the_style_mean_and_covariance():
    style = flat(features(seed=1, h=30, w=30))
    out = colour(whiten(flat(features())), style)
    (m_out, cov_out), (m_s, cov_s) = moments(out), moments(style)
    assert torch.allclose(m_out, m_s, atol=1e-8)
    assert torch.allclose(cov_out, cov_s, rtol=1e-6, atol=1e-6)


def test_wct_alpha_blends_and_alpha_0_gives_the_content_back():
    c, s = features().float(), features(seed=1).float()
    assert torch.equal(wct(c, s, alpha=0.0), c)
    full = wct(c, s, alpha=1.0)
    assert full.dtype == c.dtype and full.shape == c.shape
    assert torch.allclose(wct(c, s, alpha=0.3), 0.3 * full + 0.7 * c, atol=1e-4)
    assert torch.allclose(moments(flat(full))[1], moments(flat(s))[1], rtol=1e-3, atol=1e-2)


def test_wct_takes_a_batch_of_one_and_refuses_other_channel_counts():
    c, s = features(), features(seed=1)
    assert torch.allclose(wct(c[None], s[None])[0], wct(c, s))
    with pytest.raises(ValueError, match="channels"):
        wct(c, features(c=4))


def test_adain_gives_each_channel_the_style_mean_and_deviation():
    c, s = features(), features(seed=1)
    out = flat(adain(c, s))
    assert torch.allclose(out.mean(1), flat(s).mean(1), atol=1e-8)
    assert torch.allclose(out.std(1), flat(s).std(1), rtol=1e-8)
    assert torch.equal(adain(c, s, alpha=0.0), c)


@pytest.mark.parametrize("transform", [wct, adain])
def test_a_flat_content_gives_the_style_mean_not_nan(transform):
    content = torch.full((8, 10, 10), 2.5, dtype=torch.float64)
    style = features(seed=1)
    out = transform(content, style)
    assert torch.isfinite(out).all()
    assert torch.allclose(flat(out), flat(style).mean(1, keepdim=True).expand(8, 100), atol=1e-8)


@pytest.mark.parametrize("transform", [wct, adain])
def test_a_one_pixel_style_gives_its_colour_not_nan(transform):
    content, style = features(), features(seed=1, h=1, w=1)
    out = transform(content, style)
    assert torch.isfinite(out).all()
    assert torch.allclose(flat(out), flat(style).expand(8, 500), atol=1e-8)


def test_a_rank_deficient_content_is_whitened_on_the_directions_that_vary():
    f = flat(features(c=4))
    f = torch.cat([f, f[:1] * 2])  # 5 channels, rank 4: one eigenvalue is 0 and is dropped, not inverted
    white = whiten(f)
    assert torch.isfinite(white).all()
    d = torch.linalg.eigvalsh(moments(white)[1])
    assert torch.allclose(d, torch.tensor([0, 1, 1, 1, 1], dtype=torch.float64), atol=1e-8)
