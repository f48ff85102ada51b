"""Faults under a sweep, with nothing lost: records that lie, job directories that are not their own, a full disk, a
read-only mount, two runs of one sweep at once, repeated Ctrl-C, a killed main process. Real sweeps (tiny jobs),
real files; a full or read-only disk is a small tmpfs, mounted where the tests run as root (else skipped)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nst import jobdir, metrics
from nst import sweep as sweeps
from tests.conftest import ROOT, run_app

TINY = ["debug=tiny"]
BETAS = "1,2,3,4,5"


def sweep(sweep_dir: Path, *more: str, betas: str = BETAS):
    return run_app("experiments.transfer", "-m", *TINY, f"beta={betas}", f"hydra.sweep.dir={sweep_dir}", *more)


def job(sweep_dir: Path, beta: int, *more: str) -> Path:
    """The directory of the job beta=<beta> of a sweep run with `more` (its other swept or named overrides)."""
    return sweep_dir / sweeps.dirname([*TINY, f"beta={beta}", *more])


def digests(root: Path) -> dict[str, str]:
    """sha256 of every file under root: what a fault must leave as it was."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def outputs(job_dir: Path) -> dict[str, str]:
    """sha256 of a job's results (Hydra rewrites .hydra/ and its log whenever the sweep runs, a skipped job's too)."""
    return {name: digest for name, digest in digests(job_dir).items() if name in jobdir.OUTPUTS}


def report_statuses(sweep_dir: Path) -> tuple[int, pd.DataFrame, str]:
    r = run_app("experiments.report", str(sweep_dir))
    return r.returncode, pd.read_csv(sweep_dir / "report.csv"), r.stdout + r.stderr


def can_mount() -> str | None:
    """Why a tmpfs cannot be mounted here, else None."""
    if os.geteuid() != 0:
        return "mounting a tmpfs needs root"
    probe = Path("/tmp") / f"nst-mount-probe-{os.getpid()}"
    probe.mkdir(exist_ok=True)
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True)
        if ok.returncode != 0:
            return f"mount -t tmpfs failed: {ok.stderr.decode().strip()}"
        subprocess.run(["umount", str(probe)], check=True)
        return None
    finally:
        probe.rmdir()


needs_mount = pytest.mark.skipif(can_mount() is not None, reason=str(can_mount()))


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A small tmpfs at path for the block (remount with `remount(path, options)`)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


# ------------------------------------------------------------------------------------------ records that lie

def test_a_record_that_lies_is_not_ok_for_the_report_the_exit_status_or_resume(tmp_path):
    """Swapped, hollow, failed-with-losses and hand-edited records: the report listed them ok (the swapped ones with
    the other job's beta), while resume redid them. Now every reader gives one answer: not ok, said with the
    directory, no numbers in the pivots or figures; the complete jobs beside them stay ok and are not redone."""
    sweep_dir = tmp_path / "sweep"
    assert sweep(sweep_dir).returncode == 0
    a, b = job(sweep_dir, 1) / "metrics.json", job(sweep_dir, 2) / "metrics.json"
    a_text, b_text = a.read_text(), b.read_text()
    a.write_text(b_text)
    b.write_text(a_text)  # swapped
    (job(sweep_dir, 3) / "metrics.json").write_text('{"status": "ok"}')  # hollow
    failed = json.loads((job(sweep_dir, 4) / "metrics.json").read_text())
    (job(sweep_dir, 4) / "metrics.json").write_text(json.dumps({**failed, "status": "failed", "error": "by hand"}))
    kept = outputs(job(sweep_dir, 5))

    code, df, said = report_statuses(sweep_dir)
    assert code == 1, said
    assert list(df["status"]) == ["misplaced", "misplaced", "hollow", "failed", "ok"], said
    assert list(df["beta"])[:2] == [1.0, 2.0]  # each row its own directory's beta, from its overrides
    assert df.loc[:3, ["content_loss", "style_loss", "total_loss"]].isna().all(axis=None)
    assert list(df["result"].fillna(""))[:4] == ["", "", "", ""] and df["result"][4] == "beta=5,debug=tiny/result.png"
    assert f"warning: {job(sweep_dir, 1)}: metrics.json is the record of job beta=2,debug=tiny" in said
    assert f"warning: {job(sweep_dir, 3)}: metrics.json says ok but holds no config" in said
    statuses = {Path(d).name for d in jobdir.failed_jobs(sweep_dir, None, time.time())}
    assert statuses == {job(sweep_dir, k).name for k in (1, 2, 3, 4)}  # the launchers' exit status agrees

    record = job(sweep_dir, 5) / "metrics.json"
    text = record.read_text()
    edited = json.loads(text)
    edited["config"]["beta"] = 99.0  # a record edited by hand: its identity no longer matches
    record.write_text(json.dumps(edited))
    assert jobdir.state(job(sweep_dir, 5))[:2] == ("altered", "metrics.json's config or inputs were changed after "
                                                               "its job wrote it")
    record.write_text(text)
    assert jobdir.state(job(sweep_dir, 5))[0] == "ok" and outputs(job(sweep_dir, 5)) == kept

    r = sweep(sweep_dir)  # resume redoes exactly the four
    assert r.returncode == 0, r.stderr[-2000:]
    assert "5 jobs: 5 ok; this run: 4 done, 1 skipped (finished earlier)" in r.stdout.splitlines(), r.stdout
    assert outputs(job(sweep_dir, 5)) == kept
    code, df, said = report_statuses(sweep_dir)
    assert code == 0 and set(df["status"]) == {"ok"} and list(df["beta"]) == [1.0, 2.0, 3.0, 4.0, 5.0], said


def test_every_record_says_whose_it_is(tmp_path):
    sweep_dir = tmp_path / "sweep"
    assert sweep(sweep_dir, betas="1").returncode == 0
    m = metrics.read(job(sweep_dir, 1))
    assert m["job"] == "beta=1,debug=tiny" and m["identity"] == metrics.identity(m)
    assert m["run"] == os.environ[metrics.RUN]  # this command's (tests.conftest.run_app runs it in this process)


# ------------------------------------------------------------------------------------------ aliased directories

@pytest.mark.parametrize("alias", ["another_job", "outside"])
def test_a_job_directory_that_is_a_link_is_refused_before_any_job_runs(tmp_path, alias):
    """A job directory linked to another job's: the re-run skipped one job as complete, then wrote the other
    through the link over its result, and called both ok. Now refused in one line, nothing written."""
    sweep_dir = tmp_path / "sweep"
    assert sweep(sweep_dir, betas="1,2").returncode == 0
    target = job(sweep_dir, 1) if alias == "another_job" else tmp_path / "elsewhere"
    target.mkdir(exist_ok=True)
    link = job(sweep_dir, 2)
    subprocess.run(["rm", "-rf", str(link)], check=True)
    link.symlink_to(target)
    before = digests(tmp_path)
    r = sweep(sweep_dir, betas="1,2")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == [f"error: hydra.sweep.dir={sweep_dir}: job directory {link} is a link to "
                                             f"{target}; remove it (a job writes only into a directory of its own) "
                                             "or choose another directory"]
    assert digests(tmp_path) == before


@needs_mount
def test_a_job_directory_mounted_over_another_is_refused_and_a_mount_point_of_its_own_is_fine(tmp_path):
    sweep_dir = tmp_path / "sweep"
    assert sweep(sweep_dir, betas="1,2").returncode == 0
    (sweep_dir / "beta=3,debug=tiny").mkdir()
    subprocess.run(["mount", "--bind", str(job(sweep_dir, 1)), str(job(sweep_dir, 3))], check=True)
    try:
        before = digests(job(sweep_dir, 1))
        r = sweep(sweep_dir, betas="1,2,3")
        assert r.returncode == 2 and f"job directory {job(sweep_dir, 3)} is the same directory as " \
                                     f"{job(sweep_dir, 1)}" in r.stderr, r.stderr[-2000:]
        assert digests(job(sweep_dir, 1)) == before
    finally:
        subprocess.run(["umount", str(job(sweep_dir, 3))], check=True)
    with tmpfs(job(sweep_dir, 3), "4m"):  # a file system of its own at a job's place: its own directory
        r = sweep(sweep_dir, betas="1,2,3")
        head = next(line for line in r.stdout.splitlines() if line.startswith("3 jobs: "))
        assert r.returncode == 0 and "1 done" in head and "2 skipped" in head, r.stdout + r.stderr


# ------------------------------------------------------------------------------------------ full and read-only disks

@needs_mount
def test_a_full_disk_fails_each_job_that_cannot_write_in_one_line_and_loses_nothing(tmp_path):
    """It printed nine `--- Logging error ---` tracebacks, then ended the command (exit 2) before the later jobs
    and the report. Now each job that cannot write fails alone, in one line naming the path; exit 1."""
    disk = tmp_path / "disk"
    with tmpfs(disk, "64k"):
        r = sweep(disk / "sweep")
        out = r.stdout + r.stderr
        assert r.returncode == 1 and "Traceback" not in out and "Logging error" not in out, out[-3000:]
        failed = [line for line in out.splitlines() if " job beta=" in line and "failed: cannot write" in line]
        assert failed and all("No space left on device" in line for line in failed), out[-3000:]
        assert r.stderr.strip().splitlines()[-1].startswith(f"error: {len(failed)} job"), out[-3000:]
        done = [d for d in (disk / "sweep").iterdir() if d.is_dir() and jobdir.completed(d)]
        assert done and len(done) + len(failed) == 5, out[-3000:]
        kept = {d.name: outputs(d) for d in done}
        remount(disk, "size=16m")
        r = sweep(disk / "sweep")  # with room again: the rest runs, the complete ones are kept
        assert r.returncode == 0, r.stderr[-2000:]
        head = next(line for line in r.stdout.splitlines() if line.startswith("5 jobs: "))
        assert f"{len(failed)} done" in head and f"{len(done)} skipped" in head, r.stdout
        assert {d: outputs(disk / "sweep" / d) for d in kept} == kept


@needs_mount
def test_a_disk_that_turns_read_only_mid_sweep_fails_the_later_jobs_alone(tmp_path):
    """One job failed as it should, then the next job's directory creation ended the command: no later job tried,
    no report. Now each fails in one line, the report says in one line why it cannot be written, exit 1."""
    disk = tmp_path / "disk"
    with tmpfs(disk, "16m"):
        proc = subprocess.Popen([sys.executable, "-m", "experiments.transfer", "-m", *TINY, "steps=40",
                                 f"beta={BETAS}", f"hydra.sweep.dir={disk / 'sweep'}"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = job(disk / "sweep", 1, "steps=40")
        deadline = time.monotonic() + 120
        while not jobdir.completed(first) and time.monotonic() < deadline:
            time.sleep(0.05)
        remount(disk, "ro")
        kept = outputs(first)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 1 and "Traceback" not in err and "Logging error" not in err, err[-3000:]
        said = out + err  # the jobs' log lines are on stdout
        failed = [line for line in said.splitlines() if " job beta=" in line and " failed: " in line]
        assert len(failed) == 4 and all("Read-only file system" in line for line in failed), said[-3000:]
        assert f"failed: cannot write {disk / 'sweep' / 'report.csv'}: Read-only file system" in said, said[-3000:]
        assert ".tmp" not in said  # the report's error names report.csv, not its temporary file
        assert "the report could not be written" in err.strip().splitlines()[-1], err[-3000:]
        assert outputs(first) == kept and jobdir.completed(first)
        r = run_app("experiments.report", str(disk / "sweep"))
        assert r.returncode == 2 and r.stderr.strip().splitlines() == [
            f"error: cannot write {disk / 'sweep' / 'report.csv'}: Read-only file system"], r.stderr


# ------------------------------------------------------------------------------------------ processes

def start(sweep_dir: Path, *more: str, betas: str = BETAS, steps: int = 40) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "experiments.transfer", "-m", *TINY, f"steps={steps}",
                             f"beta={betas}", f"hydra.sweep.dir={sweep_dir}", *more], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_runs_of_one_sweep_at_once_give_one_account(tmp_path):
    """One said `4 jobs: 4 done` then `error: 2 jobs of the sweep failed`. Now neither calls the other's running
    jobs failed, each job runs once, and each run says which jobs the other did."""
    sweep_dir = tmp_path / "sweep"
    first = start(sweep_dir)
    time.sleep(1.0)
    second = start(sweep_dir)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    for p, (out, err) in zip((first, second), outs):
        assert p.returncode == 0 and "failed" not in out + err and "Traceback" not in err, out + err[-3000:]
    runs = {metrics.read(d)["run"] for d in sweep_dir.iterdir() if d.is_dir()}
    assert len(runs) == 2  # both worked
    for out, err in outs:
        head = next(line for line in out.splitlines() if line.startswith("5 jobs: "))
        assert "done by another run" in head or "running in another" in head, out
        left = (out + err).count("is being run by another process now; left to it")
        assert left >= 1, err[-3000:]
    assert all(jobdir.completed(d) for d in sweep_dir.iterdir() if d.is_dir())


def test_any_number_of_ctrl_c_gives_one_line_the_report_and_130(tmp_path):
    """Two or three SIGINTs within half a second ended the command with no report and no word."""
    sweep_dir = tmp_path / "sweep"
    proc = start(sweep_dir, betas="1,2,3", steps=400)
    deadline = time.monotonic() + 120
    while not jobdir.completed(job(sweep_dir, 1, "steps=400")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(0.15)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("interrupted after") and "report of the finished jobs" in err
    df = pd.read_csv(sweep_dir / "report.csv")
    assert list(df["status"]) == ["ok", "interrupted", "missing"], df


def test_a_killed_main_process_leaves_no_joblib_worker_behind(tmp_path):
    """After kill -9 of the main process, joblib's workers lived on, idle, indefinitely."""
    import psutil

    sweep_dir = tmp_path / "sweep"
    proc = start(sweep_dir, "hydra/launcher=parallel", "threads=1", "hydra.launcher.n_jobs=2", betas="1,2",
                 steps=5000)
    deadline = time.monotonic() + 120
    while not all((job(sweep_dir, k, "steps=5000") / ".hydra").is_dir() for k in (1, 2)) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    workers = psutil.Process(proc.pid).children(recursive=True)
    assert workers, "no worker started"
    proc.kill()
    proc.communicate(timeout=30)
    gone, alive = psutil.wait_procs(workers, timeout=30)
    assert not alive, [p.cmdline() for p in alive]
    for k in (1, 2):  # each worker's job says what happened to it, and left no image
        assert jobdir.state(job(sweep_dir, k, "steps=5000"))[0] in ("interrupted", "unfinished")
        assert not (job(sweep_dir, k, "steps=5000") / "result.png").exists()


def test_a_copy_made_with_hard_links_never_writes_into_the_original(tmp_path):
    """`cp -al sweep copy`, then a re-run of the copy: Hydra rewrites multirun.yaml, .hydra/*.yaml and the job logs in
    place, which were the original's files too; our own outputs are renamed into place."""
    original, copy = tmp_path / "sweep", tmp_path / "copy"
    assert sweep(original, betas="1,2").returncode == 0
    subprocess.run(["cp", "-al", str(original), str(copy)], check=True)
    before = digests(original)
    (job(copy, 1) / "metrics.json").unlink()  # redone in the copy
    r = sweep(copy, betas="1,2,3")
    assert r.returncode == 0, r.stderr[-2000:]
    assert digests(original) == before
