"""A job's directory (nst/jobdir.py) and the resume rule (nst.metrics.comparable / same_run), in this process: what
counts as the same job, the lock, the records of a failed or interrupted job, and a sweep written by the code as
it was before the schema (tests/data/) resuming without redoing a job."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from nst import jobdir, metrics
from nst.engine import Interrupted
from tests.conftest import ROOT, job_config, run_app

DATA = ROOT / "tests" / "data" / "sweep_written_by_b642d7b"  # python -m experiments.transfer -m size=24 steps=2
# progress=false beta=1e2,1e3 hydra.sweep.dir=..., run at commit b642d7b (before nst/config.py), figures removed


def test_the_same_job_is_its_identity_and_its_input_bytes():
    config = job_config("debug=tiny")
    inputs = jobdir.inputs_of(config)
    record = {"config": config, "inputs": inputs}
    assert metrics.same_run(record, config, inputs)
    # not its identity: threads, progress, max_pixels, images_root, and where its input files lie
    moved = {**config, "threads": 3, "progress": True, "max_pixels": 1e6, "images_root": "/elsewhere",
             "content": "/elsewhere/grace_hopper.jpg"}
    assert metrics.same_run(record, moved, inputs)
    assert not metrics.same_run(record, {**config, "beta": 2e3}, inputs)  # a key of its identity
    assert not metrics.same_run(record, config, {**inputs, "content": "0" * 16})  # other bytes
    assert metrics.comparable({**config, "alpha": 1}) == metrics.comparable({**config, "alpha": 1.0})


def test_a_sweep_written_before_the_schema_resumes_without_redoing_a_job(tmp_path):
    """Its records were written with the configs of that code (no schema, int and float as YAML gave them, the
    embedded images under another checkout's path): every finished job is kept, none redone."""
    sweep = tmp_path / "sweep"
    shutil.copytree(DATA, sweep)
    before = {d.name: (d / "result.png").read_bytes() for d in sweep.iterdir() if (d / "result.png").is_file()}
    assert len(before) == 2
    r = run_app("experiments.transfer", "-m", "size=24", "steps=2", "progress=false", "beta=1e2,1e3",
                f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 jobs: 2 ok; this run: 2 skipped (finished earlier)" in r.stdout, r.stdout[-2000:]
    assert {name: (sweep / name / "result.png").read_bytes() for name in before} == before
    ours, theirs = pd.read_csv(sweep / "report.csv"), pd.read_csv(DATA / "report.csv")
    # the same report, and the column of a key added since (`method`) with the value the old jobs ran with
    assert [c for c in ours.columns if c != "method"] == list(theirs.columns) and set(ours["method"]) == {"gatys"}
    same = [c for c in theirs.columns if c not in ("result", "content_image", "style_image")]
    pd.testing.assert_frame_equal(ours[same], theirs[same])


def test_a_directory_is_held_by_one_process_at_a_time(tmp_path):
    jobdir.claim(tmp_path)
    try:
        assert str(tmp_path) in jobdir.HELD
        jobdir.claim(tmp_path)  # this process again: held already
        import subprocess
        import sys

        code = ("import sys, fcntl, os; fd = os.open(sys.argv[1], os.O_RDONLY)\n"
                "try: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept BlockingIOError: sys.exit(3)")
        assert subprocess.run([sys.executable, "-c", code, str(tmp_path)]).returncode == 3  # another process
    finally:
        jobdir.release(tmp_path)
    assert str(tmp_path) not in jobdir.HELD


def test_a_failure_record_never_sits_beside_an_earlier_runs_history(tmp_path):
    """A failure with no rows of its own (a batched job interrupted before its batch ran, one refused by its
    config) removes an earlier failed run's history.csv, which losses.png would draw as this run's."""
    (tmp_path / "history.csv").write_text("size,iteration,total_loss\n32,0,1.5\n")
    jobdir.write_failure({}, tmp_path, RuntimeError("before it ran"))
    assert not (tmp_path / "history.csv").exists()
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


def test_an_interrupt_records_what_the_job_had_done_and_never_a_complete_result(tmp_path):
    config = job_config("debug=tiny")
    rows = [{"size": 32, "iteration": 0, "total_loss": 2.0}, {"size": 32, "iteration": 1, "total_loss": 1.0}]
    stop = metrics.note(Interrupted(1), history=rows, steps=1, evaluations=2, device="cpu")
    (tmp_path / "result.png").write_bytes(b"written by this run, before its metrics.json")
    jobdir.record_interrupt(config, tmp_path, stop, started=0)
    record = json.loads((tmp_path / "metrics.json").read_text())
    assert record["status"] == "interrupted" and record["error"] == "InterruptedJob: interrupted after 1 iteration"
    assert record["steps"] == 1 and record["evaluations"] == 2 and not (tmp_path / "result.png").exists()
    assert list(pd.read_csv(tmp_path / "history.csv")["iteration"]) == [0, 1]

    done = tmp_path / "done"  # a complete job: an interrupt or a failure leaves it as it was
    r = run_app("experiments.transfer", "debug=tiny", f"hydra.run.dir={done}")
    assert r.returncode == 0, r.stderr[-2000:]
    files = {p.name: p.read_bytes() for p in done.iterdir() if p.is_file() and p.suffix != ".log"}
    jobdir.record_interrupt(config, done, stop, started=0)
    jobdir.record_failure(config, done, ValueError("an input made unreadable since"))
    assert {name: (done / name).read_bytes() for name in files} == files
    assert (done / jobdir.LATEST_FAILED).read_text() == "an input made unreadable since\n"


@pytest.mark.parametrize("error, line", [(ValueError("beta -1 must be ..."), "beta -1 must be ..."),
                                         (RuntimeError("CUDA out of memory\nmore"), "RuntimeError: CUDA out of memory …")])
def test_an_error_is_described_in_one_line(error, line):
    assert jobdir.describe(error) == line


def test_start_refuses_another_runs_directory_and_skips_a_complete_job(tmp_path):
    out = tmp_path / "run"
    assert run_app("experiments.transfer", "debug=tiny", f"hydra.run.dir={out}").returncode == 0
    config = job_config("debug=tiny")
    try:
        assert jobdir.start(config, out, multirun=False)["status"] == "ok"  # complete: its metrics
        with pytest.raises(jobdir.OtherRun, match="holds another run's results"):
            jobdir.start({**config, "beta": 5.0}, out, {"beta": "5"}, multirun=False)
        assert jobdir.start({**config, "beta": 5.0}, out, {"beta": "5"}, multirun=True) is None  # a sweep redoes it
        assert not (out / "result.png").exists()
    finally:
        jobdir.release()
    assert Path(out / ".hydra").is_dir()
