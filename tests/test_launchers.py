"""The same tiny grid through Hydra's basic launcher, submitit_local and joblib gives the same report."""
import json

import pandas as pd
import pytest

from tests.conftest import run_app

GRID = ["debug=tiny", "steps=3", "threads=1", "style_layers=[0],[0,1]", "beta=1e3,1e5"]
SAME = ["job", "beta", "style_layers", "content_loss", "style_loss", "total_loss", "iterations", "evaluations",
        "status"]


@pytest.fixture(scope="module")
def basic(tmp_path_factory):
    sweep = tmp_path_factory.mktemp("basic")
    r = run_app("experiments.grid", *GRID, f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-2000:]
    return sweep


@pytest.mark.slow
@pytest.mark.parametrize("launcher, trace", [("local", ".submitit"), ("parallel", None)])
def test_launcher_gives_the_basic_report(basic, tmp_path, launcher, trace):
    r = run_app("experiments.grid", *GRID, f"hydra/launcher={launcher}", f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-2000:]
    ours, reference = pd.read_csv(tmp_path / "report.csv"), pd.read_csv(basic / "report.csv")
    assert len(ours) == 4 and set(ours["status"]) == {"ok"}
    pd.testing.assert_frame_equal(ours[SAME], reference[SAME])
    assert (tmp_path / "grid.png").is_file() and (tmp_path / "pivot_style_loss.csv").is_file()
    if trace:  # the jobs really went through submitit
        assert any((tmp_path / trace).rglob("*_result.pkl"))


@pytest.mark.slow
def test_batched_launcher_matches_the_basic_report(basic, tmp_path):
    """hydra/launcher=batched: every job its own files and report row; final losses within 2% of the solo runs."""
    r = run_app("experiments.grid", *GRID, "hydra/launcher=batched", f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-2000:]
    ours, reference = pd.read_csv(tmp_path / "report.csv"), pd.read_csv(basic / "report.csv")
    assert list(ours.columns) == list(reference.columns)
    assert list(ours["job"]) == list(reference["job"]) and set(ours["status"]) == {"ok"}
    assert (ours["iterations"] == reference["iterations"]).all()
    for ours_loss, solo in zip(ours["total_loss"], reference["total_loss"]):
        assert ours_loss == pytest.approx(solo, rel=0.02)
    for job in ours["job"]:
        assert {p.name for p in (tmp_path / job).iterdir()} >= {".hydra", "result.png", "history.csv",
                                                                 "config.yaml", "metrics.json"}
        m = json.loads((tmp_path / job / "metrics.json").read_text())
        assert sorted(m["batch"]) == sorted(ours["job"])  # the batch its rounding depends on
        assert m["total_seconds"] == pytest.approx(m["setup_seconds"] + m["seconds"])
    assert (tmp_path / "grid.png").is_file()
