"""What a sweep directory holds is what ran: same-named inputs, changed input bytes, other runs' jobs, single runs
into a used directory (issue: no sweep silently loses or mixes a job)."""
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from nst.assets.painting import draw
from tests.conftest import run_app

TINY = ["debug=tiny", "size=24", "style_layers=[0]", "content_layers=[1]"]


def metrics(job_dir):
    return json.loads((job_dir / "metrics.json").read_text())


@pytest.mark.slow
def test_same_named_files_changed_bytes_and_other_runs(tmp_path):
    for folder, seed in (("a", 1), ("b", 2)):
        (tmp_path / "root" / folder).mkdir(parents=True)
        draw(width=64, height=48, seed=seed).save(tmp_path / "root" / folder / "x.png")
    sweep = tmp_path / "sweep"
    args = ["experiments.transfer", "-m", *TINY, "style=${images_root}/a/x.png,${images_root}/b/x.png",
            f"hydra.sweep.dir={sweep}"]
    r = run_app(*args, f"images_root={tmp_path}/root", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    report = pd.read_csv(sweep / "report.csv")
    assert len(report) == 2 and report["job"].nunique() == 2 and set(report["status"]) == {"ok"}
    a, b = (sweep / j for j in sorted(report["job"], key=lambda j: metrics(sweep / j)["config"]["style"]))
    assert metrics(a)["config"]["style"].endswith("a/x.png") and metrics(b)["config"]["style"].endswith("b/x.png")
    before = {d: (d / "result.png").stat().st_mtime_ns for d in (a, b)}

    # the same bytes at other paths (another clone, a moved folder, another images_root): nothing is redone;
    # before, the paths were compared and both results were deleted and redone
    shutil.copytree(tmp_path / "root", tmp_path / "moved")
    args.append(f"images_root={tmp_path}/moved")
    r = run_app(*args, cwd=tmp_path)
    assert r.returncode == 0 and "2 skipped" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    assert all((d / "result.png").stat().st_mtime_ns == before[d] for d in (a, b))

    # the same path, new bytes: only that job is redone; the other is skipped untouched
    draw(width=64, height=48, seed=3).save(tmp_path / "moved" / "b" / "x.png")
    r = run_app(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (a / "result.png").stat().st_mtime_ns == before[a] and (b / "result.png").stat().st_mtime_ns != before[b]
    assert metrics(b)["inputs"]["style_0"] != metrics(a)["inputs"]["style_0"]
    assert "1 done" in r.stdout and "1 skipped" in r.stdout
    assert f"job {b.name}: replacing the complete result of an earlier run (other style_0 file)" in r.stdout + r.stderr

    # another command into the same directory: its report holds its own jobs only and says the rest are others'
    r = run_app("experiments.transfer", "-m", *TINY, "beta=1e2,1e4", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    report = pd.read_csv(sweep / "report.csv")
    assert len(report) == 2 and all(j.startswith("beta=") for j in report["job"])
    assert "2 other job directories" in r.stdout


def held(directory: Path) -> bool:
    """Whether a process holds an flock on directory (nst.jobdir.claim), from Linux's /proc/locks: looked
    up, not tried, so that the look never takes the lock from the run it waits for."""
    if not directory.is_dir():
        return False
    inode = os.stat(directory).st_ino
    return any(line.split()[1] == "FLOCK" and int(line.split()[5].rsplit(":", 1)[1]) == inode
               for line in Path("/proc/locks").read_text().splitlines())


@pytest.mark.slow
def test_a_directory_another_run_is_writing_is_refused(tmp_path):
    """Two runs into one directory (two single runs started in the same second share outputs/<entry>/<time>)
    both wrote there, the later one's files replacing the other's with no word."""
    run_dir = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "experiments.transfer", *TINY, "steps=100000", "threads=1",
                              f"hydra.run.dir={run_dir}"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while not held(run_dir) and first.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        r = run_app("experiments.transfer", *TINY, "beta=5", f"hydra.run.dir={run_dir}", cwd=tmp_path)
        assert first.poll() is None, "the first run ended before the second started"
    finally:
        first.kill()
        first.wait()
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert lines[0] == f"error: hydra.run.dir: {run_dir} is being written by another run now; wait for it to end, " \
                       "or choose another directory"
    assert not (run_dir / "metrics.json").exists()  # nothing of the second run's


@pytest.mark.slow
def test_a_single_run_never_overwrites_another_runs_results(tmp_path):
    run_dir = tmp_path / "run"
    assert run_app("experiments.transfer", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path).returncode == 0
    first = (run_dir / "result.png").read_bytes()
    r = run_app("experiments.transfer", *TINY, "beta=5", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert r.returncode == 2 and "holds another run's results" in r.stderr and "Traceback" not in r.stderr
    assert (run_dir / "result.png").read_bytes() == first and metrics(run_dir)["config"]["beta"] == 1e3
    r = run_app("experiments.transfer", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)  # the same run: done
    assert r.returncode == 0 and (run_dir / "result.png").read_bytes() == first


@pytest.mark.slow
def test_a_damaged_result_is_reported_and_redone(tmp_path):
    """A result.png cut short (a full disk, a copy interrupted) beside an ok metrics.json: the report says so and
    exits 1 (it failed in the strip's drawing before), and the sweep's re-run redoes that job alone."""
    sweep = tmp_path / "sweep"
    args = ["experiments.transfer", "-m", *TINY, "beta=1e2,1e4", f"hydra.sweep.dir={sweep}"]
    assert run_app(*args, cwd=tmp_path).returncode == 0
    cut, whole = sorted(d for d in sweep.iterdir() if (d / "result.png").is_file())
    png = (cut / "result.png").read_bytes()
    (cut / "result.png").write_bytes(png[:len(png) // 2])
    r = run_app("experiments.report", str(sweep), cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert f"warning: {cut}: result.png is damaged" in r.stdout, r.stdout
    assert pd.read_csv(sweep / "report.csv").set_index("job").loc[cut.name, "status"] == "damaged"
    kept = (whole / "result.png").stat().st_mtime_ns
    r = run_app(*args, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"job {cut.name}: result.png is damaged" in r.stdout + r.stderr and "1 done, 1 skipped" in r.stdout
    assert len((cut / "result.png").read_bytes()) > len(png) // 2 and metrics(cut)["status"] == "ok"
    assert (whole / "result.png").stat().st_mtime_ns == kept


@pytest.mark.slow
def test_a_failed_single_run_leaves_its_directory_free_and_a_refused_one_untouched(tmp_path):
    run_dir = tmp_path / "run"
    r = run_app("experiments.transfer", *TINY, "steps=1.5", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert r.returncode == 2 and not run_dir.exists()  # the schema's type: refused before Hydra made the directory
    r = run_app("experiments.transfer", *TINY, "threads=0", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert r.returncode == 2 and not run_dir.exists()  # refused before its job ran: Hydra's files removed too
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")  # a directory with anything else in it keeps all of it
    r = run_app("experiments.transfer", *TINY, "threads=0", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert r.returncode == 2 and metrics(run_dir)["status"] == "failed" and (run_dir / "notes.txt").is_file()
    (run_dir / "notes.txt").unlink()
    r = run_app("experiments.transfer", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)  # the typo fixed
    assert r.returncode == 0, r.stderr[-2000:]
    assert metrics(run_dir)["status"] == "ok" and (run_dir / "result.png").is_file()

    mine = tmp_path / "mine"  # a user's own folder with a result.png: refused, and nothing of ours lands there
    mine.mkdir()
    draw(width=16, height=16, seed=1).save(mine / "result.png")
    r = run_app("experiments.transfer", *TINY, f"hydra.run.dir={mine}", cwd=tmp_path)
    assert r.returncode == 2 and "holds another run's results" in r.stderr
    assert not (mine / "metrics.json").exists()
    (mine / "result.png").unlink()
    (mine / "multirun.yaml").write_text("hydra: {}\n")  # a sweep's directory
    r = run_app("experiments.transfer", *TINY, f"hydra.run.dir={mine}", cwd=tmp_path)
    assert r.returncode == 2 and "holds another run's results" in r.stderr and not (mine / "result.png").exists()


@pytest.mark.slow
def test_an_interpolated_override_names_its_directory_as_the_report_does(tmp_path):
    # the job's directory is named from the text as typed, and so is the report's list of this command's jobs
    sweep = tmp_path / "sweep"
    r = run_app("experiments.transfer", "-m", *TINY, "beta=1e2,1e3", "content=${embedded:grace_hopper}",
                f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 0 and "2 jobs: 2 ok; this run: 2 done" in r.stdout, r.stdout[-2000:] + r.stderr[-2000:]
    report = pd.read_csv(sweep / "report.csv")
    assert set(report["status"]) == {"ok"} and all("content=embedded_grace_hopper~" in j for j in report["job"])
