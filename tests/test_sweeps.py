"""A sweep before and after it runs (experiments/sweeps.py): its jobs expanded as Hydra's sweeper does, the sweeps
refused before anything is written, and a sweep with a bad job. Real Hydra multiruns, in this process."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from omegaconf import OmegaConf

from experiments.sweeps import invocation
from tests.conftest import run_app

TINY = ["debug=tiny"]


def jobs(sweep: Path, key: str, value: float) -> list[Path]:
    """The job directories of a sweep that Hydra started with key=value (whatever the value's spelling)."""
    def given(d: Path) -> dict:
        path = d / ".hydra" / "overrides.yaml"
        items = yaml.safe_load(path.read_text()) if path.is_file() else None
        return {k: v for k, _, v in (str(i).partition("=") for i in items or [])}

    return [d for d in sweep.glob("*") if d.is_dir() and given(d).get(key) is not None
            and float(given(d)[key]) == value]


def job(sweep: Path, key: str, value: float) -> Path:
    found = jobs(sweep, key, value)
    assert len(found) == 1, (key, value, sorted(p.name for p in sweep.iterdir()))
    return found[0]


def test_invocation_expands_the_sweep_like_hydra(tmp_path):
    config = OmegaConf.create({"hydra": {"sweeper": {"params": {"beta": "1e2,1e3"}},
                                         "overrides": {"task": ["style_layers=[0],[0,1]", "size=32"]}}})
    found, _ = invocation(tmp_path, config)
    assert sorted(found) == sorted(f"beta={b},size=32,style_layers={s}" for b in ("100", "1e+03")
                                   for s in ("0", "0-1"))
    assert invocation(tmp_path) == (None, None)  # no multirun.yaml: every job directory is reported


@pytest.mark.parametrize("overrides, expected", [
    (["threads=1,2"], "threads=1 and threads=2: these jobs would share the directory beta=100,size=24,steps=2"),
    (["max_pixels=1e6,2e6"], "as max_pixels does not name a job's directory"),
    (["beta=1e2,1e2"], "the sweep lists job beta=100,size=24,steps=2 twice"),
    (["beta=100,1e2"], "beta=100 and beta=100.0 are one value (directory beta=100,size=24,steps=2); give it once"),
    (["hydra.sweep.subdir=${hydra.job.num}"], "hydra.sweep.subdir=${hydra.job.num}: a sweep's job directories are "
                                              "named from their swept values"),
    (["hydra/launcher=batched", "hydra.launcher.batch_size=0"], "hydra.launcher.batch_size 0 must be an integer"),
    (["hydra/launcher=batched", "hydra.launcher.memory_mb=-5"], "hydra.launcher.memory_mb -5 must be a number"),
    (["hydra/launcher=batched", "+hydra.launcher.foo=1"], "+hydra.launcher.foo=1: not a setting of this launcher"),
    (["bta=1e3,1e4"], "bta=1e3,1e4: unknown key bta; did you mean beta?"),
    (["steps=1.5,2"], "steps 1.5 must be an integer >= 0"),  # the schema's type: before the first job ran
    (["optimizer=lbfgs,sgd"], "optimizer=lbfgs,sgd: no such option in conf/optimizer/"),
    (["beta=glob(*)"], "beta=glob(*): expands to no jobs"),
    (["hydra/launcher=parallel", "hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs 0 must be a nonzero integer"),
    (["hydra/launcher=local", "hydra.launcher.timeout_min=0"], "hydra.launcher.timeout_min 0 must be a finite"),
    ([f"content=/data/{'x' * 240}.png,/data/y.png"], "bytes, over the 255 a file name may have"),
], ids=["threads", "max_pixels", "twice", "spellings", "subdir", "batch_size", "memory_mb", "launcher_key",
        "swept_key_typo", "swept_type", "swept_group_option", "no_jobs", "joblib_n_jobs", "submitit_timeout",
        "long_name"])
def test_a_sweep_that_would_lose_jobs_or_its_record_is_refused_untouched(tmp_path, overrides, expected):
    """Jobs that would share one directory (the second skipped as complete, or overwriting the first), and bad
    launcher settings: refused before the sweeper writes multirun.yaml (it overwrote an existing sweep's)."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("an earlier sweep's record\n")
    beta = [] if any(o.startswith("beta=") for o in overrides) else ["beta=1e2"]
    steps = [] if any(o.startswith("steps=") for o in overrides) else ["steps=2"]
    r = run_app("experiments.transfer", "-m", "size=24", *steps, *beta, *overrides, f"hydra.sweep.dir={sweep}",
                cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], r.stderr[-2000:]
    assert sorted(p.name for p in sweep.iterdir()) == ["multirun.yaml"]
    assert (sweep / "multirun.yaml").read_text() == "an earlier sweep's record\n"


def test_a_file_where_a_job_directory_goes_is_refused_before_any_job(tmp_path):
    """The sweep stopped at that job with "cannot create the output directory", its finished jobs unreported."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "beta=1e+03,size=24,steps=2").write_text("a user's file\n")
    r = run_app("experiments.transfer", "-m", "size=24", "steps=2", "beta=1e2,1e3", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.startswith("error: ") and "beta=1e+03,size=24,steps=2 is a file, where job" in r.stderr
    assert [p.name for p in sweep.iterdir()] == ["beta=1e+03,size=24,steps=2"]


def test_a_sweep_whose_every_job_is_bad_is_refused_before_it_starts(tmp_path):
    # a value all jobs share (beside the swept keys) that none can run with: one line, exit 2, no sweep directory
    sweep = tmp_path / "sweep"
    r = run_app("experiments.transfer", "-m", *TINY, "beta=1e2,1e4", "ratio=1e-3", "hydra/launcher=batched",
                f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "has no effect while ratio 1e-3 is set" in errors[0], r.stderr[-2000:]
    assert not sweep.exists()


def test_sweep_with_a_bad_job_runs_the_good_one_reports_both_and_exits_1(tmp_path):
    sweep = tmp_path / "sweep"
    # the bad job first: the check before the sweep goes on to the good one, and the sweep runs
    r = run_app("experiments.transfer", "-m", *TINY, "ratio=0,1e-4", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr + r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "1 job of the sweep failed" in errors[0], r.stderr[-2000:]
    good, bad = job(sweep, "ratio", 1e-4), job(sweep, "ratio", 0)
    assert json.loads((good / "metrics.json").read_text())["status"] == "ok" and (good / "result.png").is_file()
    strict = {"parse_constant": lambda c: pytest.fail(f"{c} in metrics.json is not JSON")}  # jq refused it
    failed = json.loads((bad / "metrics.json").read_text(), **strict)
    assert failed["status"] == "failed" and "ratio 0" in failed["error"] and not (bad / "result.png").exists()
    assert failed["total_loss"] is None
    report = pd.read_csv(sweep / "report.csv").set_index("job")
    assert report.loc[good.name, "status"] == "ok" and report.loc[bad.name, "status"] == "failed"
