"""The real command lines: one job, sweeps, reports and figures, in temporary directories (in this process,
tests.conftest.run_app, unless a process of its own is what is tested)."""
import json

import pandas as pd
import pytest
from PIL import Image

from tests.conftest import COMPOSITION_VII, ROOT, TUBINGEN, run_app, run_cli

TINY = ["debug=tiny"]


@pytest.mark.slow  # one of its runs is a fresh interpreter
def test_one_job_is_deterministic_and_records_everything(tmp_path):
    outs = []
    for name, run in (("a", run_cli), ("b", run_app)):  # a fresh interpreter, and this process (the tests' way)
        r = run("experiments.transfer", *TINY, "steps=5", f"hydra.run.dir={tmp_path / name}")
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(tmp_path / name)
    assert (outs[0] / "result.png").read_bytes() == (outs[1] / "result.png").read_bytes()
    m = json.loads((outs[0] / "metrics.json").read_text())
    for key in ("content_loss", "style_loss", "total_loss", "content/conv3_1", "style/conv1_1", "steps",
                "evaluations", "seconds", "seconds_per_iteration", "device", "seed", "width", "height"):
        assert key in m, key
    assert m["status"] == "ok" and m["steps"] == 5 and m["evaluations"] >= 5 and m["versions"]["torch"]
    assert all(m["versions"][k] not in ("", "absent") for k in ("numpy", "pillow", "cpu", "cpu_capability"))
    assert m["config"]["content"].endswith("grace_hopper.jpg") and m["device"] == "cpu"
    assert m["total_loss"] == pytest.approx(m["content_loss"] + 1e3 * m["style_loss"], rel=1e-5)  # beta 1e3
    for key in ("saved/total_loss", "peak_memory_mb", "inputs", "stop_reason"):
        assert key in m, key
    assert m["stop_reason"] is None and m["peak_memory_mb"] > 0 and set(m["inputs"]) >= {"content", "weights"}
    history = pd.read_csv(outs[0] / "history.csv")
    assert list(history["iteration"]) == list(range(6)) and history["total_loss"].iloc[-1] == m["total_loss"]
    assert Image.open(outs[0] / "result.png").size == (m["width"], m["height"])


@pytest.mark.slow
def test_grid_multirun_report_and_figure(tmp_path):
    sweep = tmp_path / "grid"
    r = run_app("experiments.grid", *TINY, f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-2000:]
    jobs = [d for d in sweep.iterdir() if d.is_dir() and (d / "result.png").is_file()]
    assert len(jobs) == 25
    assert all((d / n).is_file() for d in jobs for n in ("metrics.json", "history.csv", "config.yaml"))
    assert (sweep / "beta=1e+03,debug=tiny,style_layers=0-1-2").is_dir()
    report = pd.read_csv(sweep / "report.csv")
    assert len(report) == 25 and set(report["status"]) == {"ok"}
    assert sorted(report["beta"].unique()) == [1e2, 1e3, 1e4, 1e5, 1e6]
    assert set(report["style_layers"]) == {"0", "0,1", "0,1,2", "0,1,2,3", "0,1,2,3,4"}
    for col in ("content_loss", "style_loss", "total_loss", "style/conv1_1", "iterations", "evaluations", "seconds",
                "seconds_per_iteration", "device_used", "result", "content_layers", "alpha"):
        assert col in report, col
    assert pd.read_csv(sweep / "pivot_style_loss.csv", index_col=0).shape == (5, 5)
    assert (sweep / "grid.png").is_file() and (sweep / "grid.pdf").is_file() and (sweep / "losses.png").is_file()
    big = Image.open(sweep / "grid.png").size
    # legible at 100 %: 25 loss curves in a panel per style-layer set (3 x 5), not 25 in one plot of 10 colours
    assert 2000 < Image.open(sweep / "losses.png").size[0] < 2800

    # the report is rebuilt from disk alone, identically
    before = (sweep / "report.csv").read_bytes()
    (sweep / "report.csv").unlink()
    r = run_app("experiments.report", str(sweep))
    assert r.returncode == 0, r.stderr
    assert (sweep / "report.csv").read_bytes() == before

    # a narrowed sweep keeps its own shape: a 2 x 2 figure
    small = tmp_path / "small"
    r = run_app("experiments.grid", *TINY, "beta=1e3,1e5", "style_layers=[0],[0,1]", f"hydra.sweep.dir={small}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert pd.read_csv(small / "pivot_content_loss.csv", index_col=0).shape == (2, 2)
    w, h = Image.open(small / "grid.png").size
    assert w < big[0] * 0.7 and h < big[1] * 0.7


@pytest.mark.slow
def test_failed_job_is_reported_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    # -m after the overrides, as users type it (experiments.app moves it first for Hydra's parser)
    r = run_app("experiments.transfer", *TINY, "style_layers=[0],[99]", f"hydra.sweep.dir={sweep}", "-m")
    assert r.returncode == 1 and "1 job of the sweep failed" in r.stderr, r.stderr[-2000:]
    report = pd.read_csv(sweep / "report.csv", dtype={"style_layers": str}).set_index("style_layers")
    assert report.loc["0", "status"] == "ok"
    assert report.loc["99", "status"] == "failed" and "layer index 99" in report.loc["99", "error"]
    assert (sweep / "strip.png").is_file()
    r = run_app("experiments.report", str(sweep))  # as the sweep's command: not a success
    assert r.returncode == 1 and r.stderr.strip().splitlines() == ["error: 1 job of 2 not ok (above)"], r.stderr
    assert "style_layers=99: failed " in r.stdout, r.stdout


@pytest.mark.slow
def test_a_job_that_fails_while_running_records_what_it_had_done(tmp_path):
    """A NaN at Adam's second step (lr 1e30): the record holds the steps, timings, memory and input hashes, and
    history.csv the rows up to the last finite evaluation; before, only the error, seed, versions and config."""
    sweep = tmp_path / "sweep"
    r = run_app("experiments.transfer", "-m", "size=32", "steps=5", "progress=false", "optimizer=adam",
                "optimizer.lr=0.01,1e30", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 1 and "1 job of the sweep failed" in r.stderr, r.stderr[-2000:]
    ok, nan = (json.loads(next(sweep.glob(f"*lr={lr}*/metrics.json")).read_text()) for lr in ("1e-02", "1e+30"))
    assert ok["status"] == "ok" and nan["status"] == "failed" and "nan at iteration 1" in nan["error"]
    assert nan["inputs"] == ok["inputs"] and nan["device"] == "cpu" and nan["seed"] == 0
    assert nan["steps"] == 2 and nan["evaluations"] == 2  # Adam applied its second update before the check
    assert 0 < nan["seconds"] < nan["total_seconds"] and nan["peak_memory_mb"] > 0
    history = pd.read_csv(next(sweep.glob("*lr=1e+30*/history.csv")))
    assert list(history["iteration"]) == [0] and history["total_loss"].notna().all()
    assert list(history.columns) == list(pd.read_csv(next(sweep.glob("*lr=1e-02*/history.csv"))).columns)


@pytest.mark.slow
def test_a_swept_steps_stays_the_axis_beside_the_iterations_run(tmp_path):
    """report.csv's `steps` column held the iterations run (metrics.json's `steps`): a steps sweep stopped early
    read as one value, and a failed job's null made a grid column "steps = None" of its own (trial F)."""
    sweep = tmp_path / "sweep"
    r = run_app("experiments.style_reconstruction", "-m", "size=32", "progress=false", "steps=2,3",
                "style_layers=[0],[99]", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 1, r.stderr[-2000:]
    df = pd.read_csv(sweep / "report.csv", dtype={"style_layers": str})
    assert sorted(df["steps"]) == [2, 2, 3, 3] and set(df["device_used"].dropna()) == {"cpu"}
    ok = df[df["status"] == "ok"].set_index("steps")
    assert ok.loc[2, "iterations"] == 2 and ok.loc[3, "iterations"] == 3 and df["iterations"].isna().sum() == 2
    table = pd.read_csv(sweep / "pivot_style_loss.csv", index_col=0)
    assert table.index.name == "style_layers \\ steps" and table.shape == (2, 2)


@pytest.mark.slow
def test_a_sweep_over_a_key_without_effect_is_warned_of_once(tmp_path):
    """Seeds from the content start: the jobs give one image (the warning's claim), and the sweep says so once."""
    sweep = tmp_path / "sweep"
    r = run_app("experiments.transfer", "-m", *TINY, "init=content", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout + r.stderr
    assert out.count("has no effect here") == 1 and "seed=0 has no effect here" in out, out[-2000:]
    images = {d.name: (d / "result.png").read_bytes() for d in sweep.glob("*/") if (d / "result.png").is_file()}
    assert len(images) == 2 and len(set(images.values())) == 1


@pytest.mark.slow
def test_figures_command_and_reconstruction_strip(tmp_path):
    sweep = tmp_path / "content"
    r = run_app("experiments.content_reconstruction", *TINY, "content_layers=[0],[3]", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-2000:]
    (sweep / "strip.png").unlink()
    r = run_app("experiments.figures", str(sweep))
    assert r.returncode == 0 and (sweep / "strip.png").is_file()
    assert run_app("experiments.report", str(tmp_path / "nothing")).returncode == 2


@pytest.mark.slow
@pytest.mark.paper_images  # the calibration of SEED_STYLE_SCALE was made on tubingen + composition_vii
def test_seed_grid_runs_from_content_to_style(tmp_path):
    """Calibration: along each row of the seed grid, content loss rises and style loss falls with beta. Batched
    (the basic launcher's grid is tested above): its rounding differs from solo runs, not the ranks. All five rows
    gave rho 1.0 and -1.0 at 96 px and 60 iterations (61 s here), and at 64 px and 30 iterations (23 s); the
    test runs the first, middle and last row and column (9 jobs: 17 s on a 2-core AVX2 EPYC, 30 s for 25)."""
    sweep = tmp_path / "cal"
    r = run_app("experiments.grid", "size=64", "steps=30", "progress=false", f"content={TUBINGEN}",
                f"style={COMPOSITION_VII}", "beta=1e2,1e4,1e6", "style_layers=[0],[0,1,2],[0,1,2,3,4]",
                "hydra/launcher=batched", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-2000:]
    report = pd.read_csv(sweep / "report.csv")
    assert len(report) == 9 and set(report["status"]) == {"ok"}
    for layers, row in report.groupby("style_layers"):
        rho_content = row["beta"].rank().corr(row["content_loss"].rank())
        rho_style = row["beta"].rank().corr(row["style_loss"].rank())
        assert rho_content >= 0.8 and rho_style <= -0.8, (layers, rho_content, rho_style)


@pytest.mark.slow
def test_killed_sweep_resumes_without_touching_finished_jobs(tmp_path):
    """SIGKILL a sweep mid-way, re-run it into the same directory: finished jobs are kept as they were."""
    import os
    import signal
    import subprocess
    import sys
    import time

    sweep = tmp_path / "sweep"
    grid = ["size=48", "steps=30", "progress=false", "beta=1e2,1e4", "style_layers=[0],[0,1],[0,1,2]"]
    args = [sys.executable, "-m", "experiments.grid", *grid, f"hydra.sweep.dir={sweep}"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while len(list(sweep.glob("*/metrics.json"))) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    outputs = ("result.png", "metrics.json", "history.csv", "config.yaml")  # Hydra's own <job>.log is appended
    done = {p.parent: {name: (p.parent / name).stat().st_mtime_ns for name in outputs}
            for p in sweep.glob("*/metrics.json")}
    assert 2 <= len(done) < 6
    assert all(json.loads((d / "metrics.json").read_text())["status"] == "ok" for d in done)

    r = run_app("experiments.grid", *grid, f"hydra.sweep.dir={sweep}")
    assert r.returncode == 0, r.stderr[-2000:]
    report = pd.read_csv(sweep / "report.csv")
    assert len(report) == 6 and set(report["status"]) == {"ok"}
    for d, files in done.items():
        assert {name: (d / name).stat().st_mtime_ns for name in files} == files, d.name
    assert r.stdout.count("complete, skipped") + r.stderr.count("complete, skipped") == len(done)


@pytest.mark.slow
def test_style_loss_sweep_gives_five_images_a_figure_and_a_csv(tmp_path):
    kinds = ["gram", "mmd_linear", "mmd_poly", "mmd_gauss", "bn_stats"]
    r = run_app("experiments.transfer", "-m", f"style_loss={','.join(kinds)}", "size=40", "steps=10",
                "progress=false", f"hydra.sweep.dir={tmp_path}")
    assert r.returncode == 0, r.stderr[-2000:]
    report = pd.read_csv(tmp_path / "report.csv")
    assert sorted(report["style_loss_fn"]) == sorted(kinds) and set(report["status"]) == {"ok"}
    assert report["gram_style_loss"].notna().all() and report["seconds_per_iteration"].gt(0).all()
    others = report.set_index("style_loss_fn").drop(index="gram")  # the yardstick is the Gram loss, not their own
    assert (others["gram_style_loss"] > 0).all() and (others["gram_style_loss"] != others["style_loss"]).all()
    images = [(tmp_path / p).read_bytes() for p in report["result"]]
    assert len(set(images)) == 5
    assert (tmp_path / "strip.png").is_file() and (tmp_path / "losses.png").is_file()
