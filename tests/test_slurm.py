"""`hydra/launcher=slurm` against a real SLURM scheduler, through the real command line.

`sudo bash .ci/local_slurm.sh start` starts a single-node cluster on Debian (CI does, before the tests). Tests marked
`slurm` are skipped with the reason where no scheduler answers `sinfo`, except under CI=true, where that fails them.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, run_app
from tests.test_launchers import GRID, SAME, basic  # noqa: F401  (basic: the reference report, a fixture)

SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]  # fits a 2-CPU node


@functools.cache  # asked once: sinfo waits about 9 s for a controller that is not there
def scheduler_absent() -> str | None:
    """Why no SLURM test can run here, or None when a scheduler answers sinfo."""
    if shutil.which("sinfo") is None:
        return "no SLURM here (sinfo not on PATH); start one: sudo bash .ci/local_slurm.sh start"
    done = subprocess.run(["sinfo", "--noheader", "-o", "%a"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or "up" not in done.stdout:
        return f"no SLURM scheduler answers ({' '.join(done.stderr.split()) or 'no partition up'})"
    return None


@pytest.fixture(autouse=True)
def scheduler(request: pytest.FixtureRequest) -> None:
    """Tests marked slurm: skipped without a scheduler, failed under CI=true (CI starts one)."""
    if request.node.get_closest_marker("slurm") is None:
        return
    reason = scheduler_absent()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true requires a SLURM scheduler: {reason}", pytrace=False)
        pytest.skip(reason)


def has_gpus() -> bool:
    """Whether a node has GPUs (the local cluster has none: device=auto runs on the CPU there)."""
    return "gpu:" in subprocess.run(["sinfo", "--noheader", "-o", "%G"], capture_output=True, text=True).stdout


def start_sweep(*args: str) -> tuple[subprocess.Popen, list[str], str]:
    """Start `python -m experiments.grid ARGS` and read its output up to the SLURM job id it submitted."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", HYDRA_FULL_ERROR="0")
    proc = subprocess.Popen([sys.executable, "-m", "experiments.grid", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        found = re.search(r"as SLURM job (\d+)", line)
        if found:
            return proc, lines, found.group(1)
    proc.wait()
    raise AssertionError("no job submitted:\n" + "".join(lines))


def finish(proc: subprocess.Popen, lines: list[str], timeout: float = 300) -> str:
    """The rest of the sweep's output, once it has exited."""
    rest, _ = proc.communicate(timeout=timeout)
    return "".join(lines) + rest


def wait_for(condition, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def squeue(job: str) -> dict[str, str]:
    out = subprocess.run(["squeue", "--noheader", "--array", "--states=all", f"--jobs={job}", "--format=%i %T"],
                         capture_output=True, text=True).stdout
    return dict(line.split() for line in out.splitlines())


def report(sweep: Path) -> pd.DataFrame:
    return pd.read_csv(sweep / "report.csv")


@pytest.mark.slurm
@pytest.mark.slow
def test_grid_on_slurm_gives_the_basic_report(request, tmp_path):
    """The default gpus_per_node=1 on a GPU-less partition: a warning, jobs on the CPU; a quiet log."""
    if has_gpus():
        pytest.skip("this cluster has GPUs: the reference report is the CPU's")
    reference_sweep = request.getfixturevalue("basic")  # here, after the scheduler check: it runs the basic launcher
    r = run_app("experiments.grid", *GRID, *SLURM, f"hydra.sweep.dir={tmp_path}")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    ours, reference = report(tmp_path), report(reference_sweep)
    assert list(ours.columns) == list(reference.columns)
    assert len(ours) == 4 and set(ours["status"]) == {"ok"}
    pd.testing.assert_frame_equal(ours[SAME], reference[SAME])
    assert (tmp_path / "grid.png").is_file() and any((tmp_path / ".submitit").rglob("*_result.pkl"))
    assert "has no GPU (sinfo): device=auto runs the jobs on the CPU" in out
    assert {json.loads((tmp_path / job / "metrics.json").read_text())["device"] for job in ours["job"]} == {"cpu"}
    # one line per state change, none from submitit's sacct calls (accounting is off)
    assert "sacct" not in out and "Traceback" not in out
    assert len(re.findall(r": COMPLETED$", out, re.M)) == 4


@pytest.mark.slurm
@pytest.mark.slow
def test_a_cancelled_job_is_recorded_failed_and_a_rerun_submits_only_it(tmp_path):
    proc, lines, array = start_sweep(*GRID, *SLURM, f"hydra.sweep.dir={tmp_path}")
    wait_for(lambda: squeue(array).get(f"{array}_0") == "RUNNING", f"{array}_0 to run")
    subprocess.run(["scancel", f"{array}_0"], check=True)
    out = finish(proc, lines)
    assert proc.returncode == 1, out[-3000:]
    assert out.strip().splitlines()[-1].startswith("error: 1 job of the sweep failed")
    first = report(tmp_path)
    assert (first["status"] == "ok").sum() == 3 and "Traceback" not in out
    failed = first[first["status"] != "ok"].iloc[0]
    assert failed["status"] == "failed" and f"SLURM job {array}_0 ended CANCELLED" in failed["error"]
    assert not (tmp_path / failed["job"] / "result.png").exists()

    again = run_app("experiments.grid", *GRID, *SLURM, f"hydra.sweep.dir={tmp_path}")
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert "3 of 4 jobs complete already (resume), not submitted" in again.stdout
    assert "submitted 1 job as SLURM job" in again.stdout
    second = report(tmp_path)
    assert set(second["status"]) == {"ok"} and list(second["job"]) == list(first["job"])


@pytest.mark.slurm
@pytest.mark.slow
def test_a_preempted_job_is_requeued_and_completes(tmp_path):
    """submitit's preemption signal (USR2, what `job._interrupt()` sends): requeued, started again, complete (SLURM
    holds a requeued job for cred_expire meanwhile, which exercises the pending notices)."""
    proc, lines, job = start_sweep("size=32", "steps=30", "progress=false", "style_layers=[0]", "beta=1e3", *SLURM,
                                   "hydra.launcher.pending_notice_s=2", f"hydra.sweep.dir={tmp_path}")
    wait_for(lambda: any(tmp_path.glob("*/.hydra")), "the job to start")  # submitit's handlers are set by then
    subprocess.run(["scancel", "--signal=USR2", job], check=True)
    out = finish(proc, lines)
    assert proc.returncode == 0, out[-3000:]
    assert set(report(tmp_path)["status"]) == {"ok"}
    log = next((tmp_path / ".submitit").rglob("*_log.out")).read_text()
    assert "this job is preempted" in log and f"Requeued job {job}" in log
    assert log.count("Starting with JobEnvironment") == 2
    # which intermediate states the watcher sees depends on when squeue is asked (once in a clean-clone CI run it
    # saw none of them): the sequence and the pending notice are checked on given states below
    assert re.findall(rf"^\S+ \S+ {job} \S+: (\w+)", out, re.M)[-1] == "COMPLETED"


def test_a_preemption_swallowed_on_its_way_still_ends_the_job():
    """submitit's USR2 handler requeues and raises SystemExit; where code in between swallows that exit (in CI once,
    torch's import: "initialization failed"), kept_exit raises it again on leaving, so no result is written; an
    Exception from the handler (the time limit's: no requeue) is the job's to record."""
    from hydra_plugins.nst_slurm_launcher.slurm_launcher import kept_exit

    def requeue_and_exit(signum: int, frame: object) -> None:  # how submitit's checkpoint_and_try_requeue ends
        raise SystemExit(-1)

    previous = signal.signal(signal.SIGUSR2, requeue_and_exit)
    try:
        with pytest.raises(SystemExit), kept_exit(signal.SIGUSR2):
            try:
                signal.raise_signal(signal.SIGUSR2)
            except SystemExit:  # swallowed, as the import did
                pass
        with kept_exit(signal.SIGUSR2):  # no signal: nothing raised
            pass
        with pytest.raises(SystemExit), kept_exit(signal.SIGUSR2):  # not swallowed: raised once, as before
            signal.raise_signal(signal.SIGUSR2)
        with pytest.raises(SystemExit), kept_exit(signal.SIGUSR2):  # swallowed into another error that escapes
            try:
                signal.raise_signal(signal.SIGUSR2)
            except SystemExit:
                raise ImportError("initialization failed") from None
        assert signal.getsignal(signal.SIGUSR2) is requeue_and_exit

        def time_limit(signum: int, frame: object) -> None:  # submitit at the time limit: no requeue, an Exception
            raise RuntimeError("Job not requeued because: timed-out and not checkpointable.")

        signal.signal(signal.SIGUSR2, time_limit)
        with kept_exit(signal.SIGUSR2):  # the job records it (experiments.app.main) and ends with its result
            try:
                signal.raise_signal(signal.SIGUSR2)
            except RuntimeError:
                pass
    finally:
        signal.signal(signal.SIGUSR2, previous)


def test_state_changes_are_logged_once_and_a_long_wait_gets_a_notice(tmp_path, caplog):
    """The watcher's step on given squeue answers: one line per change, none for an unchanged state, and a notice
    naming squeue's reason for a job pending longer than pending_notice_s."""
    from hydra_plugins.nst_slurm_launcher.watch import Tracked, pending_notices, step

    job = Tracked("7_0", "beta=1e3", tmp_path / "7_0_result.pkl", since=0.0)
    caplog.set_level("INFO")
    for now, state in ((1.0, "RUNNING"), (2.0, "RUNNING"), (3.0, "PENDING"), (4.0, "PENDING")):
        step([job], {"7_0": (state, "BeginTime" if state == "PENDING" else "None")}, now)
    assert [r.getMessage() for r in caplog.records] == ["7_0 beta=1e3: RUNNING", "7_0 beta=1e3: PENDING (BeginTime)"]
    assert pending_notices([job], now=4.0, after_s=2.0) == []  # pending since 3.0: 1 s
    assert re.match(r"1 job pending for over 2 s, squeue reason BeginTime \(7_0\)",
                    pending_notices([job], now=6.0, after_s=2.0)[0])


@pytest.mark.slurm
@pytest.mark.parametrize("override, line", [
    pytest.param("hydra.launcher.cpus_per_task=999", r"cpus_per_task 999: no node of partition '\w+' has 999 CPUs "
                 r"\(the most: \d+, sinfo\); set hydra.launcher.cpus_per_task=\d+ or less", id="cpus"),
    pytest.param("device=cuda", r"gpus_per_node 1: partition '\w+' has no GPU \(sinfo\); set device=cpu "
                 r"hydra.launcher.gpus_per_node=0 to run on the CPU, or choose a partition with GPUs .*", id="gpus")])
def test_a_request_no_node_can_satisfy_fails_at_once_in_one_line(tmp_path, override, line):
    """Checked against sinfo before anything is submitted; the GPU case is device=cuda on a GPU-less partition."""
    if override.startswith("device=") and has_gpus():
        pytest.skip("this cluster has GPUs")
    start = time.monotonic()
    r = run_app("experiments.grid", "size=32", "steps=2", *SLURM, override, f"hydra.sweep.dir={tmp_path}")
    assert time.monotonic() - start < 60
    assert r.returncode == 2, r.stdout + r.stderr
    assert re.fullmatch(rf"error: hydra\.launcher\.{line}\n", r.stderr), r.stderr  # one line, no traceback
    assert not (tmp_path / ".submitit").exists()


@pytest.mark.slurm
@pytest.mark.parametrize("request_, partition, line", [
    (dict(mem_gb=99999), None, r"hydra.launcher.mem_gb 99999: no node of partition '\w+' has 99999 GB of memory "
                               r"\(the most: \d+ MB, sinfo\); set hydra.launcher.mem_gb=\d+ or less"),
    (dict(timeout_min=999999), None, r"hydra.launcher.timeout_min 999999: partition '\w+' allows at most \d+ min "
                                     r"\(.+, sinfo\); set hydra.launcher.timeout_min=\d+ or less, or choose .*"),
    (dict(), "nowhere", r"hydra.launcher.partition 'nowhere': no such partition; sinfo lists \w+.*")],
    ids=["mem", "time", "partition"])
def test_the_other_resources_are_checked_against_this_sinfo(request_, partition, line):
    """The same check as the command line's (in this process, against this cluster's sinfo)."""
    from hydra_plugins.nst_slurm_launcher.resources import (SINFO_FORMAT, Request, Unfit, check, parse,
                                                             partition_nodes, run_sinfo)

    asked = dict(gpus=0, cpus=1, tasks=1, mem_gb=1, timeout_min=60) | request_
    if "timeout_min" in request_:  # a partition without a time limit (MaxTime=INFINITE) has none to exceed
        _, nodes = partition_nodes(parse(run_sinfo(["--noheader", "-N", "-o", SINFO_FORMAT])), partition)
        if nodes and all(n.limit_min == float("inf") for n in nodes):
            check(Request(**asked), partition, "auto")  # accepted
            return
    with pytest.raises(Unfit) as e:
        check(Request(**asked), partition, "auto")
    assert re.fullmatch(line, str(e.value)), str(e.value)


def test_no_scheduler_is_one_line(tmp_path, monkeypatch):
    """Where sinfo is missing (no SLURM here, or not on PATH): one line and exit 2, not submitit's traceback."""
    monkeypatch.setenv("PATH", str(tmp_path))
    r = run_app("experiments.grid", "size=32", "hydra/launcher=slurm", f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr == ("error: hydra/launcher=slurm: no SLURM scheduler answers here (sinfo is not on PATH: this "
                        "machine is not a SLURM login node); on a cluster, run from a node that can submit jobs; to "
                        "try it locally: sudo bash .ci/local_slurm.sh start\n")


def test_sinfo_fields_of_other_clusters():
    """GPU clusters' gres and time limits, as sinfo prints them (the local cluster has neither GPUs nor these)."""
    from hydra_plugins.nst_slurm_launcher.resources import gpu_count, minutes

    assert [gpu_count(g) for g in ("(null)", "gpu:4", "gpu:a100:8(S:0-1)", "gpu:a100:2,gpu:v100:2,mps:100")] == \
        [0, 4, 8, 4]
    assert [minutes(t) for t in ("30", "30:00", "1:00:00", "1-00:00:00", "2-12", "infinite")] == \
        [30, 30, 60, 1440, 3600, float("inf")]
