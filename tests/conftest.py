"""Shared fixtures: the real VGG19 weights, the test images, and a helper that runs our commands for real.

Images. Most tests use the embedded images, CONTENT (matplotlib's grace_hopper.jpg) and STYLE (nst/assets/
kandinsky.png), or images they write into tmp_path, so that a fresh clone passes on its own. Tests that need the
paper's own images (TUBINGEN, COMPOSITION_VII) are marked `@pytest.mark.paper_images`. They read them from the
images root the configs use (nst.fetch.default_images_root, resolved from the repository root): $NST_IMAGES if set,
else ../shared/images beside the checkout, else the per-user cache that `python -m experiments.fetch_images` fills.
When those files are absent a marked test is skipped with the reason, except where the environment has CI=true:
CI has ../shared/images, so there their absence fails the test instead of silently skipping it.

Run as a fresh clone would (paper images hidden): NST_IMAGES=/nonexistent .venv/bin/python -m pytest -q
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nst.assets import embedded
from nst.fetch import default_images_root

ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path(os.path.abspath(default_images_root(cwd=ROOT)))
TUBINGEN = IMAGES / "content" / "tubingen.jpg"  # the paper's images: only in tests marked paper_images
COMPOSITION_VII = IMAGES / "style" / "composition_vii.jpg"
PAPER_IMAGES = (TUBINGEN, COMPOSITION_VII)
CONTENT = embedded("grace_hopper")  # embedded: every other test
STYLE = embedded("kandinsky")


def paper_images_absent() -> str | None:
    """Why the paper_images tests cannot run here, or None when the images are present."""
    missing = [str(p.relative_to(IMAGES)) for p in PAPER_IMAGES if not p.is_file()]
    if not missing:
        return None
    return f"paper images absent from {IMAGES}: {', '.join(missing)} (python -m experiments.fetch_images; NST_IMAGES)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked paper_images: skipped when the images are absent (reported at the test's own line)."""
    reason = paper_images_absent()
    if reason is None or os.environ.get("CI", "").lower() == "true":
        return
    for item in items:
        if item.get_closest_marker("paper_images") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Under CI=true, where ../shared/images exists, absent paper images fail the marked tests instead."""
    if item.get_closest_marker("paper_images") is not None and os.environ.get("CI", "").lower() == "true":
        reason = paper_images_absent()
        if reason is not None:
            pytest.fail(f"CI=true requires the paper images: {reason}", pytrace=False)


@pytest.fixture(scope="session")
def vgg():
    """The frozen VGG19 with the original weights and its preprocessing (loaded once)."""
    from nst.vgg import vgg19

    return vgg19(pooling="max")


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m <args>` in a subprocess, as a user would, and capture its output."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0")
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
