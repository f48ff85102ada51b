"""A sweep directory -> one DataFrame row per job -> report.csv and pivot tables; rebuilt from disk alone."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from nst import config, jobdir, metrics, sweep
from nst.files import write_text

# shown even when not swept: what tells two sweeps' rows apart once concatenated (pd.concat of two layer scans)
ALWAYS = config.ranked("report")
METRICS = ["content_loss", "style_loss", "total_loss", "tv_loss", "gram_style_loss", "content_psnr",
           "saved/content_loss", "saved/style_loss", "saved/total_loss"]
TAIL = ["steps", "stop_reason", "evaluations", "seconds", "seconds_per_iteration", "peak_memory_mb", "device",
        "status", "error", "finished_at", "run"]
# metrics whose names are config keys get their own columns, so that a swept `steps` (iterations asked for) or
# `device` (auto) stays the axis; trial F: a steps=40,60 sweep stopped early at 26 read as one axis, and a failed
# job's null steps made a column of its own
RENAMED_METRICS = {"steps": "iterations", "device": "device_used"}
NUMERIC_AXES = config.ranked("columns")  # the column axis of pivots and grids: the first of these swept
column = config.column


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Job directories of a sweep: those Hydra created (with .hydra/) or that hold a metrics.json."""
    root = Path(sweep_dir)
    return sorted(d for d in root.iterdir() if d.is_dir() and ((d / ".hydra").is_dir() or (d / "metrics.json").is_file()))


def overrides(job_dir: Path, launched: list[str] | None = None) -> dict[str, str]:
    """The job's command-line and sweep overrides, {key: value text}, hydra.* left out: from its .hydra/, else
    as launched (a job that never started)."""
    path = job_dir / ".hydra" / "overrides.yaml"
    try:
        recorded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):  # none: a job that never started; cut short: a disk that filled
        recorded = None
    return sweep.parse(recorded if isinstance(recorded, list) else launched or [])


LAYER_COLUMNS = config.LAYER_KEYS  # sets of layers, as text: "0,1"


def read_csv(path: str | Path) -> pd.DataFrame:
    """A report.csv with its layer sets as text, as written: pandas alone reads a report whose sets are all one
    index ("0") as numbers, and its rows then do not group with another report's "0"."""
    return pd.read_csv(path, dtype={c: str for c in LAYER_COLUMNS})


def typed(text: str | None) -> object:
    """An override's value text as the config would hold it: numbers, lists, or the text."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError:
            return text


def first_style(value) -> str | None:
    """The (first) style image path of a config's `style`."""
    return (value[0] if value else None) if isinstance(value, list) else value


def job_row(job_dir: Path, sweep_dir: Path, swept: list[str], launched: list[str] | None = None) -> dict:
    """One report row from a job directory's files: what figures need (image paths, layer names) included."""
    status, why, m = jobdir.state(job_dir)
    ok = status == metrics.OK
    m = m if m is not None and status not in UNTRUSTED else {}  # another job's config, or none: its overrides
    cfg = m.get("config") if isinstance(m.get("config"), dict) else {}
    cfg = {**config.EARLIER, **cfg} if cfg else cfg  # a record from before a key existed ran with its `earlier`
    row, given = {"job": job_dir.name}, overrides(job_dir, launched)
    for key in dict.fromkeys(ALWAYS + swept):
        value = cfg.get(key)
        if key not in cfg or isinstance(value, dict):  # a config group (optimizer=adam, painting=...): its option
            value = typed(given.get(key))
        row[column(key)] = sweep.cell(value)
    for key, names_column in sweep.NAMES_COLUMNS.items():
        row[names_column] = sweep.layer_names(cfg.get(key), m.get("layers") or {})
    if m.get("beta_used") is not None:
        row["beta"] = m["beta_used"]
    for key in METRICS:  # a job that is not ok (failed, or a record that lies) has no numbers in pivots or figures
        row[key] = m.get(key, math.nan) if ok else math.nan
    row |= {k: v for k, v in m.items() if k.startswith(("content/", "style/")) and ok}
    for key in TAIL:
        row[RENAMED_METRICS.get(key, key)] = m.get(key)
    row["status"], row["error"] = status, why
    row["result"] = str((job_dir / "result.png").relative_to(sweep_dir)) if ok else ""
    row["content_image"], row["style_image"] = cfg.get("content"), first_style(cfg.get("style"))
    return row


def sort_key(value: Any, seen: int = 0) -> tuple:
    """Order axis values: numbers ascending, then a null (an unset key: the baseline of preserve_color=null,...),
    then layer lists by length then conv index, text in the order given (`seen`: where the value first appears,
    i.e. the sweep's order: Fig. 2's paintings B, C, D, F, not A-Z)."""
    if isinstance(value, (int, float)) and not pd.isna(value):
        return (0, value, (), 0)
    if value is None or pd.isna(value):
        return (1, 0, (), 0)
    parts = str(value).split(",")
    indices = tuple(int(p) for p in parts) if all(p.strip().isdigit() for p in parts) else ()
    return (1, len(parts), indices, seen)  # conv indices numerically: 2 before 10


def in_order(values: Any) -> list:
    """An axis's distinct values in axis order (sort_key), a null (NaN or None) as None, once."""
    seen: dict[Any, int] = {}
    for v in values:
        seen.setdefault(None if pd.isna(v) else v, len(seen))  # first appearances, in order
    return sorted(seen, key=lambda v: sort_key(v, seen[v]))


def order(column: pd.Series) -> pd.Series:
    """A key for DataFrame.sort_values: each value's place on its axis."""
    place = {v: i for i, v in enumerate(in_order(column))}
    return column.map(lambda v: place[None if pd.isna(v) else v])


def build(sweep_dir: str | Path, jobs: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """The report of a sweep directory, one row per job, ordered by the swept values.

    `jobs`: {job directory name: its overrides} of the invocation to report (a job without files is "missing");
    other job directories found there are left out and listed in `df.attrs["others"]`. None: every job directory.
    """
    sweep_dir = Path(sweep_dir)
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise NotADirectoryError(f"{str(sweep_dir)!r} is a file, not a sweep directory")
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory {str(sweep_dir)!r} does not exist")
    found = job_dirs(sweep_dir)
    jobs = jobs if jobs is not None else {d.name: [] for d in found}
    dirs = [sweep_dir / name for name in jobs]
    if not dirs:
        raise ValueError(f"sweep directory {str(sweep_dir)!r} holds no job directories")
    swept = swept_keys(dirs, jobs)
    df = pd.DataFrame([job_row(d, sweep_dir, swept, jobs[d.name]) for d in dirs])
    df.attrs["others"] = sorted(d.name for d in found if d not in dirs)
    swept = df.attrs["swept"] = [column(k) for k in swept]
    keys = [k for k in swept if k in df]
    if keys:
        df = df.sort_values(keys, key=order, kind="stable").reset_index(drop=True)
    return df


def swept_keys(dirs: list[Path], launched: dict[str, list[str]] | None = None) -> list[str]:
    """Override keys whose values differ between jobs (a key set once for all jobs is not an axis)."""
    seen: dict[str, set[str]] = {}
    for d in dirs:
        for k, v in overrides(d, (launched or {}).get(d.name)).items():
            seen.setdefault(k, set()).add(v)
    multi = [k for k, values in seen.items() if len(values) > 1]
    return multi or [k for k in seen if k not in config.NOT_AXES]


UNTRUSTED = ("hollow", "misplaced", "altered")  # records that lie (nst.metrics.fault): nothing of them is shown
# job_row's statuses of a job without a config record (a running job's may be an earlier failure's)
UNKNOWN_CONFIG = ("missing", "unfinished", "unreadable", "running", *UNTRUSTED)


def axis_values(df: pd.DataFrame, key: str) -> list:
    """A key's distinct values in axis order (in_order); a null (tap=null,relu) only where a job's config says so:
    in a killed run's row (UNKNOWN_CONFIG) it means "not known", and made a null axis value of its own."""
    known = df[~df["status"].isin(UNKNOWN_CONFIG)] if "status" in df else df
    return in_order(pd.concat([df[key].dropna(), known[key][known[key].isna()]]))


def axes(df: pd.DataFrame) -> tuple[str | None, str | None]:
    """(row key, column key) for grids and pivots: columns a numeric weight axis, rows the other swept key."""
    swept = [k for k in df.attrs.get("swept", []) if k in df and len(axis_values(df, k)) > 1]
    cols = next((k for k in NUMERIC_AXES if k in swept), swept[-1] if len(swept) > 1 else None)
    rows = next((k for k in swept if k != cols), None)
    return rows, cols


def held(df: pd.DataFrame) -> dict[str, object]:
    """Swept keys beyond the two axes, each with the value the pivots and the grid hold it at: its first."""
    rows, cols = axes(df)
    values = {k: axis_values(df, k) for k in df.attrs.get("swept", []) if k in df and k not in (rows, cols)}
    return {k: v[0] for k, v in values.items() if len(v) > 1}


def held_text(df: pd.DataFrame) -> str:
    """held(df) as "seed = 0, tap = null" ("" when nothing is held)."""
    return ", ".join(f"{k} = {'null' if v is None else int(v) if isinstance(v, float) and v.is_integer() else v}"
                     for k, v in held(df).items())


def plane(df: pd.DataFrame) -> pd.DataFrame:
    """The jobs of the pivots and the grid: every swept key beyond the two axes at its first value."""
    attrs, picked = df.attrs, df
    for key, value in held(df).items():
        picked = picked[picked[key].isna() if value is None else picked[key] == value]
    picked.attrs = attrs
    return picked


def pivots(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Content and style loss per (row, column) of the sweep's two axes; empty for one-axis sweeps."""
    rows, cols = axes(df)
    if rows is None or cols is None:
        return {}
    df = plane(df).copy()
    row_order, col_order = ([NULL if v is None else v for v in axis_values(df, k)] for k in (rows, cols))
    for key in (rows, cols):  # a null value (preserve_color=null, the baseline) is a row or column, "null"
        df[key] = df[key].astype(object).where(df[key].notna(), NULL)
    return {metric: df.pivot_table(index=rows, columns=cols, values=metric, aggfunc="first",
                                   sort=False).reindex(index=row_order, columns=col_order)
            for metric in ("content_loss", "style_loss")}


NULL = "null"  # a null axis value in the pivots, as typed


def counts(df: pd.DataFrame, started: float | None, run: str | None = None) -> str:
    """"25 jobs: 23 ok, 2 failed" in report.csv's status words (the `report` command's summary, with or without
    --all); with `started` (when the command that ran the sweep began) and `run` (its $NST_RUN), what that command
    did with its ok jobs: "; this run: 20 done, 3 skipped (finished earlier), 2 done by another run"."""
    status = df["status"].replace({"running": "running in another process"})
    line = f"{len(df)} job{'s' * (len(df) != 1)}: {_tally(status)}"
    ok = df["status"] == "ok"
    if started is None or not ok.any():
        return line
    earlier = ok & (pd.to_numeric(df["finished_at"], errors="coerce") < started)
    other = ok & ~earlier & df["run"].notna() & (df["run"] != run) if run and "run" in df else ok & False
    did = pd.Series("done", index=df.index)[ok].mask(earlier, "skipped (finished earlier)").mask(
        other, "done by another run")
    return f"{line}; this run: {_tally(did)}"


def _tally(words: pd.Series) -> str:
    """"4 ok, 1 failed": how many of each word, the most frequent first."""
    return ", ".join(f"{n} {word}" for word, n in words.value_counts().items())


def write(sweep_dir: str | Path, jobs: dict[str, list[str]] | None = None, *,
          started: float | None = None, run: str | None = None) -> tuple[pd.DataFrame, str]:
    """Write report.csv and pivot_*.csv into the sweep directory; returns the report and a short summary.

    `jobs`, `started` (epoch seconds) and `run` ($NST_RUN): the reported invocation's job names, start and id, when
    known.
    """
    sweep_dir = Path(sweep_dir)
    df = build(sweep_dir, jobs)
    write_text(sweep_dir / "report.csv", df.drop(columns="run").to_csv(index=False))  # `run`: for counts only
    lines = [counts(df, started, run), f"report: {sweep_dir / 'report.csv'}"]
    if df.attrs["others"]:
        lines.append(f"warning: {len(df.attrs['others'])} other job directories in {sweep_dir} belong to other "
                     f"runs and are not in this report: {', '.join(df.attrs['others'][:5])}"
                     + (" ..." if len(df.attrs["others"]) > 5 else "")
                     + f"; python -m experiments.report --all {sweep_dir} reports every job")
    more = held_text(df) if all(axes(df)) else ""
    if more:  # a pivot or a grid has two axes: a third swept key would silently pick one job per cell
        lines.append(f"the pivots and the grid show {more} only, of {len(df)} jobs; report.csv has every job")
    tables = pivots(df)
    for stale in set(sweep_dir.glob("pivot_*.csv")) - {sweep_dir / f"pivot_{m}.csv" for m in tables}:
        stale.unlink()  # an earlier report's (of another shape): the directory's tables are this report's
    for metric, table in tables.items():
        # the corner cell names both axes ("style_layers \ beta"): the columns' key was in no file (trial F)
        write_text(sweep_dir / f"pivot_{metric}.csv",
                   table.rename_axis(index=f"{table.index.name} \\ {table.columns.name}", columns=None).to_csv())
        if table.isna().all(axis=None):  # no job of the plane finished (e.g. all interrupted): nothing to show
            continue
        shown = table.rename(columns=lambda v: f"{v:g}" if isinstance(v, float) else v)  # 1e-08, not 1.000000e-08
        lines += [f"{metric} (rows {table.index.name}, columns {table.columns.name}):",
                  shown.to_string(float_format=lambda v: f"{v:.3g}")]
    failed = df[df["status"] != "ok"]
    lines += [f"warning: {sweep_dir / r.job}: {r.error}; not counted as ok (a re-run of the sweep redoes the job)"
              if r.status in jobdir.FAULTS else
              f"{r.job}: {r.status} {r.error if isinstance(r.error, str) else ''}".rstrip() for r in failed.itertuples()]
    return df, "\n".join(lines)
