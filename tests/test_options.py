"""Each option of one job measurably changes its result: real VGG19, the embedded images, run_job on disk."""
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from nst import inputs
from nst.config import ConfigError, check
from nst.job import run_job
from nst.color import match_colors, to_yiq
from nst.images import load_image
from nst.assets.painting import draw
from tests.conftest import CONTENT, STYLE, job_config

pytestmark = pytest.mark.slow  # every test runs one to four real jobs through VGG19 (~5-10 s each on 2 cores)
BASE = [f"content={CONTENT}", f"style={STYLE}", "size=40", "steps=8", "progress=false"]


def run(tmp_path, name: str, *overrides: str) -> tuple[dict, np.ndarray]:
    """One job with the overrides; its metrics and result image as floats in [0, 1]."""
    metrics = run_job(job_config(*BASE, *overrides), tmp_path / name)
    return metrics, np.asarray(Image.open(tmp_path / name / "result.png"), dtype=np.float64) / 255


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    return run(tmp_path_factory.mktemp("base"), "base")


@pytest.fixture(scope="module")
def second_style(tmp_path_factory):
    """Another painting, drawn like kandinsky.png from another seed."""
    path = tmp_path_factory.mktemp("styles") / "second.png"
    draw(seed=1889).save(path)
    return path


def differs(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape != b.shape or np.abs(a - b).mean() > 0.01


def test_tv_weight_smooths(tmp_path, baseline):
    m, image = run(tmp_path, "tv", "tv_weight=3e3")  # embedded images at 40 px: 1e3 gives 0.81x, 3e3 0.65x
    assert differs(image, baseline[1]) and m["tv_loss"] < 0.75 * baseline[0]["tv_loss"]


def test_style_layer_weights_shift_the_match(tmp_path, baseline):
    m, image = run(tmp_path, "w", "style_layer_weights=[1,0,0,0,0]")
    assert differs(image, baseline[1])
    # layers weighted 0 are no longer matched: their terms end several times the baseline's
    for layer in ("conv1_2", "conv2_1", "conv2_2", "conv3_1"):  # seed: the taps before the ReLU
        assert m[f"style/{layer}"] > 3 * baseline[0][f"style/{layer}"], layer


def test_style_blend_mixes_targets(tmp_path, baseline, second_style):
    both = f"style=[{STYLE},{second_style}]"
    only_first = run(tmp_path, "first", both, "style_blend=[1,0]")[1]
    assert np.array_equal(only_first, baseline[1])  # weight 0 removes a style exactly
    half = run(tmp_path, "half", both, "style_blend=[1,1]")[1]
    second = run(tmp_path, "second", f"style={second_style}")[1]
    assert differs(half, baseline[1]) and differs(half, second)


def test_style_scale_changes_the_style_statistics(tmp_path, baseline):
    m, image = run(tmp_path, "scale", "style_scale=2.0")
    assert differs(image, baseline[1]) and m["width"] == baseline[0]["width"]
    with pytest.raises(ConfigError, match="style_scale -1"):  # checked before a job runs, not by the job
        check(job_config(*BASE, "style_scale=-1"))


def test_inits(tmp_path, baseline):
    content_m, content = run(tmp_path, "content", "init=content")
    _, from_file = run(tmp_path, "file", f"init={CONTENT}")
    _, style = run(tmp_path, "style", "init=style")
    assert np.array_equal(content, from_file)
    assert differs(content, baseline[1]) and differs(style, baseline[1]) and differs(style, content)
    assert content_m["content_psnr"] > baseline[0]["content_psnr"] + 3


def chroma_error(image: np.ndarray, content: torch.Tensor) -> float:
    iq = to_yiq(torch.from_numpy(image).permute(2, 0, 1)[None].float())[:, 1:]
    return (iq - to_yiq(content)[:, 1:]).abs().mean().item()


def test_luminance_only_keeps_the_content_colours(tmp_path, baseline):
    content = load_image(CONTENT, 40)
    _, image = run(tmp_path, "lum", "preserve_color=luminance")
    assert differs(image, baseline[1])
    assert chroma_error(image, content) < 0.01 < 0.03 < chroma_error(baseline[1], content)


def test_histogram_matching_gives_the_style_the_content_colours(tmp_path, baseline):
    content = load_image(CONTENT, 64)
    style = load_image(STYLE, (content.shape[-1], content.shape[-2]))
    matched = match_colors(style, content)
    for a, b in ((matched, content),):
        # atol: clamping to [0, 1] moves the mean ~0.03 off the dark photo's (the style's is 0.37 off)
        torch.testing.assert_close(a.mean((2, 3)), b.mean((2, 3)), atol=0.04, rtol=0)
    assert (style.mean((2, 3)) - content.mean((2, 3))).abs().max() > 0.05
    _, image = run(tmp_path, "hist", "preserve_color=histogram")
    colour = lambda a: a.reshape(-1, 3).mean(0)  # noqa: E731
    target = content.mean((2, 3))[0].numpy()
    assert np.abs(colour(image) - target).sum() < np.abs(colour(baseline[1]) - target).sum()


def test_multiscale_upsamples_and_records_each_scale(tmp_path):
    m, image = run(tmp_path, "ms", "multiscale=[[24,3],[40,4]]")
    assert m["steps"] == 7 and max(image.shape[:2]) == 40
    h = pd.read_csv(tmp_path / "ms" / "history.csv")
    assert list(h["size"].unique()) == [24, 40] and h["iteration"].iloc[-1] == 7
    assert h["seconds"].is_monotonic_increasing
    with pytest.raises(ConfigError, match=r"multiscale \[64\] holds 64: must be"):
        check(job_config(*BASE, "multiscale=[64]"))


def test_a_multiscale_job_stopped_at_its_second_scale_counts_both(tmp_path):
    """Ctrl-C at the second scale: "interrupted after N iterations" and the record count both scales (the message
    counted the second alone), and the history rows run on across the scales."""
    from nst.engine import Interrupted
    from nst.metrics import noted
    from nst.run import run as run_spec
    from nst.spec import JobSpec

    def stop(size: int, steps: int, p) -> None:
        if size == 40 and p.iteration == 2:
            raise KeyboardInterrupt

    c = job_config(*BASE, "multiscale=[[24,3],[40,100]]")
    with pytest.raises(Interrupted) as info:
        run_spec(JobSpec.from_config(c), progress=stop)
    done = noted(info.value)
    assert str(info.value) == "interrupted after 5 iterations" and done["steps"] == 3 + 2
    # row 0 of a scale is its start, the previous scale's result upsampled: iteration 3 twice, as in a finished job
    assert [(r["size"], r["iteration"]) for r in done["history"]] == [(24, i) for i in range(4)] + [(40, 3), (40, 4),
                                                                                                  (40, 5)]


def test_targets_are_reused_across_a_beta_sweep(tmp_path):
    inputs.targets.cache_clear()
    first = run(tmp_path, "b1", "beta=1e3")[1]
    run(tmp_path, "b2", "beta=1e5")
    assert inputs.targets.cache_info().hits >= 1
    inputs.targets.cache_clear()  # a fresh build gives the same image as the reused targets
    assert np.array_equal(run(tmp_path, "b3", "beta=1e3")[1], first)
