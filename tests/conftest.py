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

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nst.assets import embedded
from nst import fetch
from nst.fetch import default_images_root

ROOT = Path(__file__).resolve().parents[1]
IMAGES = Path(os.path.abspath(default_images_root(cwd=ROOT)))
TUBINGEN = IMAGES / "content" / "tubingen.jpg"  # the paper's images: only in tests marked paper_images
COMPOSITION_VII = IMAGES / "style" / "composition_vii.jpg"
PAPER_IMAGES = tuple(IMAGES / image.path for image in fetch.PAPER_IMAGES)  # all five: the presets read them all
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


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (1-bit grey) with almost no pixel data: a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> dict[str, str]:
    """Bad files a user may point a key at: {"tiny": ".../tiny.png", ...}."""
    import torch
    from PIL import Image

    d = tmp_path_factory.mktemp("bad_files")
    (d / "a_directory").mkdir()
    (d / "read_only").mkdir(mode=0o555)
    (d / "a_file").write_text("x")
    (d / "notes.txt").write_text("these are not weights\n")
    (d / "garbage.jpg").write_bytes(b"not an image at all")
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, d / "wrong_shapes.pth")
    png_header_only(d / "bomb.png", 20000, 20000)
    Image.new("RGB", (8, 6), (200, 30, 30)).save(d / "tiny.png")
    Image.effect_noise((96, 64), 60).convert("RGB").save(d / "whole.jpg")
    (d / "truncated.jpg").write_bytes((d / "whole.jpg").read_bytes()[:-400])  # a download cut short
    (d / "loop.jpg").symlink_to(d / "loop2.jpg")
    (d / "loop2.jpg").symlink_to(d / "loop.jpg")
    (d / "dangling.jpg").symlink_to(d / "gone.jpg")
    for odd in ("a=b.png", "l'eau.png", "café.png", "x,y.png"):  # names Hydra's grammar wants quoted
        Image.new("RGB", (8, 6)).save(d / odd)
    names = ("a_directory", "read_only", "a_file", "notes.txt", "garbage.jpg", "wrong_shapes.pth", "bomb.png",
             "tiny.png", "truncated.jpg", "loop.jpg", "dangling.jpg")
    return {name.partition(".")[0]: str(d / name) for name in names} | {"dir": str(d)}


@pytest.fixture(scope="session")
def vgg():
    """The frozen VGG19 with the original weights and its preprocessing (loaded once)."""
    from nst.vgg import vgg19

    return vgg19(pooling="max")


def run_cli(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run `python -m <args>` in a subprocess, as a user would, and capture its output. For what a process of its
    own tests: signals, locks, other launchers' processes, the imports of a fresh interpreter; else `run_app`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0")
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def compose(*overrides: str, entry: str = "config", hydra: bool = False) -> Any:
    """An entry's config (conf/<entry>.yaml) composed with Hydra's compose API, as a job of it gets it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    import experiments  # noqa: F401  (the schema and the resolvers)

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="conf", version_base="1.3"):
            return hydra_compose(entry, overrides=list(overrides), return_hydra_config=hydra)
    finally:
        GlobalHydra.instance().clear()


def job_config(*overrides: str) -> dict[str, Any]:
    """conf/config.yaml composed with overrides and resolved: the plain dict a job reads (nst.job.run_job)."""
    from experiments.config import resolved

    return resolved(compose(*overrides))


@dataclass
class Ran:
    """What a command gave: as subprocess.CompletedProcess."""

    returncode: int
    stdout: str
    stderr: str


def run_app(module: str, *args: str, cwd: Path = ROOT) -> Ran:
    """Run `python -m <module> <args>` (an entry point of experiments/) in this process: the same entry, argument
    handling, Hydra run, launcher, callbacks, messages and exit status, without a new interpreter's 2-4 s."""
    from hydra.core.global_hydra import GlobalHydra
    import torch

    from experiments.app import entry
    from nst import inputs

    name = module.rpartition(".")[2]
    saved = (os.getcwd(), sys.argv, os.environ.get("HYDRA_FULL_ERROR"), signal.getsignal(signal.SIGTERM),
             signal.getsignal(signal.SIGINT), torch.get_num_threads(), logging.getLogger().handlers[:],
             logging.getLogger().level, signal.getsignal(signal.SIGHUP))  # fetch_images handles SIGHUP too
    for cached in (inputs.cached_image, inputs.native_size, inputs.images, inputs.targets):
        cached.cache_clear()  # a test may rewrite an image in place; the backbones stay loaded
    out, err, code = io.StringIO(), io.StringIO(), 0
    os.chdir(cwd)
    sys.argv = [f"{ROOT / module.replace('.', '/')}.py", *args]
    os.environ["HYDRA_FULL_ERROR"] = "0"
    GlobalHydra.instance().clear()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if name in ("report", "figures"):  # argparse commands, not Hydra apps
                from experiments.report import cli

                code = cli(list(args), draw=name == "figures")
            elif name == "fetch_images":
                from experiments.fetch_images import main

                code = main(list(args))
            elif name == "train_decoder":  # a Hydra app of its own, not a job's
                from experiments.train_decoder import entry as train

                code = train()
            else:
                entry("config" if name == "transfer" else name)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        os.chdir(saved[0])
        sys.argv = saved[1]
        if saved[2] is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved[2]
        signal.signal(signal.SIGTERM, saved[3])
        signal.signal(signal.SIGINT, saved[4])
        signal.signal(signal.SIGHUP, saved[8])
        torch.set_num_threads(saved[5])
        root = logging.getLogger()
        for handler in root.handlers[:]:
            if handler not in saved[6]:  # Hydra's job log files and console handlers of this run
                root.removeHandler(handler)
                handler.close()
        root.setLevel(saved[7])
        GlobalHydra.instance().clear()
    return Ran(code, out.getvalue(), err.getvalue())
