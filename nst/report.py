"""A sweep directory -> one DataFrame row per job -> report.csv and pivot tables; rebuilt from disk alone."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import yaml

from nst.files import write_text

ALWAYS = ["alpha", "beta", "content_layers", "style_layers", "style_loss"]  # shown even when not swept
METRICS = ["content_loss", "style_loss", "total_loss", "tv_loss", "gram_style_loss", "content_psnr"]
RENAMED = {"style_loss": "style_loss_fn"}  # config keys whose names are taken by a metric column
TAIL = ["steps", "evaluations", "seconds", "seconds_per_iteration", "device", "status", "error", "result"]
NUMERIC_AXES = ("beta", "ratio", "alpha", "style_scale", "tv_weight", "size")


def column(key: str) -> str:
    """The report column of a config key."""
    return RENAMED.get(key, key)


def job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Job directories of a sweep: those Hydra created (with .hydra/) or that hold a metrics.json."""
    root = Path(sweep_dir)
    return sorted(d for d in root.iterdir() if d.is_dir() and ((d / ".hydra").is_dir() or (d / "metrics.json").is_file()))


def overrides(job_dir: Path) -> dict[str, str]:
    """The job's command-line and sweep overrides, {key: value text}, hydra.* left out."""
    path = job_dir / ".hydra" / "overrides.yaml"
    items = yaml.safe_load(path.read_text()) if path.is_file() else []
    pairs = (item.lstrip("+~").partition("=") for item in items or [])
    return {k: v for k, _, v in pairs if not k.startswith("hydra.")}


def readable(value) -> object:
    """Config values as table cells: lists -> "0,1,2", paths -> file stem, numbers stay numbers."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(readable(v)) for v in value) if value else "none"
    if isinstance(value, str) and "/" in value:
        return Path(value).stem
    return value


def job_row(job_dir: Path, sweep_dir: Path, swept: list[str]) -> dict:
    """One report row from a job directory's files."""
    metrics_path = job_dir / "metrics.json"
    m = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {"status": "missing", "config": {}}
    cfg = m.get("config") or {}
    row, given = {"job": job_dir.name}, overrides(job_dir)
    for key in dict.fromkeys(ALWAYS + swept):
        row[column(key)] = readable(cfg.get(key, given.get(key)))
    if m.get("layers"):
        names = m["layers"]
        row["style_layer_names"] = ",".join(names.get(str(v), str(v)) for v in cfg.get("style_layers") or [])
        row["content_layer_names"] = ",".join(names.get(str(v), str(v)) for v in cfg.get("content_layers") or [])
    if m.get("beta_used") is not None:
        row["beta"] = m["beta_used"]
    for key in METRICS:
        row[key] = m.get(key, math.nan)
    row |= {k: v for k, v in m.items() if k.startswith(("content/", "style/"))}
    for key in TAIL:
        row[key] = m.get(key)
    row["result"] = str((job_dir / "result.png").relative_to(sweep_dir)) if (job_dir / "result.png").is_file() else ""
    return row


def sort_key(value) -> tuple:
    """Order axis values: numbers ascending, layer lists by length then value, text alphabetically."""
    if isinstance(value, (int, float)):
        return (0, value, (), "")
    text = str(value)
    parts = text.split(",")
    indices = tuple(int(p) for p in parts) if all(p.strip().isdigit() for p in parts) else ()
    return (1, len(parts), indices, text)  # conv indices numerically: 2 before 10


def build(sweep_dir: str | Path) -> pd.DataFrame:
    """The report of a sweep directory, one row per job, ordered by the swept values."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep directory {str(sweep_dir)!r} does not exist")
    dirs = job_dirs(sweep_dir)
    if not dirs:
        raise ValueError(f"sweep directory {str(sweep_dir)!r} holds no job directories")
    swept = swept_keys(dirs)
    df = pd.DataFrame([job_row(d, sweep_dir, swept) for d in dirs])
    swept = df.attrs["swept"] = [column(k) for k in swept]
    keys = [k for k in swept if k in df]
    if keys:
        df = df.sort_values(keys, key=lambda col: col.map(sort_key)).reset_index(drop=True)
    return df


def swept_keys(dirs: list[Path]) -> list[str]:
    """Override keys whose values differ between jobs (a key set once for all jobs is not an axis)."""
    seen: dict[str, set[str]] = {}
    for d in dirs:
        for k, v in overrides(d).items():
            seen.setdefault(k, set()).add(v)
    multi = [k for k, values in seen.items() if len(values) > 1]
    return multi or [k for k in seen if k not in ("size", "steps", "device", "progress", "images_root", "threads")]


def axes(df: pd.DataFrame) -> tuple[str | None, str | None]:
    """(row key, column key) for grids and pivots: columns a numeric weight axis, rows the other swept key."""
    swept = [k for k in df.attrs.get("swept", []) if k in df and df[k].nunique() > 1]
    cols = next((k for k in NUMERIC_AXES if k in swept), swept[-1] if len(swept) > 1 else None)
    rows = next((k for k in swept if k != cols), None)
    return rows, cols


def pivots(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Content and style loss per (row, column) of the sweep's two axes; empty for one-axis sweeps."""
    rows, cols = axes(df)
    if rows is None or cols is None:
        return {}
    row_order = sorted(df[rows].unique(), key=sort_key)
    return {metric: df.pivot_table(index=rows, columns=cols, values=metric, aggfunc="first",
                                   sort=False).reindex(row_order).sort_index(axis=1)
            for metric in ("content_loss", "style_loss")}


def write(sweep_dir: str | Path) -> tuple[pd.DataFrame, str]:
    """Write report.csv and pivot_*.csv into the sweep directory; returns the report and a short summary."""
    sweep_dir = Path(sweep_dir)
    df = build(sweep_dir)
    write_text(sweep_dir / "report.csv", df.to_csv(index=False))
    lines = [f"{len(df)} jobs: " + ", ".join(f"{n} {s}" for s, n in df["status"].value_counts().items()),
             f"report: {sweep_dir / 'report.csv'}"]
    for metric, table in pivots(df).items():
        write_text(sweep_dir / f"pivot_{metric}.csv", table.to_csv())
        lines += [f"{metric} (rows {table.index.name}, columns {table.columns.name}):",
                  table.to_string(float_format=lambda v: f"{v:.3g}")]
    failed = df[df["status"] != "ok"]
    lines += [f"{r.job}: {r.status} {r.error or ''}".rstrip() for r in failed.itertuples()]
    return df, "\n".join(lines)
