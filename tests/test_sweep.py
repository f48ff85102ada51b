"""The sweep vocabulary (nst/sweep.py) and the report of one invocation (nst/report.py, experiments/report.py)."""
import time

import pandas as pd
from omegaconf import OmegaConf

from experiments.report import invocation
from nst import metrics, report, sweep


def test_directory_names_are_readable_and_unique():
    assert sweep.dirname(["beta=1e3", "style_layers=[0,1,2]", "hydra.run.dir=x", "threads=2"]) == \
        "beta=1e+03,style_layers=0-1-2"
    a, b = sweep.dirname(["content=a/x.jpg"]), sweep.dirname(["content=b/x.jpg"])
    assert a.startswith("content=x~") and b.startswith("content=x~") and a != b  # same stem, two folders
    assert sweep.dirname(["content=a/x.jpg"]) == a  # deterministic
    assert sweep.dirname([]) == "job"


def test_cells_and_layer_names():
    assert sweep.cell([0, 1, 2]) == "0,1,2" and sweep.cell([]) == "none" and sweep.cell("a/b/x.jpg") == "x"
    assert sweep.layer_names([0, "relu4_2"], {"0": "conv1_1", "relu4_2": "relu4_2"}) == "conv1_1,relu4_2"


def job(sweep_dir, name, status="ok", **values):
    """A job directory as run_job leaves it (metrics.json, result.png)."""
    d = sweep_dir / name
    d.mkdir(parents=True)
    record = {"status": status, "config": {"beta": values.get("beta", 1.0), "style_layers": [0]},
              "total_loss": 1.0, "content_loss": 1.0, "style_loss": 1.0, "layers": {"0": "conv1_1"},
              "finished_at": values.get("finished_at", time.time())}
    metrics.write(d, record)
    if status == "ok":
        (d / "result.png").write_bytes(b"")


def test_report_lists_this_invocations_jobs_only(tmp_path):
    job(tmp_path, "beta=1", beta=1.0, finished_at=0.0)  # finished by an earlier run of the same sweep
    job(tmp_path, "beta=2", beta=2.0)
    job(tmp_path, "steps=5", beta=1.0)  # another command's job in the same directory
    df, summary = report.write(tmp_path, {"beta=1": ["beta=1"], "beta=2": ["beta=2"], "beta=3": ["beta=3"]},
                               started=1.0)
    assert list(df["job"]) == ["beta=1", "beta=2", "beta=3"]
    assert list(df["status"]) == ["ok", "ok", "missing"] and df.attrs["others"] == ["steps=5"]
    assert list(df["beta"]) == [1.0, 2.0, 3.0]  # a missing job keeps its place on the axis
    assert "1 done" in summary and "1 skipped" in summary and "1 missing" in summary
    assert "not in this report: steps=5" in summary
    assert list(pd.read_csv(tmp_path / "report.csv")["job"]) == ["beta=1", "beta=2", "beta=3"]
    assert list(df["style_layer_names"])[:2] == ["conv1_1", "conv1_1"]


def test_invocation_expands_the_sweep_like_hydra(tmp_path):
    config = OmegaConf.create({"hydra": {"sweeper": {"params": {"beta": "1e2,1e3"}},
                                         "overrides": {"task": ["style_layers=[0],[0,1]", "size=32"]}}})
    jobs, _ = invocation(tmp_path, config)
    assert sorted(jobs) == sorted(f"beta={b},size=32,style_layers={s}" for b in ("100", "1e+03")
                                  for s in ("0", "0-1"))
    assert invocation(tmp_path) == (None, None)  # no multirun.yaml: every job directory is reported
