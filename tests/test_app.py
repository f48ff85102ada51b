"""The entry point's process (experiments/app.py): Ctrl-C and SIGTERM, a job's processes stopped with it, what an
interrupted or failed job records, the exit status. Each runs the command in a process of its own: signals."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nst.assets.painting import draw
from tests.conftest import run_app, run_cli
from tests.test_sweeps import job, jobs

TINY = ["debug=tiny"]


def as_background_job() -> None:
    """A command as a non-interactive shell's background job starts it (`nohup cmd &`): SIGINT ignored, which its
    job processes would inherit (the app restores it; before, they ignored the stop and ran on)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.slow
def test_sigterm_to_the_main_process_alone_stops_the_local_launchers_jobs(tmp_path):
    """`kill PID` (a scheduler's SIGTERM) reached only the main process: its submitit jobs ran on, re-parented to
    init, and later wrote ok results under a report that called them missing; started as `nohup cmd &` starts it,
    they ignored the SIGINT that stops them."""
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.transfer", "-m", "size=32", "progress=true",
                             "steps=100000", "threads=1", "hydra/launcher=local", f"hydra.sweep.dir={sweep}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_background_job)

    def optimising() -> bool:  # the job's progress bar (its 32 px scale) in submitit's log of the job's stderr
        return any("32px" in log.read_text(errors="replace") for log in sweep.glob(".submitit/*/*_log.err"))

    deadline = time.time() + 120
    while not optimising() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(1)  # a few iterations into the optimisation
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    record = json.loads(next(sweep.glob("*/metrics.json")).read_text())
    assert record["status"] == "interrupted" and f"interrupted after {record['steps']} iterations" in record["error"]
    history = pd.read_csv(next(sweep.glob("*/history.csv")))  # what it had done, up to the interrupt
    assert record["steps"] >= history["iteration"].iloc[-1] >= 1 and record["inputs"]["content"]
    def cmdline(path: Path) -> bytes:
        try:
            return path.read_bytes()
        except OSError:  # gone meanwhile
            return b""

    left = [cmdline(p) for p in Path("/proc").glob("[0-9]*/cmdline") if str(sweep).encode() in cmdline(p)]
    assert not left, left


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_interrupted_sweep_keeps_finished_jobs_and_reports_them(tmp_path, sig, code):
    """Second of three jobs runs 100000 iterations: the signal arrives during it."""
    sweep = tmp_path / "sweep"
    env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0")
    proc = subprocess.Popen([sys.executable, "-m", "experiments.transfer", "-m", "size=32", "progress=false",
                             "steps=2,100000,3", f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_background_job)
    deadline = time.time() + 300

    def started(steps: int, name: str) -> bool:
        return sweep.is_dir() and any((d / name).exists() for d in jobs(sweep, "steps", steps))

    while not (started(2, "metrics.json") and started(100000, ".hydra")) and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    first, second = job(sweep, "steps", 2), job(sweep, "steps", 100000)
    time.sleep(2)  # into the long job's optimisation
    before = {name: (first / name).read_bytes() for name in ("result.png", "metrics.json", "history.csv")}
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in out + err, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("interrupted"), err[-2000:]
    assert {name: (first / name).read_bytes() for name in before} == before
    stopped = json.loads((second / "metrics.json").read_text())
    assert stopped["status"] == "interrupted" and not (second / "result.png").exists()
    assert not jobs(sweep, "steps", 3)
    report = pd.read_csv(sweep / "report.csv").set_index("job")
    assert report.loc[first.name, "status"] == "ok" and report.loc[second.name, "status"] == "interrupted"


@pytest.mark.slow
def test_an_interrupted_batched_rerun_keeps_the_results_it_was_to_replace(tmp_path):
    """The batched launcher prepares every job before any runs: an earlier complete result is removed when its
    job's new run ends, not before, so a Ctrl-C during the batch keeps them all (it removed them all before)."""
    sweep, content = tmp_path / "sweep", tmp_path / "c.png"
    draw(width=64, height=48, seed=1).save(content)
    args = ["-m", "size=32", "steps=100", "progress=false", "beta=1e2,1e4", f"content={content}",
            "hydra/launcher=batched", f"hydra.sweep.dir={sweep}"]
    r = run_app("experiments.transfer", *args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    before = {d: (d / "result.png").read_bytes() for d in sweep.iterdir() if (d / "result.png").is_file()}
    assert len(before) == 2
    draw(width=64, height=48, seed=2).save(content)  # new bytes: both jobs are redone
    proc = subprocess.Popen([sys.executable, "-m", "experiments.transfer", *args], cwd=tmp_path,
                            env=dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=as_background_job)
    out = ""
    while out.count("replacing the complete result") < 2 and proc.poll() is None:
        out += proc.stdout.readline()  # both prepared: the batch is next
    time.sleep(1)  # into the batch (100 iterations of two jobs)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=300)
    out += rest
    assert proc.returncode == 130, out[-2000:]
    assert out.count("replacing the complete result of an earlier run (other content file)") == 2, out[-2000:]
    for d, png in before.items():
        assert (d / "result.png").read_bytes() == png
        assert json.loads((d / "metrics.json").read_text())["status"] == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])  # adam: no batch, two lone jobs one after the other
def test_an_interrupted_batch_records_what_each_job_had_done(tmp_path, optimizer):
    """Ctrl-C during a batch of two: each job's record holds its steps, inputs and device, and history.csv its rows
    so far (before: only "interrupted after N iterations"); a job that had not started holds none of the running
    job's (they were copied to it)."""
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.transfer", "-m", "size=32", "steps=100000",
                             "progress=false", "beta=1e2,1e4", f"optimizer={optimizer}", "hydra/launcher=batched",
                             f"hydra.sweep.dir={sweep}"],
                            cwd=tmp_path, env=dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=as_background_job)
    out = ""
    while out.count("#1 :") < 1 and proc.poll() is None:
        out += proc.stdout.readline()  # both being prepared: the batch is next
    time.sleep(4)  # into the batch (its set-up at 32 px, VGG19 loaded, takes about 2 s)
    proc.send_signal(signal.SIGINT)
    out += proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, out[-2000:]
    first, second = sorted(sweep.glob("beta=*"))  # beta=1e+02 first
    for d in (first, second) if optimizer == "lbfgs" else (first,):
        record = json.loads((d / "metrics.json").read_text())
        assert record["status"] == "interrupted", record
        assert record["error"] == f"InterruptedJob: interrupted after {record['steps']} iterations"
        assert record["steps"] >= 1 and record["inputs"]["content"] and record["device"] == "cpu"
        history = pd.read_csv(d / "history.csv")
        assert 1 <= history["iteration"].iloc[-1] <= record["steps"] and history["total_loss"].notna().all()
    if optimizer == "adam":
        record = json.loads((second / "metrics.json").read_text())
        assert record["error"] == "InterruptedJob: interrupted before it started", record
        assert "steps" not in record and not (second / "history.csv").exists()


# ------------------------------------------------------------------------------------ in process: fast checks


@pytest.mark.slow
def test_a_job_that_fails_beside_its_kept_result_fails_the_command_under_any_launcher(tmp_path):
    """An input made unreadable after the sweep finished: the job fails and its result is kept. Under parallel
    (and local) the job ran in another process, and the command exited 0 with every job "skipped"."""
    images = [tmp_path / "c3.png", tmp_path / "c4.png"]
    for k, image in enumerate(images):
        draw(width=48, height=36, seed=k).save(image)
    sweep = tmp_path / "sweep"
    args = ["experiments.transfer", "-m", *TINY, f"content={images[0]},{images[1]}", f"hydra.sweep.dir={sweep}"]
    assert run_app(*args, cwd=tmp_path).returncode == 0
    good = images[0].read_bytes()
    images[0].write_text("garbage")
    parallel = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "threads=1"]  # n_jobs=1 runs in this process
    r = run_app(*args, *parallel, cwd=tmp_path)
    assert r.returncode == 1 and "1 job of the sweep failed" in r.stderr, r.stdout[-1500:] + r.stderr[-1500:]
    (kept,) = [d for d in sweep.iterdir() if (d / "latest_run_failed.txt").is_file()]
    assert "is not an image" in (kept / "latest_run_failed.txt").read_text() and (kept / "result.png").is_file()
    images[0].write_bytes(good)  # mended: the kept result is complete again, and the mark goes
    r = run_app(*args, *parallel, cwd=tmp_path)
    assert r.returncode == 0 and "2 skipped" in r.stdout and not (kept / "latest_run_failed.txt").exists()
