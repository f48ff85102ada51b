"""Bad input on the command line (experiments/errors.py and the checks it reports): one `error:` line naming the key
and the value typed, exit 2, no traceback, no result.png. Run in this process (tests.conftest.run_app); a few cases
also through a fresh interpreter, as a user runs them."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nst.assets.painting import draw
from tests.conftest import run_app, run_cli

TINY = ["debug=tiny"]

# (id, overrides, what the one error line must contain); {name} is a file from the `files` fixture
CASES = [
    ("ratio_zero", ["ratio=0"], ["ratio 0", "> 0"]),
    ("method_typo", ["method=wtc"], ["method 'wtc'", "did you mean wct?"]),
    ("wct_alpha_over_1", ["method=wct", "wct_alpha=1.5"], ["wct_alpha 1.5", "in [0, 1]"]),
    ("wct_alpha_per_level", ["method=wct", "wct_alpha=[0.5,1]"], ["wct_alpha [0.5,1]", "wct_levels null"]),
    ("wct_levels_range", ["method=wct", "wct_levels=[0,1]"], ["wct_levels [0,1]", "1..5"]),
    ("decoder_missing", ["method=wct", "wct_levels=[5]"], ["wct_levels [5]", "no decoder_relu5_1.pt",
                                                              "experiments.train_decoder level=5"]),
    ("decoders_not_a_folder", ["method=wct", "decoders=/nonexistent"], ["decoders '/nonexistent'", "directory"]),
    ("wct_two_styles", ["method=wct_opt", "style=[{tiny},{tiny}]"], ["style", "one image for method 'wct_opt'"]),
    ("ratio_negative", ["ratio=-1"], ["ratio -1"]),
    ("lr_zero", ["optimizer.lr=0"], ["optimizer.lr 0", "> 0"]),
    ("line_search", ["optimizer.line_search=foo"], ["optimizer.line_search 'foo'", "strong_wolfe"]),
    ("threads_zero", ["threads=0"], ["threads 0", ">= 1"]),
    ("seed_text", ["seed=abc"], ["seed 'abc'", "integer"]),
    ("seed_fraction", ["seed=1.5"], ["seed 1.5 must be an integer"]),
    ("beta_text", ["beta=abc"], ["beta 'abc' must be a finite number >= 0"]),
    ("progress_text", ["progress=maybe"], ["progress 'maybe' must be true or false"]),
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
    ("content_missing", ["content=/nope/missing.jpg"], ["content '/nope/missing.jpg' does not exist"]),
    # the header reads, the pixels do not: it said "image '...'" where every other message names the key
    ("content_truncated", ["content={truncated}"], ["content '{truncated}' is not readable", "image file is truncated"]),
    ("style_truncated", ["style={truncated}"], ["style '{truncated}' is not readable", "truncated"]),
    ("content_link_loop", ["content={loop}"], ["content '{loop}' is a loop of symbolic links"]),  # not "no such file"
    ("content_dangling_link", ["content={dangling}"], ["content '{dangling}' is a link to", "gone.jpg', which does not"]),
    # file names Hydra's grammar cannot take unquoted: how to quote them, as a shell takes it
    ("name_with_equals", ["content={dir}/a=b.png"], ["needs Hydra's quotes", "\"content='{dir}/a=b.png'\""]),
    ("name_with_quote", ["content={dir}/l'eau.png"], ["needs Hydra's quotes", "\"content=\\\"{dir}/l'eau.png\\\"\""]),
    ("name_with_accent", ["content={dir}/café.png"], ["needs Hydra's quotes", "\"content='{dir}/café.png'\""]),
    ("name_with_comma", ["content={dir}/x,y.png"], ["a file name with a comma needs Hydra's quotes",
                                                    "\"content='{dir}/x,y.png'\""]),
    ("weights_text", ["weights={notes}"], ["weights '{notes}'", "not a state_dict file"]),
    ("weights_shapes", ["weights={wrong_shapes}"], ["weights '{wrong_shapes}'", "do not fit vgg19",
                                                        "features.0.weight"]),
    ("unknown_key", ["sizee=128"], ["sizee=128", "unknown key", "did you mean size?"]),
    ("unknown_key_added", ["+sizee=1"], ["sizee 1 is not a config key; did you mean size?"]),
    ("unknown_optimizer_key", ["optimizer.foo=1"], ["optimizer.foo=1: unknown key optimizer.foo"]),
    ("unknown_group_option", ["optimizer=foo"], ["optimizer=foo", "adam, lbfgs"]),
    ("run_dir_under_a_file", ["hydra.run.dir={a_file}/run"], ["hydra.run.dir={a_file}/run", "Not a directory"]),
    ("run_dir_read_only", ["hydra.run.dir={read_only}/run"], ["hydra.run.dir={read_only}/run", "Permission denied"]),
    ("sweep_dir_under_a_file", ["-m", "hydra.sweep.dir={a_file}/sweep"], ["hydra.sweep.dir={a_file}/sweep",
                                                                          "Not a directory"]),
    ("steps_negative", ["steps=-1"], ["steps -1", "integer >= 0"]),
    ("steps_fraction", ["steps=1.5"], ["steps 1.5", "integer"]),
    ("size_zero", ["size=0"], ["size 0", ">= 1"]),
    ("size_too_small", ["size=3"], ["size 3 gives a 3x3 image, too small for content_layers layer 4 (conv3_1)"]),
    ("content_layer_index", ["content_layers=[99]"], ["content_layers [99]", "layer index 99 is out of range"]),
    ("style_layer_index", ["style_layers=[0,16]"], ["layer index 16 is out of range; valid: conv indices 0..15"]),
    ("style_layer_name", ["style_layers=[relu9_9]"], ["style_layers [relu9_9]", "unknown layer 'relu9_9'"]),
    ("precision", ["precision=fp64"], ["precision 'fp64'", "fp32"]),
    ("pooling", ["pooling=min"], ["pooling 'min'", "max | avg"]),
    ("init", ["init=foo"], ["init 'foo'", "noise"]),
    ("preserve_color", ["preserve_color=yes"], ["preserve_color 'yes'", "luminance"]),
    ("style_loss", ["style_loss=foo"], ["style_loss 'foo'", "gram"]),
    ("loss", ["loss=foo"], ["loss 'foo'", "seed"]),
    ("beta_negative", ["beta=-5"], ["beta -5 must be a finite number >= 0"]),
    ("alpha_nan", ["alpha=nan"], ["alpha nan must be a finite number >= 0"]),
    ("device_cuda", ["device=cuda"], ["device 'cuda'", "CUDA is not available"]),
    ("device_cuda_7", ["device=cuda:7"], ["CUDA is not available"]),
    ("painting_list", ["painting=[starry_night,the_scream]"], ["painting=[starry_night,the_scream]: one painting per "
                                                               "job; sweep them with -m painting=starry_night,"
                                                               "the_scream"]),
    ("painting_and_style", ["painting=shipwreck", "style={tiny}"], ["would replace painting=shipwreck's image"]),
    ("painting_null", ["painting=null"], ["painting=null: a config group takes one of its options, not null; leave "
                                          "painting out"]),
    ("preset_with_plus", ["+experiment=paper_fig2"], ["give experiment=paper_fig2 (without the +)"]),
    ("launcher_key", ["hydra.launcher.batch_size=4"], ["not a setting of this launcher (SequentialLauncherConf); choose "
                                                       "the launcher"]),
    ("home_in_a_list", ["style=[a.png,~/b.png]"], ["a path starting with ~ needs Hydra's quotes: "
                                                   "\"style=[a.png,'~/b.png']\""]),
    ("home_in_a_sweep", ["style=[a.png,~/b.png],[~/c.png]"], ["needs Hydra's quotes: "
                                                              "\"style=[a.png,'~/b.png'],['~/c.png']\""]),
    ("batch_size_zero", ["-m", "hydra/launcher=batched", "hydra.launcher.batch_size=0"],
     ["hydra.launcher.batch_size 0", ">= 1"]),
    ("threads_text_parallel", ["-m", "hydra/launcher=parallel", "threads=abc"], ["threads 'abc'", "integer >= 1"]),
    ("comma_list_without_m", ["beta=1e2,1e4"], ["beta=1e2,1e4", "needs -m", "beta=[1e2,1e4]"]),
    ("memory_mb_negative", ["-m", "hydra/launcher=batched", "hydra.launcher.memory_mb=-5"],
     ["hydra.launcher.memory_mb -5", "> 0"]),
]
IN_A_FRESH_INTERPRETER = ("unknown_key", "content_bomb", "seed_text", "run_dir_under_a_file")


def refused(tmp_path, files, overrides, expected, run) -> None:
    """Run the command with the overrides; one error line with every expected text, exit 2, nothing written."""
    if any(o.startswith("device=cuda") for o in overrides):
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    if any("{read_only}" in o for o in overrides) and os.geteuid() == 0:
        pytest.skip("root writes into a read-only directory")
    overrides = [o.format(**files) for o in overrides]
    if not any(o.startswith(("hydra.run.dir=", "hydra.sweep.dir=")) for o in overrides):
        overrides.append(f"hydra.run.dir={tmp_path / 'run'}")
    flags = [o for o in overrides if o.startswith("-")]  # Hydra's parser wants -m before the overrides
    r = run("experiments.transfer", *flags, *TINY, *[o for o in overrides if o not in flags], cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr + r.stdout, r.stderr[-2000:]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr[-2000:]
    for text in expected:
        assert text.format(**files) in errors[0], (text, errors[0])
    assert not list(tmp_path.rglob("result.png"))


@pytest.mark.parametrize("overrides, expected", [pytest.param(o, e, id=i) for i, o, e in CASES])
def test_bad_input_is_one_line_and_exit_2(tmp_path, files, overrides, expected):
    refused(tmp_path, files, overrides, expected, run_app)


@pytest.mark.slow  # a fresh interpreter each (~3 s)
@pytest.mark.parametrize("overrides, expected", [pytest.param(o, e, id=i) for i, o, e in CASES
                                                 if i in IN_A_FRESH_INTERPRETER])
def test_bad_input_is_one_line_in_a_fresh_interpreter(tmp_path, files, overrides, expected):
    refused(tmp_path, files, overrides, expected, run_cli)


def test_a_preset_under_another_entry_is_refused_before_any_job(tmp_path):
    # composed under grid.yaml, Fig. 3's preset would get the grid's layers, and its ratio axis beside the grid's
    # beta axis: 100 jobs, each beta ignored
    r = run_app("experiments.grid", "experiment=paper_fig3", *TINY, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines() == ["error: experiment=paper_fig3: a preset is a sweep of its own, which "
                                             "experiments.grid's settings would change; run python -m "
                                             "experiments.transfer experiment=paper_fig3"]
    assert not (tmp_path / "outputs").exists()


def test_a_quoted_home_path_is_expanded(tmp_path, monkeypatch):
    """content='~/c.png' (quoted, as Hydra's parser needs for some paths) reached the job unexpanded: "does not
    exist"; bash expands ~ only in an unquoted content=~/c.png."""
    monkeypatch.setenv("HOME", str(tmp_path))
    draw(width=40, height=32, seed=1).save(tmp_path / "c.png")
    r = run_app("experiments.transfer", *TINY, "content='~/c.png'", f"hydra.run.dir={tmp_path / 'out'}",
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["config"]["content"] == str(tmp_path / "c.png") and m["inputs"]["content"]
    assert m["versions"]["nst_commit"]


@pytest.mark.slow  # a fresh interpreter
def test_the_full_trace_is_there_when_asked_for(tmp_path):
    env = dict(os.environ, HYDRA_FULL_ERROR="1")
    r = subprocess.run([sys.executable, "-m", "experiments.transfer", *TINY, "sizee=128",
                        f"hydra.run.dir={tmp_path}"], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 1 and "Traceback" in r.stderr and "sizee" in r.stderr


def test_a_failure_never_overwrites_a_complete_job(tmp_path):
    """Re-running into a directory with a complete job, with a bad value: the files stay as they were."""
    run_dir = tmp_path / "run"
    r = run_app("experiments.transfer", *TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file() and p.suffix != ".log"}
    r = run_app("experiments.transfer", *TINY, "threads=0", f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert r.returncode == 2 and "threads 0" in r.stderr
    assert {name: (run_dir / name).read_bytes() for name in before} == before
