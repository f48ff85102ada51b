"""Bad input through the real command line: one `error:` line naming the key and the value typed, exit 2, no
traceback, no result.png; a sweep with a bad job; Ctrl-C and SIGTERM; exit statuses (experiments/app.py)."""
from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from nst.assets.painting import draw
from tests.conftest import run_cli

TINY = ["size=32", "steps=2", "progress=false"]


def as_background_job() -> None:
    """A command as a non-interactive shell's background job starts it (`nohup cmd &`): SIGINT ignored, which its
    job processes would inherit (the app restores it; before, they ignored the stop and ran on)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (1-bit grey) with almost no pixel data: a decompression bomb."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


def jobs(sweep: Path, key: str, value: float) -> list[Path]:
    """The job directories of a sweep that Hydra started with key=value (whatever the value's spelling)."""
    import yaml

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


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, str]:
    """Bad files a user may point a key at."""
    import torch

    d = tmp_path_factory.mktemp("bad_files")
    (d / "a_directory").mkdir()
    (d / "read_only").mkdir(mode=0o555)
    (d / "a_file").write_text("x")
    (d / "notes.txt").write_text("these are not weights\n")
    (d / "garbage.jpg").write_bytes(b"not an image at all")
    torch.save({"features.0.weight": torch.zeros(3, 3, 3, 3)}, d / "wrong_shapes.pth")
    png_header_only(d / "bomb.png", 20000, 20000)
    Image.new("RGB", (8, 6), (200, 30, 30)).save(d / "tiny.png")
    names = ("a_directory", "read_only", "a_file", "notes.txt", "garbage.jpg", "wrong_shapes.pth", "bomb.png",
             "tiny.png")
    return {name.partition(".")[0]: str(d / name) for name in names}  # {"tiny": ".../tiny.png", ...}


# (id, overrides, what the one error line must contain); {name} is a file from `files`
CASES = [
    ("ratio_zero", ["ratio=0"], ["ratio 0", "> 0"]),
    ("ratio_negative", ["ratio=-1"], ["ratio -1"]),
    ("lr_zero", ["optimizer.lr=0"], ["optimizer.lr 0", "> 0"]),
    ("line_search", ["optimizer.line_search=foo"], ["optimizer.line_search 'foo'", "strong_wolfe"]),
    ("threads_zero", ["threads=0"], ["threads 0", ">= 1"]),
    ("seed_text", ["seed=abc"], ["seed 'abc'", "integer"]),
    ("blend_all_zero", ["style_blend=[0,0]"], ["style_blend [0,0]", "all 0"]),
    ("nothing_to_optimise", ["alpha=0", "beta=0"], ["alpha 0", "beta 0", "nothing to optimise"]),
    ("multiscale_shrinks", ["multiscale=[[64,2],[32,2]]"], ["multiscale [[64,2],[32,2]]", "must increase"]),
    ("noise_std_negative", ["noise_std=-1"], ["noise_std -1", ">= 0"]),
    ("size_huge", ["size=100000"], ["size 100000", "max_pixels"]),
    ("arch_unknown", ["arch=foo"], ["arch 'foo'", "architecture"]),
    ("content_empty", ["content="], ["content ''", "empty"]),
    ("content_directory", ["content={a_directory}"], ["content '{a_directory}'", "is a directory"]),
    ("content_not_image", ["content={garbage}"], ["content '{garbage}'", "not an image"]),
    ("content_bomb", ["content={bomb}"], ["content '{bomb}'", "decompression-bomb limit of 178,956,970"]),
    ("weights_text", ["weights={notes}"], ["weights '{notes}'", "not a state_dict file"]),
    ("weights_shapes", ["weights={wrong_shapes}"], ["weights '{wrong_shapes}'", "do not fit vgg19",
                                                        "features.0.weight"]),
    ("unknown_key", ["sizee=128"], ["sizee=128", "unknown key", "did you mean size?"]),
    ("unknown_group_option", ["optimizer=foo"], ["optimizer=foo", "adam, lbfgs"]),
    ("run_dir_under_a_file", ["hydra.run.dir={a_file}/run"], ["hydra.run.dir={a_file}/run", "Not a directory"]),
    ("run_dir_read_only", ["hydra.run.dir={read_only}/run"], ["hydra.run.dir={read_only}/run", "Permission denied"]),
    ("sweep_dir_under_a_file", ["-m", "hydra.sweep.dir={a_file}/sweep"], ["hydra.sweep.dir={a_file}/sweep",
                                                                          "Not a directory"]),
    # beyond the tester's list: what a careless user types
    ("steps_negative", ["steps=-1"], ["steps -1", "integer >= 0"]),
    ("steps_fraction", ["steps=1.5"], ["steps 1.5", "integer"]),
    ("size_zero", ["size=0"], ["size 0", ">= 1"]),
    ("content_layer_index", ["content_layers=[99]"], ["content_layers [99]", "layer index 99 is out of range"]),
    ("style_layer_name", ["style_layers=[relu9_9]"], ["style_layers [relu9_9]", "unknown layer 'relu9_9'"]),
    ("precision", ["precision=fp64"], ["precision 'fp64'", "fp32"]),
    ("pooling", ["pooling=min"], ["pooling 'min'", "max | avg"]),
    ("init", ["init=foo"], ["init 'foo'", "noise"]),
    ("preserve_color", ["preserve_color=yes"], ["preserve_color 'yes'", "luminance"]),
    ("style_loss", ["style_loss=foo"], ["style_loss 'foo'", "gram"]),
    ("loss", ["loss=foo"], ["loss 'foo'", "seed"]),
    ("device_cuda", ["device=cuda"], ["device 'cuda'", "CUDA is not available"]),
    ("batch_size_zero", ["-m", "hydra/launcher=batched", "hydra.launcher.batch_size=0"],
     ["hydra.launcher.batch_size 0", ">= 1"]),
    ("threads_text_parallel", ["-m", "hydra/launcher=parallel", "threads=abc"], ["threads 'abc'", "integer >= 1"]),
    ("comma_list_without_m", ["beta=1e2,1e4"], ["beta=1e2,1e4", "needs -m", "beta=[1e2,1e4]"]),
    ("memory_mb_negative", ["-m", "hydra/launcher=batched", "hydra.launcher.memory_mb=-5"],
     ["hydra.launcher.memory_mb -5", "> 0"]),
]


@pytest.mark.slow  # one subprocess each (~4 s): 37 cases
@pytest.mark.parametrize("overrides, expected", [pytest.param(o, e, id=i) for i, o, e in CASES])
def test_bad_input_is_one_line_and_exit_2(tmp_path, files, overrides, expected):
    if "device=cuda" in overrides:
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    if any("{read_only}" in o for o in overrides) and os.geteuid() == 0:
        pytest.skip("root writes into a read-only directory")
    overrides = [o.format(**files) for o in overrides]
    run_dir = tmp_path / "run"
    if not any(o.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for o in overrides):
        overrides.append(f"hydra.run.dir={run_dir}")
    flags = [o for o in overrides if o.startswith("-")]  # Hydra's parser wants -m before the overrides
    r = run_cli("experiments.transfer", *flags, *TINY, *[o for o in overrides if o not in flags], cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr[-2000:]
    for text in expected:
        assert text.format(**files) in errors[0], (text, errors[0])
    assert not list(tmp_path.rglob("result.png"))


def test_a_preset_under_another_entry_is_refused_before_any_job(tmp_path):
    # composed under grid.yaml, Fig. 3's preset would get the grid's size, steps and layers, and its ratio axis
    # beside the grid's beta axis: 100 jobs, each beta ignored
    r = run_cli("experiments.grid", "experiment=paper_fig3", *TINY, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == ["error: experiment=paper_fig3: a preset is a sweep of its own, which "
                                             "experiments.grid's settings would change; run python -m "
                                             "experiments.transfer experiment=paper_fig3"]
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
def test_a_sweep_whose_every_job_is_bad_is_refused_before_it_starts(tmp_path):
    # a value all jobs share (beside the swept keys) that none can run with: one line, exit 2, no sweep directory
    sweep = tmp_path / "sweep"
    r = run_cli("experiments.transfer", "-m", *TINY, "beta=1e2,1e4", "ratio=1e-3", "hydra/launcher=batched",
                f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "has no effect while ratio 1e-3 is set" in errors[0], r.stderr[-2000:]
    assert not sweep.exists()


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
    (["optimizer=lbfgs,sgd"], "optimizer=lbfgs,sgd: no such option in conf/optimizer/"),
    (["beta=glob(*)"], "beta=glob(*): expands to no jobs"),
    (["hydra/launcher=parallel", "hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs 0 must be a nonzero integer"),
    (["hydra/launcher=local", "hydra.launcher.timeout_min=0"], "hydra.launcher.timeout_min 0 must be a finite"),
    ([f"content=/data/{'x' * 240}.png,/data/y.png"], "bytes, over the 255 a file name may have"),
], ids=["threads", "max_pixels", "twice", "spellings", "subdir", "batch_size", "memory_mb", "launcher_key",
        "swept_key_typo", "swept_group_option", "no_jobs", "joblib_n_jobs", "submitit_timeout", "long_name"])
def test_a_sweep_that_would_lose_jobs_or_its_record_is_refused_untouched(tmp_path, overrides, expected):
    """Jobs that would share one directory (the second skipped as complete, or overwriting the first), and bad
    launcher settings: refused before the sweeper writes multirun.yaml (it overwrote an existing sweep's)."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("an earlier sweep's record\n")
    beta = [] if any(o.startswith("beta=") for o in overrides) else ["beta=1e2"]
    r = run_cli("experiments.transfer", "-m", "size=24", "steps=2", *beta, *overrides,
                f"hydra.sweep.dir={sweep}", cwd=tmp_path)
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
    r = run_cli("experiments.transfer", "-m", "size=24", "steps=2", "beta=1e2,1e3", f"hydra.sweep.dir={sweep}")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.startswith("error: ") and "beta=1e+03,size=24,steps=2 is a file, where job" in r.stderr
    assert [p.name for p in sweep.iterdir()] == ["beta=1e+03,size=24,steps=2"]


def test_a_quoted_home_path_is_expanded(tmp_path, monkeypatch):
    """content='~/c.png' (quoted, as Hydra's parser needs for some paths) reached the job unexpanded: "does not
    exist"; bash expands ~ only in an unquoted content=~/c.png."""
    monkeypatch.setenv("HOME", str(tmp_path))
    draw(width=40, height=32, seed=1).save(tmp_path / "c.png")
    r = run_cli("experiments.transfer", *TINY, "content='~/c.png'", f"hydra.run.dir={tmp_path / 'out'}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["config"]["content"] == str(tmp_path / "c.png") and m["inputs"]["content"]
    assert m["versions"]["nst_commit"]


def test_the_full_trace_is_there_when_asked_for(tmp_path):
    env = dict(os.environ, HYDRA_FULL_ERROR="1")
    r = subprocess.run([sys.executable, "-m", "experiments.transfer", *TINY, "sizee=128",
                        f"hydra.run.dir={tmp_path}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 1 and "Traceback" in r.stderr and "sizee" in r.stderr


@pytest.mark.slow
def test_sweep_with_a_bad_job_runs_the_good_one_reports_both_and_exits_1(tmp_path):
    sweep = tmp_path / "sweep"
    # the bad job first: the check before the sweep goes on to the good one, and the sweep runs
    r = run_cli("experiments.transfer", "-m", *TINY, "ratio=0,1e-4", f"hydra.sweep.dir={sweep}", cwd=tmp_path)
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


@pytest.mark.slow
def test_sigterm_to_the_main_process_alone_stops_the_local_launchers_jobs(tmp_path):
    """`kill PID` (a scheduler's SIGTERM) reached only the main process: its submitit jobs ran on, re-parented to
    init, and later wrote ok results under a report that called them missing; started as `nohup cmd &` starts it,
    they ignored the SIGINT that stops them."""
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen([sys.executable, "-m", "experiments.transfer", "-m", "size=32", "progress=false",
                             "steps=100000", "threads=1", "hydra/launcher=local", f"hydra.sweep.dir={sweep}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=as_background_job)
    deadline = time.time() + 120
    while not list(sweep.glob("*/.hydra")) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(8)  # the job process imports torch, then optimises
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
    r = run_cli("experiments.transfer", *args, cwd=tmp_path)
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
    time.sleep(6)  # into the batch (set-up at 32 px takes under a second)
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

@pytest.fixture(scope="module")
def compose():
    """conf/config.yaml composed with overrides, as a job sees it (plain dict, no hydra key)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    import experiments  # noqa: F401  (resolvers)

    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="conf", version_base="1.3"):
        yield lambda *overrides: OmegaConf.to_container(hydra_compose("config", overrides=list(overrides)),
                                                        resolve=True)
    GlobalHydra.instance().clear()


def check(compose, *overrides: str):
    from experiments.app import typed_overrides
    from experiments.validate import validate

    return validate(compose(*TINY, *overrides), typed_overrides(overrides))


def test_every_config_key_is_checked(compose):
    from experiments.validate import CHECKED, OPTIMIZER_KEYS

    assert set(compose()) == set(CHECKED)
    for name in ("lbfgs", "adam"):
        assert set(compose(f"optimizer={name}")["optimizer"]) == set(OPTIMIZER_KEYS)
    check(compose)  # the defaults pass
    check(compose, "optimizer=adam")


@pytest.mark.parametrize("overrides, expected", [
    (["init=/nope/start.png"], "init '/nope/start.png' does not exist"),
    (["style=[/nope/a.jpg]"], "style [/nope/a.jpg] does not exist"),
    (["style=[{tiny},/nope/b.jpg]"], "style '/nope/b.jpg' does not exist"),
    (["style=[]"], "style [] is empty"),
    (["device=gpu"], "device 'gpu' is not one of auto | cpu | cuda | cuda:N"),
    (["style_scale=100"], "style_scale 100 must be a finite number > 0 and <= 16"),
    (["optimizer=adam", "optimizer.lr=-1"], "optimizer.lr -1 must be a finite number > 0"),
    (["optimizer.history_size=0"], "optimizer.history_size 0 must be an integer >= 1"),
    (["tap=pre"], "tap 'pre' is not one of"),
    (["weights=orignal"], "did you mean original?"),
    (["arch=resnet18"], "weights 'original' exist for vgg19 only"),
    (["arch=resnet18", "weights=random", "content_layers=[relu4_2]"], "content_layers [relu4_2] is not valid"),
    (["max_pixels=0"], "max_pixels 0 must be a finite number >= 1"),
    (["max_pixels=1e2"], "over max_pixels 100; use a smaller size"),
    (["noise_std=1e9"], "noise_std 1e9 must be a finite number >= 0 and <= 10"),
    (["size=4096"], "size 4096 gives a 3495x4096 image"),
    (["size=8192", "max_pixels=67108864"], "size 8192 gives a 6991x8192 image that needs an estimated"),
    (["multiscale=[[64,2],[4096,2]]"], "multiscale [[64,2],[4096,2]] gives"),
    (["style_scale=16", "size=256"], "style_scale 16 gives a 4096x"),
    (["style_layer_weights=[1,2]"], "style_layer_weights [1,2] has 2 weights for 5 style layers"),
    (["style_layers=[0,1,0]"], "style_layers [0,1,0] names 0 twice"),
    (["tap=conv", "style_layers=[conv1_1,0]"], "style_layers [conv1_1,0] names conv1_1 twice (conv1_1 and 0)"),
    (["content_layers=[]", "style_layers=[]"], "nothing to optimise"),
    (["alpha=0", "ratio=1e-3"], "nothing to optimise"),
    (["beta=1e4", "ratio=1e-3"], "beta 1e4 has no effect while ratio 1e-3 is set"),
    (["painting=shipwreck", "beta=1e4"], "beta 1e4 has no effect while ratio 0.001 is set"),
    (["content_layers=[]", "beta=0"], "content_layers [] and beta 0"),
    (["init=style", "style_layers=[]"], "init 'style' needs style layers"),
    (["progress=yes"], "progress 'yes' must be true or false"),
    (["tv_weight=-1"], "tv_weight -1 must be a finite number >= 0"),
    (["alpha=nan"], "alpha nan must be a finite number >= 0"),
    (["beta=abc"], "beta 'abc' must be a finite number >= 0"),
    (["seed=1.5"], "seed 1.5 must be an integer"),
    (["optimizer.name=adam"], "optimizer.name 'adam' switches the optimizer without its settings; give optimizer=adam"),
    (["seed=99999999999999999999"], "seed 99999999999999999999 is out of torch.manual_seed's range"),
    (["seed=-1"], "seed -1 must be >= 0: every run is seeded (no random seed)"),  # torch wraps it to 2**64 - 1
    (["arch=vit_b_16", "weights=random"], "arch 'vit_b_16' is a vision transformer"),
    (["arch=efficientnet_lite0"], "weights 'original' is not one of pretrained | random (arch=efficientnet_lite0); "
                                  "backbone=efficientnet_lite0 sets arch, weights and its layers"),
    (["+sizee=1"], "sizee 1 is not a config key; did you mean size?"),
    (["multiscale=[[32,2],[64]]"], "multiscale [[32,2],[64]] holds [64]"),
    (["style_blend=[1,2]"], "style_blend [1,2] has 2 weights for 1 style image"),
    (["arch=resnet18", "weights=random", "content_layers=[layer1.0.relu]"],
     "names 'layer1.0.relu', a module the network calls 2 times in one pass"),
    (["arch=resnet18", "weights=random", "content_layers=[fc]"], "names 'fc', whose output is 2-D, not a feature"),
    (["precision=BF16"], "did you mean bf16?"),
    (["painting=[starry_night,the_scream]"], "painting=[starry_night,the_scream]: one painting per job; sweep them "
                                             "with -m painting=starry_night,the_scream"),
    (["painting=shipwreck", "style={tiny}"], "would replace painting=shipwreck's image"),
    (["size=3", "content_layers=[conv1_1]"], "size 3 gives a 3x3 image, too small for style_layers layer 4 (conv3_1)"),
    (["style_scale=0.05", "size=64"], "style_scale 0.05 gives a 3x2 style image, too small for style_layers layer 4"),
    (["multiscale=[[4,2],[64,2]]"], "multiscale [[4,2],[64,2]] gives a 3x4 image, too small for content_layers"),
    (["arch=alexnet", "weights=random", "size=8"], "size 8 gives a 7x8 image, too small for content_layers layer 4"),
])
def test_careless_values_are_refused_in_one_line(compose, files, overrides, expected):
    from experiments.validate import ConfigError

    with pytest.raises(ConfigError) as e:
        check(compose, *(o.format(**files) for o in overrides))
    assert expected in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides, key", [
    (["init=content", "seed=3"], "seed"),
    (["init=content", "noise_std=0.5"], "noise_std"),
    (["optimizer=adam", "optimizer.history_size=5"], "optimizer.history_size"),
    (["optimizer=adam", "optimizer.line_search=null"], "optimizer.line_search"),
    (["precision=tf32", "device=cpu"], "precision"),
    (["backbone=efficientnet_lite0", "pooling=avg"], "pooling"),
    (["multiscale=[[24,2],[32,2]]", "size=48"], "size"),  # the report showed 48 for a 32 px result
    (["style_layers=[]", "beta=1e5"], "beta"),  # a content reconstruction
    (["content_layers=[]", "alpha=5"], "alpha"),  # a style reconstruction (with a ratio, alpha sets beta)
    (["seed=3", "noise_std=0.5", "optimizer.history_size=5", "precision=bf16", "pooling=avg"], None)])
def test_a_typed_key_without_effect_is_warned_of(compose, caplog, monkeypatch, overrides, key):
    """A sweep over a key the job does not use (seeds of a content start, Adam's history) gave identical cells."""
    import experiments.validate as validate

    monkeypatch.setattr(validate, "_WARNED", set())
    with caplog.at_level("WARNING", logger="nst"):
        check(compose, *overrides)
    warned = [r.getMessage() for r in caplog.records if "has no effect" in r.getMessage()]
    assert len(warned) == (key is not None) and all(w.startswith(f"{key}=") for w in warned), warned


def test_a_layer_scan_of_a_vision_transformer_is_refused_as_validation_refuses_it():
    """layer_scan's sweep (${conv_indices:...}) builds the network before any job's validation: it said
    "is not a torchvision architecture" of vit_b_16, which is one (trial F)."""
    from experiments.resolvers import conv_indices

    with pytest.raises(ValueError, match=r"arch 'vit_b_16' is a vision transformer \(a fixed 224 px input"):
        conv_indices("vit_b_16")


def test_scalar_layers_and_a_tiny_image_upscaled_are_accepted_with_a_warning(compose, files, caplog):
    check(compose, "content_layers=4", "style_layer_weights=null")
    with caplog.at_level("WARNING", logger="nst"):
        check(compose, f"content={files['tiny']}")
    warning = [r.getMessage() for r in caplog.records if "upscaled" in r.getMessage()]
    assert len(warning) == 1 and files["tiny"] in warning[0] and "8x6 px" in warning[0] \
        and "32x24" in warning[0], warning


def test_weights_file_of_the_right_shapes_passes(compose, tmp_path):
    import torch
    import torchvision

    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    check(compose, "arch=resnet18", f"weights={path}", "content_layers=[3]", "style_layers=[0,1]")
    state = torchvision.models.resnet18().state_dict()
    # a head fine-tuned to 5 classes, or none (a self-supervised checkpoint): never run, so both pass
    state["fc.weight"], state["fc.bias"] = torch.zeros(5, 512), torch.zeros(5)
    torch.save(state, path)
    check(compose, "arch=resnet18", f"weights={path}", "content_layers=[3]")
    torch.save({k: v for k, v in state.items() if not k.startswith("fc.")}, path)
    check(compose, "arch=resnet18", f"weights={path}", "content_layers=[3]")
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, path)
    from experiments.validate import ConfigError

    with pytest.raises(ConfigError, match=r"layer1.0.conv1.weight: \[64, 64, 1, 1\] in the file, \[64, 64, 3, 3\]"):
        check(compose, "arch=resnet18", f"weights={path}", "content_layers=[3]")


@pytest.mark.slow
def test_a_job_that_fails_beside_its_kept_result_fails_the_command_under_any_launcher(tmp_path):
    """An input made unreadable after the sweep finished: the job fails and its result is kept. Under parallel
    (and local) the job ran in another process, and the command exited 0 with every job "skipped"."""
    images = [tmp_path / "c3.png", tmp_path / "c4.png"]
    for k, image in enumerate(images):
        draw(width=48, height=36, seed=k).save(image)
    sweep = tmp_path / "sweep"
    args = ["experiments.transfer", "-m", *TINY, f"content={images[0]},{images[1]}", f"hydra.sweep.dir={sweep}"]
    assert run_cli(*args, cwd=tmp_path).returncode == 0
    good = images[0].read_bytes()
    images[0].write_text("garbage")
    parallel = ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "threads=1"]  # n_jobs=1 runs in this process
    r = run_cli(*args, *parallel, cwd=tmp_path)
    assert r.returncode == 1 and "1 job of the sweep failed" in r.stderr, r.stdout[-1500:] + r.stderr[-1500:]
    (kept,) = [d for d in sweep.iterdir() if (d / "latest_run_failed.txt").is_file()]
    assert "is not an image" in (kept / "latest_run_failed.txt").read_text() and (kept / "result.png").is_file()
    images[0].write_bytes(good)  # mended: the kept result is complete again, and the mark goes
    r = run_cli(*args, *parallel, cwd=tmp_path)
    assert r.returncode == 0 and "2 skipped" in r.stdout and not (kept / "latest_run_failed.txt").exists()


@pytest.mark.slow
def test_a_failure_never_overwrites_a_complete_job(tmp_path):
    """Re-running into a directory with a complete job, with a bad value: the files stay as they were."""
    run_dir = tmp_path / "run"
    r = run_cli("experiments.transfer", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.suffix != ".log"}
    r = run_cli("experiments.transfer", *TINY, "threads=0", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert r.returncode == 2 and "threads 0" in r.stderr
    assert {name: (run_dir / name).read_bytes() for name in before} == before
