"""experiments.train_decoder as a user runs it: a real training of a relu1_1 decoder on tiny images, interrupted by
SIGINT and resumed from its checkpoint to the same weights as an uninterrupted run; one error line for a folder
it cannot train on."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

from tests.conftest import ROOT, run_app


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Six 40x32 images: smooth colour ramps with noise (seeded)."""
    root = tmp_path_factory.mktemp("images")
    g = torch.Generator().manual_seed(0)
    for k in range(6):
        y, x = torch.meshgrid(torch.linspace(0, 1, 32), torch.linspace(0, 1, 40), indexing="ij")
        rgb = torch.stack([x, y, (x + y) / 2]).roll(k, 0) * 0.8 + 0.2 * torch.rand(3, 32, 40, generator=g)
        Image.fromarray((rgb.permute(1, 2, 0) * 255).byte().numpy()).save(root / f"ramp{k}.png")
    return root


def train(folder, out, *extra):
    return ["experiments.train_decoder", "level=1", f"images={folder}", f"held_out={folder}", "batch=2", "crop=16",
            "load_size=32", "eval_size=32", "progress=false", "threads=1", f"hydra.run.dir={out}", *extra]


def test_a_training_interrupted_by_sigint_resumes_from_its_checkpoint_to_the_same_weights(folder, tmp_path):
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([sys.executable, "-m", *train(folder, out, "steps=100000", "checkpoint_every=5")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "interrupted (SIGINT): checkpoint saved; the same command resumes from it"
    k = torch.load(out / "checkpoint.pt", weights_only=False)["step"]
    assert k >= 5 and not (out / "decoder_relu1_1.pt").exists()

    resumed = run_app(*train(folder, out, f"steps={k + 4}"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {out / 'checkpoint.pt'} at step {k}" in resumed.stdout + resumed.stderr
    info = json.loads((out / "info.json").read_text())
    assert info["steps"] == k + 4 and len(info["held_out_psnr"]) == 6
    assert (out / "losses.csv").read_text().count("\n") == k + 4 + 1 and (out / "losses.png").is_file()

    straight = tmp_path / "straight"
    assert run_app(*train(folder, straight, f"steps={k + 4}")).returncode == 0
    a = torch.load(out / "decoder_relu1_1.pt", weights_only=True)["state_dict"]
    b = torch.load(straight / "decoder_relu1_1.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[name], b[name]) for name in a)


def test_a_checkpoint_of_another_config_is_not_resumed(folder, tmp_path):
    out = tmp_path / "run"
    assert run_app(*train(folder, out, "steps=2")).returncode == 0
    ran = run_app(*train(folder, out, "steps=4", "lr=0.01"))
    assert ran.returncode == 2
    assert ran.stderr.strip().splitlines() == [f"error: lr 0.01 differs from the checkpoint's 0.001 in "
                                               f"{out / 'checkpoint.pt'}; give it back, or another hydra.run.dir"]


@pytest.mark.parametrize("case, expected", [
    ("empty", "holds no image files"),
    ("unreadable", "none of its 2 image files is readable"),
    ("missing", "no such folder"),
])
def test_a_folder_it_cannot_train_on_is_one_error_line(tmp_path, case, expected):
    images = tmp_path / "images"
    if case != "missing":
        images.mkdir()
    if case == "unreadable":
        (images / "a.png").write_text("not an image")
        (images / "b.jpg").write_bytes(b"\xff\xd8\xff")
    ran = run_app(*train(images, tmp_path / "out", "steps=2"))
    lines = ran.stderr.strip().splitlines()
    assert ran.returncode == 2 and lines[-1].startswith(f"error: images '{images}'") and expected in lines[-1], ran.stderr
    assert len([line for line in lines if "error" in line.lower()]) == 1 and "Traceback" not in ran.stderr
