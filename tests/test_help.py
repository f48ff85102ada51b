"""`--help` of the entry points (experiments/help.py): each key with its value and its comment, a sweep's axes,
only the config groups the entry accepts."""
import re

import pytest

from nst.config import FIELDS
from tests.conftest import ROOT, run_app


def help_of(module: str) -> str:
    r = run_app(module, "--help")
    assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, r.stderr[-2000:]
    return r.stdout


def key_lines(text: str) -> dict[str, str]:
    """{key: what follows `key = `} of the help's Keys section."""
    keys = text.split("== Keys (key=value) ==")[1]
    return {m[1]: m[2] for m in re.finditer(r"^  (\S+)\s+= (.*)$", keys, re.M)}


def test_every_job_key_is_explained_with_its_value():
    text = help_of("experiments.transfer")
    lines = key_lines(text)
    job_keys = [k for k in FIELDS if k != "optimizer"]
    assert set(job_keys) <= set(lines), set(job_keys) - set(lines)
    unexplained = [k for k in job_keys if k != "seed" and len(lines[k].split(None, 1)) < 2]
    assert not unexplained, unexplained  # a key added to conf/config.yaml without its comment
    assert lines["size"].startswith("128 ") and "long side" in lines["size"]
    assert lines["optimizer.line_search"].startswith("strong_wolfe ") and "strong_wolfe | null" in text
    assert "$NST_IMAGES" in lines["images_root"]  # Hydra's string.Template left it alone
    assert "experiment = null" in text and "paper_fig3" in text and "_paper" not in text


@pytest.mark.parametrize("entry, axis", [("grid", "beta = 1e2,1e3,1e4,1e5,1e6"), ("methods", "method = gatys,wct_opt"),
                                         ("layer_scan", "content_layers = [0],[1],")])
def test_a_sweep_entry_shows_its_axes_and_not_the_presets_it_refuses(entry, axis):
    text = help_of(f"experiments.{entry}")
    assert "a sweep: it always runs as -m" in text and axis in text.split("== Sweep axes")[1]
    assert "\n  experiment " not in text and "optimizer  = lbfgs" in text
    assert (ROOT / "conf" / f"{entry}.yaml").read_text().splitlines()[0].lstrip("# ") in text  # what it runs


def test_the_decoder_trainer_says_which_key_it_needs():
    lines = key_lines(help_of("experiments.train_decoder"))
    assert lines["images"].startswith('"" ') and "required" in lines["images"]
    assert lines["level"].startswith("3 ") and "relu{level}_1" in lines["level"]
