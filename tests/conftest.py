"""Shared fixtures: the real VGG19 weights, the shared images, and a helper that runs our commands for real."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT.parent / "shared" / "images"
TUBINGEN = IMAGES / "content" / "tubingen.jpg"
COMPOSITION_VII = IMAGES / "style" / "composition_vii.jpg"


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
