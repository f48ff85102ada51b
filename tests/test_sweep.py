"""The sweep vocabulary (nst/sweep.py) and the report of one invocation (nst/report.py, experiments/report.py)."""
import os
import time

import pandas as pd
import pytest
from omegaconf import OmegaConf
from PIL import Image

from nst import metrics, report, sweep


def test_directory_names_are_readable_and_unique():
    assert sweep.dirname(["beta=1e3", "style_layers=[0,1,2]", "hydra.run.dir=x", "threads=2"]) == \
        "beta=1e+03,style_layers=0-1-2"
    a, b = sweep.dirname(["content=a/x.jpg"]), sweep.dirname(["content=b/x.jpg"])
    assert a.startswith("content=x~") and b.startswith("content=x~") and a != b  # same stem, two folders
    assert sweep.dirname(["content=a/x.jpg"]) == a  # deterministic
    assert sweep.dirname([]) == "job"
    # distinct numbers, distinct names: seeds and betas that agree to 6 digits once shared a directory
    for values in (["20240101", "20240102"], ["1234567", "1234568"], ["0.1234567", "0.1234568"],
                   ["9007199254740993", "9007199254740992"]):
        names = {sweep.dirname([f"seed={v}"]) for v in values}
        assert len(names) == 2, names
    assert sweep.dirname(["seed=20240101", "ratio=1.5e-05"]) == "ratio=1.5e-05,seed=20240101"


def test_a_home_path_names_its_directory_as_the_job_reads_it():
    """'~/x.png' (quoted: the job expands it) and bash's own expansion of ~/x.png are one job, one directory."""
    assert sweep.format_value("~/x.png") == sweep.format_value(os.path.expanduser("~/x.png"))


def test_cells_and_layer_names():
    assert sweep.cell([0, 1, 2]) == "0,1,2" and sweep.cell([]) == "none" and sweep.cell("a/b/x.jpg") == "x"
    assert sweep.layer_names([0, "relu4_2"], {"0": "conv1_1", "relu4_2": "relu4_2"}) == "conv1_1,relu4_2"


def job(sweep_dir, name, status="ok", **values):
    """A job directory as run_job leaves it (metrics.json, result.png)."""
    d = sweep_dir / name
    d.mkdir(parents=True)
    record = {"status": status, "inputs": {}, "config": {"beta": values.get("beta", 1.0), "style_layers": [0]},
              "total_loss": 1.0, "content_loss": 1.0, "style_loss": 1.0, "layers": {"0": "conv1_1"},
              "finished_at": values.get("finished_at", time.time())}
    metrics.write(d, record)
    if status == "ok":
        Image.new("RGB", (4, 3)).save(d / "result.png")


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


def test_a_damaged_job_is_reported_as_such(tmp_path):
    """An ok record beside an image cut short, and a record that is no JSON: neither 'ok' nor 'missing'."""
    job(tmp_path, "beta=1", beta=1.0)
    job(tmp_path, "beta=2", beta=2.0)
    png = (tmp_path / "beta=1" / "result.png").read_bytes()
    (tmp_path / "beta=1" / "result.png").write_bytes(png[:-20])
    (tmp_path / "beta=2" / "metrics.json").write_text('{"status": "ok", "con')
    job(tmp_path, "beta=3", beta=3.0)
    (tmp_path / "beta=3" / "metrics.json").write_text('{"a": 1}')  # JSON, but no record (it raised KeyError)
    (tmp_path / "beta=4" / ".hydra").mkdir(parents=True)  # started, then its process killed (a joblib worker)
    df, summary = report.write(tmp_path)
    assert list(df["status"]) == ["damaged", "unreadable", "unreadable", "unfinished"]
    assert list(df["result"]) == ["", "", "", ""]  # a job that is not ok shows no image in the figures
    assert f"warning: {tmp_path / 'beta=1'}: result.png is damaged" in summary
    assert "beta=2: unreadable metrics.json" in summary


def test_a_swept_config_group_is_an_axis_by_its_option_name(tmp_path):
    # `-m beta=1,2 optimizer=adam,lbfgs`: the config holds the group's keys as a dict, the axis is the option
    for opt in ("adam", "lbfgs"):
        for beta in (1, 2):
            name = f"beta={beta},optimizer={opt}"
            job(tmp_path, name, beta=float(beta))
            record = metrics.read(tmp_path / name)
            record["config"]["optimizer"] = {"name": opt, "lr": 1.0}
            metrics.write(tmp_path / name, record)
            (tmp_path / name / ".hydra").mkdir()
            (tmp_path / name / ".hydra" / "overrides.yaml").write_text(f"- beta={beta}\n- optimizer={opt}\n")
    df, _ = report.write(tmp_path)
    assert sorted(df["optimizer"]) == ["adam", "adam", "lbfgs", "lbfgs"]
    assert report.axes(df) == ("optimizer", "beta")
    assert report.pivots(df)["content_loss"].shape == (2, 2)


def test_a_third_swept_key_is_held_at_its_first_value_and_said_so(tmp_path):
    loss = {}
    for beta in (1, 2):
        for layers in ("[0]", "[0,1]"):
            for seed in (5, 3):
                name = f"beta={beta},seed={seed},style_layers={layers}"
                job(tmp_path, name, beta=float(beta))
                record = metrics.read(tmp_path / name)
                record["config"]["style_layers"] = [0] if layers == "[0]" else [0, 1]
                record["content_loss"] = loss[name] = float(len(loss))
                metrics.write(tmp_path / name, record)
                (tmp_path / name / ".hydra").mkdir()
                (tmp_path / name / ".hydra" / "overrides.yaml").write_text(
                    f"- beta={beta}\n- style_layers={layers}\n- seed={seed}\n")  # the axes: the first two
    df, summary = report.write(tmp_path)
    assert report.held(df) == {"seed": 3}
    assert "the pivots and the grid show seed = 3 only, of 8 jobs" in summary
    table = report.pivots(df)["content_loss"]
    assert table.loc["0,1", 2.0] == loss["beta=2,seed=3,style_layers=[0,1]"]
    assert len(report.plane(df)) == 4 and set(report.plane(df)["seed"]) == {3}


def test_a_third_key_swept_with_null_is_held_at_null():
    df = pd.DataFrame({"beta": [1.0, 2.0] * 4, "style_layers": ["0", "0", "0,1", "0,1"] * 2,
                       "tap": [None] * 4 + ["relu"] * 4, "content_loss": range(8), "style_loss": range(8)})
    df.attrs["swept"] = ["beta", "style_layers", "tap"]
    assert report.held(df) == {"tap": None}
    assert list(report.pivots(df)["content_loss"].to_numpy().ravel()) == [0, 1, 2, 3]


def test_loss_curves_of_forty_jobs_are_told_apart():
    from nst.figures import job_colours

    assert len(set(job_colours(10))) == 10 and len(set(job_colours(40))) == 40
    assert job_colours(40)[0] != job_colours(40)[-1] and job_colours(3) == ["C0", "C1", "C2"]


def test_report_all_stale_tables_and_figures_and_unreadable_inputs(tmp_path, capsys):
    """A re-run of one row into a 2 x 2 sweep's directory: its report is that row's (a strip; the grid and the
    pivots of the earlier report removed, not left beside it), and --all reports all four jobs again (a grid)."""
    from experiments.report import cli

    sweep_dir = tmp_path / "sweep"
    for beta in (1, 2):
        for layers in ("0", "0-1"):
            name = f"beta={beta},style_layers={layers}"
            job(sweep_dir, name, beta=float(beta))
            record = metrics.read(sweep_dir / name)
            record["config"]["style_layers"] = [int(i) for i in layers.split("-")]
            metrics.write(sweep_dir / name, record)
            (sweep_dir / name / ".hydra").mkdir()
            (sweep_dir / name / ".hydra" / "overrides.yaml").write_text(
                f"- beta={beta}\n- style_layers=[{layers.replace('-', ',')}]\n")
    assert cli([str(sweep_dir)], draw=True) == 0
    assert {p.name for p in sweep_dir.glob("pivot_*.csv")} and (sweep_dir / "grid.png").is_file()
    row = OmegaConf.create({"hydra": {"sweeper": {"params": {}}, "overrides": {"task": ["beta=1,2",
                                                                                        "style_layers=[0]"]}}})
    OmegaConf.save(row, sweep_dir / "multirun.yaml")
    assert cli([str(sweep_dir)], draw=True) == 0
    assert "--all" in capsys.readouterr().out and len(pd.read_csv(sweep_dir / "report.csv")) == 2
    assert not list(sweep_dir.glob("pivot_*.csv")) and not (sweep_dir / "grid.png").exists()
    assert (sweep_dir / "strip.png").is_file()
    assert cli([str(sweep_dir), "--all"], draw=True) == 0
    report_all = pd.read_csv(sweep_dir / "report.csv")
    assert len(report_all) == 4 and (sweep_dir / "grid.png").is_file() and not (sweep_dir / "strip.png").exists()
    assert {"arch", "size", "seed", "loss", "ratio"} <= set(report_all)  # concatenated sweeps stay apart

    (sweep_dir / "multirun.yaml").write_text("hydra: {sweeper: [\n")
    assert cli([str(sweep_dir)]) == 2
    assert "multirun.yaml cannot be read" in capsys.readouterr().err
    assert cli([str(tmp_path)]) == 2  # a folder of sweeps
    assert "holds sweeps, not jobs (sweep); report each" in capsys.readouterr().err
    assert cli([str(sweep_dir / "beta=1,style_layers=0")]) == 2  # one job's directory: its sweep is named
    assert capsys.readouterr().err == (f"error: '{sweep_dir / 'beta=1,style_layers=0'}' is one job's directory; report "
                                       f"the sweep (or folder of runs) it belongs to: python -m experiments.report "
                                       f"{sweep_dir}\n")
    with pytest.raises(SystemExit) as usage:  # argparse's errors: one line, not the usage and then the error
        cli(["--pivot", "beta", str(sweep_dir)])
    err = capsys.readouterr().err
    assert usage.value.code == 2 and err.startswith("error: unrecognized arguments: --pivot") and err.count("\n") == 1
    job(tmp_path, "single")  # and a single run beside it (outputs/transfer/ holds both): reported, the sweep not
    assert cli([str(tmp_path)]) == 0
    assert "the sweeps in" in capsys.readouterr().out and list(pd.read_csv(tmp_path / "report.csv")["job"]) == [
        "single"]


def test_two_reports_concatenate_and_group_by_their_layer_sets(tmp_path):
    """A report whose only style set is [0] read the column as the number 0; another's "0" stayed text, so the
    same cell made two groups after pd.concat."""
    for name, layers in (("a", ([0],)), ("b", ([0], [0, 1]))):
        for k, style in enumerate(layers):
            job(tmp_path / name, f"style_layers={k}", beta=1.0)
            record = metrics.read(tmp_path / name / f"style_layers={k}")
            record["config"]["style_layers"] = style
            metrics.write(tmp_path / name / f"style_layers={k}", record)
        report.write(tmp_path / name)
    both = pd.concat([report.read_csv(tmp_path / n / "report.csv") for n in ("a", "b")])
    assert both.groupby("style_layers").size().to_dict() == {"0": 2, "0,1": 1}
    assert pd.read_csv(tmp_path / "a" / "report.csv")["style_layers"].dtype != object  # why read_csv exists


def test_text_axes_keep_the_sweeps_order_and_labels_tell_values_apart():
    """Fig. 2's paintings came out A-Z (panels F, B, C, D); β 1000, 1250, 1500 were labelled 1e+03, 1e+03, 2e+03."""
    from nst.figures import _value_label, axis_format

    fig2 = ["shipwreck", "starry_night", "the_scream", "composition_vii"]  # conf/experiment/paper_fig2.yaml
    assert report.in_order(fig2 + fig2[::-1]) == fig2
    assert report.in_order(["0,1", "10", "2", "0"]) == ["0", "2", "10", "0,1"]
    assert report.in_order([1e4, 1e2, 1e3]) == [1e2, 1e3, 1e4]
    df = pd.DataFrame({"painting": fig2[::-1] + fig2, "beta": [1.0] * 4 + [2.0] * 4})
    assert list(df.sort_values(["beta", "painting"], key=report.order)["painting"][4:]) == fig2[::-1]
    betas = (1000.0, 1250.0, 1500.0, 199999.99999999997, 0.5)
    assert [_value_label("beta", b, axis_format(betas)) for b in betas] == \
        ["β = 1e+03", "β = 1.25e+03", "β = 1.5e+03", "β = 2e+05", "β = 5e-01"]
    # one format per axis: `β = 100` beside `1e+03`, `1e-05` beside `0.01` were two
    assert [axis_format([1e2, 1e3])(b) for b in (1e2, 1e3)] == ["1e+02", "1e+03"]
    ratios = [1e-5, 1e-4, 1e-3, 1e-2]
    assert [axis_format(ratios)(r) for r in ratios] == ["1e-05", "1e-04", "1e-03", "1e-02"]
    assert [axis_format([0.1, 0.5, 2.0])(v) for v in (0.1, 0.5, 2.0, None)] == ["0.1", "0.5", "2", "null"]


def test_an_axis_with_nulls_orders_them_and_keeps_them():
    """Two or more nulls in a swept column (-m style_scale=null,2 beta=1e3,1e4) made sort_values raise, and the
    sweep lost its report.csv. A null value is an axis value: after numbers, before text (the baseline of
    preserve_color=null,luminance); before, the pivots left its row out and tap=null,relu was no axis at all."""
    df = pd.DataFrame({"style_scale": [None, 2.0, None, 0.5], "beta": [1e3, 1e3, 1e4, 1e4]})
    ordered = df.sort_values(["style_scale", "beta"], key=report.order)
    assert list(ordered["style_scale"].fillna(-1)) == [0.5, 2.0, -1, -1] and report.in_order(df["style_scale"]) == \
        [0.5, 2.0, None]
    assert report.in_order(["luminance", None, "histogram", float("nan")]) == [None, "luminance", "histogram"]
    sweep = pd.DataFrame({"preserve_color": ["luminance", None] * 2, "beta": [1e3, 1e3, 1e4, 1e4],
                          "content_loss": [1.0, 2.0, 3.0, 4.0], "style_loss": [5.0, 6.0, 7.0, 8.0]})
    sweep.attrs["swept"] = ["preserve_color", "beta"]
    assert report.axes(sweep) == ("preserve_color", "beta")
    table = report.pivots(sweep)["content_loss"]
    assert list(table.index) == ["null", "luminance"] and list(table.columns) == [1e3, 1e4]
    assert table.loc["null", 1e4] == 4.0 and table.loc["luminance", 1e3] == 1.0
    # a killed run's unknown config is no null value: beta is no axis of these runs (seed is)
    runs = pd.DataFrame({"beta": [1e3, 1e3, None], "seed": [0.0, 1.0, 1.0], "status": ["ok", "ok", "unfinished"]})
    runs.attrs["swept"] = ["beta", "seed"]
    assert report.axes(runs) == ("seed", None)


def test_a_grid_column_names_its_layers_where_every_row_reads_them_alike():
    """A layer set's column title: its layers' names (it was "0,2"), unless rows read one index as two layers."""
    from nst.figures import _column_title

    df = pd.DataFrame({"tap": ["relu", "conv"], "style_layers": ["0,2", "0,2"],
                       "style_layer_names": ["relu1_1,relu2_1", "conv1_1,conv2_1"]})
    assert _column_title(df[:1], "style_layers", "0,2") == "relu1_1, relu2_1"
    assert _column_title(df, "style_layers", "0,2") == "style layers = 0,2"
    assert _column_title(df.assign(beta=[1e3, 1e3]), "beta", 1e3) == "β = 1e+03"
