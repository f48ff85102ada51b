"""The README's commands as it writes them: every command of its Commands table and its preset block, read from
README.md and run from the repository root at tiny sizes (debug=tiny), each placeholder (SWEEP_DIR, DIR, FILE,
a.jpg,b.jpg) given a real one, each optional part ([--all]) included (the forms without it are not run here), each
ending with where its outputs are."""
import os
import re
import shlex
import shutil
import subprocess

import pandas as pd
import pytest
import torch
import torchvision
from PIL import Image

from tests.conftest import IMAGES, ROOT, run_app

PYTHON = ".venv/bin/python"  # the README's install: `python3 -m venv .venv && .venv/bin/pip install -e ".[dev]"`
HYDRA_ENTRIES = {"transfer", "grid", "content_reconstruction", "style_reconstruction", "layer_scan", "methods"}


def unwrap(command: str) -> str:
    """A README command with its optional parts (` [arch=resnet18 weights=FILE]`) included, and `[key=value ...]`,
    which stands for any overrides, left out; Hydra's own brackets (`wct_levels=[1,2,3]`) are kept."""
    out, optional = [], []
    for i, ch in enumerate(command):
        if ch == "[":
            optional.append(command[i - 1] == " " and not optional)  # an option's `[`, not a value's
            out.append("\0" if optional[-1] else ch)
        elif ch == "]" and optional:
            out.append("\1" if optional.pop() else ch)
        else:
            out.append(ch)
    text = re.sub("\0[^\1]*\\.\\.\\.[^\1]*\1", "", "".join(out))
    return " ".join(text.replace("\0", "").replace("\1", "").split())


def readme_commands() -> list[tuple[str, bool]]:
    """(command, needs the paper's images) for each line of the README's Commands table and its preset block."""
    text = (ROOT / "README.md").read_text()
    table = text.split("\n## Commands\n")[1].split("\n## ")[0]
    rows = [(unwrap(m[1]), m[1].split()[2] == "experiments.fetch_images")
            for m in re.finditer(r"^\| `([^`]+)` \|", table, re.M)]
    block = re.search(r"\nPaper presets.*?```bash\n(.*?)```", text, re.S)[1]
    presets = [(line.split(" #")[0].strip(), True) for line in block.splitlines() if line.strip()]
    return rows + presets


COMMANDS = readme_commands()


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """Real files for the README's placeholders: a folder of images (DIR), ResNet18 weights (FILE), two style
    images (a.jpg,b.jpg) and the sweep of the Commands table's own `-m beta=1e3,1e4 loss=seed,paper` (SWEEP_DIR)."""
    root = tmp_path_factory.mktemp("readme")
    images = root / "images"
    images.mkdir()
    g = torch.Generator().manual_seed(0)
    for k in range(3):
        Image.fromarray((torch.rand(32, 40, 3, generator=g) * 255).byte().numpy()).save(images / f"{k}.png")
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18().state_dict(), root / "resnet18.pth")
    sweep = root / "sweep"
    ran = run_app("experiments.transfer", "-m", "beta=1e3,1e4", "loss=seed,paper", "debug=tiny", f"hydra.sweep.dir={sweep}")
    assert ran.returncode == 0, ran.stderr[-2000:]
    return {"DIR": str(images), "FILE": str(root / "resnet18.pth"), "SWEEP_DIR": str(sweep),
            "a.jpg,b.jpg": f"{images / '0.png'},{images / '1.png'}"}


def tiny(words: list[str], entry: str, places: dict[str, str], out) -> list[str]:
    """A command's words at tiny sizes, its placeholders filled in, its outputs in `out` (not the clone's outputs/)."""
    words = [re.sub(r"^(\w+=)?(SWEEP_DIR|DIR|FILE|a\.jpg,b\.jpg)$", lambda m: (m[1] or "") + places[m[2]], w)
             for w in words]
    if entry in HYDRA_ENTRIES:
        words = [re.sub(r"^size=\d+$", "size=32", re.sub(r"^steps=\d+$", "steps=2", w)) for w in words]
        return [*words, "debug=tiny", f"hydra.run.dir={out}", f"hydra.sweep.dir={out}"]
    if entry == "train_decoder":
        return [*words, f"held_out={places['DIR']}", "steps=2", "batch=1", "crop=16", "load_size=32",
                "eval_size=32", "progress=false", f"hydra.run.dir={out}"]
    return words


@pytest.mark.slow
@pytest.mark.parametrize("command", [pytest.param(c, marks=[pytest.mark.paper_images] * paper, id=c)
                                     for c, paper in COMMANDS])
def test_a_readme_command_runs_as_written(command, places, tmp_path, monkeypatch):
    python, dash_m, module, *words = shlex.split(command)
    assert (python, dash_m) == (PYTHON, "-m") and module.startswith("experiments."), command
    entry = module.partition(".")[2]
    out = tmp_path / "out"
    if entry == "fetch_images":  # the paper's images are already there (no download): it checks and keeps them
        shutil.copytree(IMAGES, tmp_path / "images")
        monkeypatch.setenv("NST_IMAGES", str(tmp_path / "images"))
    ran = run_app(module, *tiny(words, entry, places, out))
    assert ran.returncode == 0, ran.stderr[-3000:]
    said = ran.stdout + ran.stderr
    assert "Traceback" not in said and "error:" not in said, said[-3000:]
    last = ran.stdout.strip().splitlines()[-1]
    if entry in HYDRA_ENTRIES and (out / "report.csv").is_file():  # a sweep: every job ok, its figures named
        report = pd.read_csv(out / "report.csv")
        assert (report["status"] == "ok").all()
        assert last.startswith("figures: ") and str(out) in last, last
        promised(entry, words, report, out)
    elif entry in HYDRA_ENTRIES:
        assert last == f"result: {out / 'result.png'} (metrics.json, history.csv beside it)"
        assert (out / "result.png").is_file()
    elif entry == "train_decoder":
        assert str(out) in last and (out / "decoder_relu4_1.pt").is_file(), last
    elif entry in ("report", "figures"):
        assert places["SWEEP_DIR"] in said and (entry == "report" or "figures: " in last), said
    else:
        assert last.startswith("images in ") and str(tmp_path / "images") in last, last


def promised(entry: str, words: list[str], report: pd.DataFrame, out) -> None:
    """What the Commands table says a sweep gives, beyond ending well: the grid's axis narrowed by an override, a
    layer scan's job per conv index with its content PSNR and a strip on rows of 6."""
    if entry == "grid" and "beta=1e3,1e5" in words:
        assert pd.read_csv(out / "pivot_style_loss.csv", index_col=0).shape == (5, 2)
    if entry == "layer_scan" and "arch=resnet18" in words:  # ResNet18's 20 conv indices
        assert list(report["content_layers"]) == list(range(20)) and report["content_psnr"].notna().all()
        assert report["content_layer_names"].iloc[7] == "layer2.0.downsample.1"  # seed: taps before the ReLU
        width, height = Image.open(out / "strip.png").size  # 20 images on rows of 6: 4,447 px wide in one row
        assert width < 2000 and height > width / 2, (width, height)


def test_every_command_is_typed_for_the_readme_install():
    """The README writes each command with .venv/bin/python (its install), and that interpreter runs one as written:
    from the repository root, in a process of its own."""
    assert len(COMMANDS) > 15 and all(c.startswith(f"{PYTHON} -m experiments.") for c, _ in COMMANDS), COMMANDS
    if not (ROOT / PYTHON).is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{PYTHON} is missing: CI runs the README's install first")
        pytest.skip(f"{PYTHON} is absent: the README's install (`python3 -m venv .venv && ...`) was not run here")
    ran = subprocess.run(f"{COMMANDS[0][0]} --help", shell=True, cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert ran.returncode == 0 and "== Keys (key=value) ==" in ran.stdout, ran.stderr[-2000:]
