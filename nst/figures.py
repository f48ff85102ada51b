"""Figures of a sweep (the only module that imports matplotlib): parameter grid, reconstruction strip, loss curves."""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from PIL import Image  # noqa: E402

from nst.config import LAYER_KEYS  # noqa: E402
from nst.files import atomic_write  # noqa: E402
from nst.config import label as key_label  # noqa: E402
from nst.report import axes, axis_values, held_text, order, plane  # noqa: E402
from nst.sweep import NAMES_COLUMNS  # noqa: E402

CELL = 1.9  # inches per image column


def _value_text(value) -> str:
    """An axis value as labels show it: "null", "1e+03" where exact, else four digits."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return "null"  # an unset option (e.g. preserve_color) reads back from the CSV as NaN
    if isinstance(value, float) and value and (abs(value) >= 1e3 or abs(value) < 1e-2):
        short = f"{value:.0e}"  # 1e+03, as the directory names; four digits where that is not the value (it made
        return short if float(short) == value else f"{value:.4g}"  # 1000 and 1250 both "1e+03")
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _value_label(key: str, value) -> str:
    return f"{key_label(key)} = {_value_text(value)}"


def _names_text(names: str) -> str:
    """Layer names "a,b,c" two to a line: "a, b\nc"."""
    parts = names.split(",")
    return "\n".join(", ".join(parts[i:i + 2]) for i in range(0, len(parts), 2))


def _layers_label(row: pd.Series, key: str) -> str:
    names = row.get(NAMES_COLUMNS.get(key, ""))
    return _names_text(names if isinstance(names, str) and names else str(row[key]))


def _metrics_label(job: pd.Series) -> str:
    """The numbers a strip compares under each image: losses (Gram style as the common yardstick) or PSNR, s/it."""
    parts = []
    if job.get("style_layers") not in (None, "none") and pd.notna(job.get("gram_style_loss")):
        if job.get("content_layers") not in (None, "none"):  # a style reconstruction has no content term
            parts.append(f"content {job['content_loss']:.3g}")
        parts.append(f"Gram style {job['gram_style_loss']:.3g}")
    elif pd.notna(job.get("content_psnr")):
        parts.append(f"PSNR {job['content_psnr']:.1f} dB")
    if pd.notna(job.get("seconds_per_iteration")):
        parts.append(f"{job['seconds_per_iteration']:.3f} s/it")
    return "\n".join(parts)


def _show(ax, path: Path | None, title: str = "", *, failed: str | None = None) -> None:
    ax.set_xticks([]), ax.set_yticks([])
    if path is not None and path.is_file():
        ax.imshow(np.asarray(Image.open(path).convert("RGB")), aspect="equal", interpolation="lanczos")
    else:
        ax.set_facecolor("#f3d6d6")
        ax.plot([0, 1], [0, 1], color="#b22", lw=1.5, transform=ax.transAxes)
        ax.plot([0, 1], [1, 0], color="#b22", lw=1.5, transform=ax.transAxes)
        ax.text(0.5, 0.5, (failed or "failed")[:40], ha="center", va="center", fontsize=7, color="#700",
                transform=ax.transAxes, wrap=True, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
    if title:
        ax.set_title(title, fontsize=8)


def _aspect(df: pd.DataFrame, sweep_dir: Path) -> float:
    for rel in df["result"]:
        if rel:
            w, h = Image.open(sweep_dir / rel).size
            return h / w
    return 0.75


def _save(fig, out: Path) -> list[Path]:
    """out.png and out.pdf, each written atomically (a full disk names the file and leaves no partial one)."""
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    try:
        for p in paths:
            atomic_write(p, lambda tmp, kind=p.suffix[1:]: fig.savefig(tmp, format=kind, dpi=150, bbox_inches="tight"))
    finally:
        plt.close(fig)
    return paths


def grid(df: pd.DataFrame, sweep_dir: str | Path, *, content: str | None = None, style: str | None = None) -> list[Path]:
    """grid.png/pdf: results in rows x columns of the sweep's two axes, content and style shown alongside."""
    sweep_dir = Path(sweep_dir)
    rows_key, cols_key = axes(df)
    if rows_key is None or cols_key is None:
        raise ValueError(f"a grid needs two swept keys; this sweep varies {df.attrs.get('swept')}")
    held = held_text(df)  # a third swept key at its first value, said in the title (and the report's summary)
    df = plane(df)
    rows, cols = axis_values(df, rows_key), axis_values(df, cols_key)
    aspect = _aspect(df, sweep_dir)
    fig = plt.figure(figsize=(CELL * (len(cols) + 1.3), CELL * aspect * len(rows) + 0.6), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[1, len(cols)])
    side = left.subplots(2, 1)
    for ax, path, name in ((side[0], content, "content"), (side[1], style, "style")):
        if path and Path(path).is_file():
            _show(ax, Path(path), name)
        else:  # differs between the jobs, unused, or no longer there (a job resumed from a moved folder): no panel
            ax.axis("off")
    cells = right.subplots(len(rows), len(cols), squeeze=False)
    for i, r in enumerate(rows):
        for j, c in enumerate(cols):
            ax = cells[i][j]
            match = df[_is(df[rows_key], r) & _is(df[cols_key], c)]
            job = match.iloc[0] if len(match) else None
            ok = job is not None and job["status"] == "ok" and job["result"]
            _show(ax, sweep_dir / job["result"] if ok else None,
                  failed=None if job is None else f"{job['status']}: {job.get('error') or ''}")
            if i == 0:
                ax.set_title(_column_title(df, cols_key, c), fontsize=9)
            if j == 0:
                layers = job is not None and rows_key in LAYER_KEYS
                ax.set_ylabel(_layers_label(match.iloc[0], rows_key) if layers else _value_text(r), fontsize=7)
    right.suptitle(f"rows: {key_label(rows_key)}, columns: {key_label(cols_key)}"
                   + (f"; {held}" if held else ""), fontsize=10)
    return _save(fig, sweep_dir / "grid")


def _column_title(df: pd.DataFrame, key: str, value: object) -> str:
    """A grid column's title: a layer set by its layers' names, as the rows and the strip show it (it was "0,2"),
    where every job of the column names them alike (rows of tap=relu,conv read one index as two layers)."""
    names = df.loc[_is(df[key], value), NAMES_COLUMNS[key]].dropna().unique() if key in NAMES_COLUMNS else []
    return _names_text(names[0]) if len(names) == 1 else _value_label(key, value)


def _is(column: pd.Series, value: object) -> pd.Series:
    """Where column holds value (None: where it is null, an unset key)."""
    return column.isna() if value is None else column == value


def strip(df: pd.DataFrame, sweep_dir: str | Path, key: str) -> list[Path]:
    """strip.png/pdf: one labelled image per job along one swept key (e.g. reconstructions per layer)."""
    sweep_dir = Path(sweep_dir)
    df = df.sort_values(key, key=order, kind="stable")
    aspect = _aspect(df, sweep_dir)
    fig, axs = plt.subplots(1, len(df), figsize=(CELL * len(df), CELL * aspect + 0.8), squeeze=False)
    for ax, (_, job) in zip(axs[0], df.iterrows()):
        ok = job["status"] == "ok" and job["result"]
        label = _layers_label(job, key) if key in LAYER_KEYS else _value_label(key, job[key])
        if len(label) > 24:  # a long choice (painting = composition_vii_matched) would overlap its neighbours
            label = label.replace(" = ", " =\n", 1)
        if ok:
            label += "\n" + _metrics_label(job)
        _show(ax, sweep_dir / job["result"] if ok else None, label,
              failed=f"{job['status']}: {job.get('error') or ''}")
    return _save(fig, sweep_dir / "strip")


LINE_STYLES = ("-", "--", ":", "-.")


def line_style(k: int) -> dict[str, str]:
    """The k-th job's curve: ten colours, then the next ten dashed, dotted, ...: distinct for 40 jobs (a 25-job
    grid had three jobs to each colour, in one line style)."""
    return {"color": f"C{k % 10}", "ls": LINE_STYLES[k // 10 % len(LINE_STYLES)]}


def losses(df: pd.DataFrame, sweep_dir: str | Path) -> list[Path]:
    """losses.png/pdf: total, content and style loss per iteration of every job (log scale)."""
    sweep_dir = Path(sweep_dir)
    fig, axs = plt.subplots(1, 3, figsize=(15, 4.2))
    drawn = 0
    swept = [k for k in df.attrs.get("swept", []) if k in df]
    for _, job in df.iterrows():
        path = sweep_dir / job["job"] / "history.csv"
        if not path.is_file() or path.stat().st_size == 0:
            continue
        h = pd.read_csv(path)
        end = {"marker": "o"} if len(h) == 1 else {}  # a feed-forward job (method wct, adain): one image, a point
        # the swept values: the job's directory name also repeats a preset's every key (experiment=paper_fig3,
        # size=..., steps=...), which made the legend 3304 px wide and squeezed the plots
        label = ", ".join(f"{key_label(k)}=" + (_layers_label(job, k).replace("\n", ", ") if k in LAYER_KEYS
                                                     else _value_text(job[k])) for k in swept) or job["job"]
        if job.get("status") != "ok":  # its curve up to where it failed or was stopped, that point marked
            label, end = f"{label} ({job.get('status')})", {"marker": "x", "markevery": [-1]}
        for ax, col in zip(axs, ("total_loss", "content_loss", "style_loss")):
            if col in h and (h[col] > 0).any():
                ax.plot(h["iteration"], h[col], lw=1, label=label, **line_style(drawn), **end)
        drawn += 1
    for ax, col in zip(axs, ("total", "content", "style")):
        ax.set(title=f"{col} loss", xlabel="iteration")
        if ax.lines:
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations: no tick at 0.5 for a short run
            ax.grid(alpha=0.3)
        else:  # a content reconstruction's style panel was an empty frame (trial F)
            why = f"no {col} term" if any(a.lines for a in axs) else "no job left a history.csv"
            ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="0.5")
            ax.set(xticks=[], yticks=[])
    handles, labels = axs[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(5, len(labels)), fontsize=6,
                   bbox_to_anchor=(0.5, -0.07 - 0.025 * math.ceil(len(labels) / 5)))  # below the x labels
    return _save(fig, sweep_dir / "losses")


def loss_curve(df: pd.DataFrame, out: Path) -> list[Path]:
    """A training run's loss per step (log scale): the raw loss and its running mean over 50 steps."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    names = {"pixel": "pixel", "feature": "feature (relative)", "loss": "total = pixel + λ·feature"}
    for col, style in (("pixel", "C1"), ("feature", "C2"), ("loss", "C0")):
        ax.plot(df["step"], df[col], lw=0.5, alpha=0.35, color=style)
        ax.plot(df["step"], df[col].rolling(50, min_periods=1).mean(), lw=1.5, color=style,
                label=f"{names[col]}, mean of 50 steps")
    ax.set(xlabel="step", ylabel="loss", yscale="log", title="decoder training")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out.with_suffix(""))


def _shared(df: pd.DataFrame, column: str) -> str | None:
    """The one value the jobs have in `column` (a path), else None."""
    values = df[column].dropna().unique() if column in df else []
    return values[0] if len(values) == 1 and isinstance(values[0], str) else None


FIGURES = ("grid", "strip", "losses")  # what all_figures may draw, each as .png and .pdf


def drawn_paths(sweep_dir: str | Path) -> list[Path]:
    """Every figure file all_figures may write into a sweep directory."""
    return [Path(sweep_dir) / f"{name}.{ext}" for name in FIGURES for ext in ("png", "pdf")]


def all_figures(df: pd.DataFrame, sweep_dir: str | Path) -> list[Path]:
    """The figures a sweep calls for: a grid for two axes, a strip for one, loss curves always."""
    sweep_dir = Path(sweep_dir)
    rows_key, cols_key = axes(df)
    # the input panels beside a grid: an image every job shares; none for one that differs between jobs (a swept
    # content or style: one panel would claim it for every cell), nor a style no job uses (content only)
    styled = df[df["style_layers"] != "none"] if "style_layers" in df else df
    cfg_paths = {"content": _shared(df, "content_image"), "style": _shared(styled, "style_image")}
    out = []
    if rows_key and cols_key:
        out += grid(df, sweep_dir, **cfg_paths)
    elif rows_key or df.attrs.get("swept"):
        out += strip(df, sweep_dir, rows_key or df.attrs["swept"][0])
    out += losses(df, sweep_dir)
    return out
