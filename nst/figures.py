"""Figures of a sweep (the only module that imports matplotlib): parameter grid, reconstruction strip, loss curves."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402
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
DPI = 150  # of the PNGs (and the layout both files share)


def _plain(value) -> str:
    """A value as labels show it off a scientific axis: "null", four digits for a number, else its text."""
    if value is None or isinstance(value, float) and math.isnan(value):
        return "null"  # an unset option (e.g. preserve_color) reads back from the CSV as NaN
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _scientific(value: float, digits: int) -> str:
    """1e+03, 1.25e+03: `digits` after the point at most, trailing zeros dropped."""
    mantissa, exponent = f"{value:.{digits}e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.') if '.' in mantissa else mantissa}e{exponent}"


def axis_format(values) -> Callable[[object], str]:
    """One number format for all the values of an axis (β = 100 beside 1e+03, 1e-05 beside 0.01 was two): where
    one needs it (|v| >= 1e3 or < 1e-2), every number in scientific notation with the digits that tell them apart
    (1e+03, 1.25e+03), else four significant digits."""
    numbers = [float(v) for v in values if _nonzero_number(v)]
    if not any(abs(v) >= 1e3 or abs(v) < 1e-2 for v in numbers):
        return _plain
    digits = next((d for d in range(7) if all(abs(float(f"{v:.{d}e}") - v) <= 1e-9 * abs(v) for v in numbers)), 6)
    return lambda v: _scientific(float(v), digits) if _nonzero_number(v) else _plain(v)


def _nonzero_number(value) -> bool:
    """A number that scientific notation can show: not a bool, NaN (an unset option) or 0."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value) and value != 0


def _value_label(key: str, value, fmt: Callable[[object], str] = _plain) -> str:
    return f"{key_label(key)} = {fmt(value)}"


def _format(df: pd.DataFrame, key: str) -> Callable[[object], str]:
    """The format of a swept key's values in this sweep."""
    return axis_format(df[key].dropna().unique()) if key in df else _plain


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
        # the constrained layout and the tight box computed once, at the files' dpi, not again in each savefig; with
        # the PDF's images unresampled, a tiny 25-job grid's report and figures took 4.0 s, not 6.0 s (2-core EPYC)
        fig.set_dpi(DPI)
        fig.canvas.draw()
        fig.set_layout_engine("none")
        box = fig.get_tightbbox().padded(0.1)  # savefig's pad_inches default
        atomic_write(paths[0], lambda tmp: fig.savefig(tmp, format="png", dpi=DPI, bbox_inches=box))
        for image in fig.findobj(AxesImage):  # the PDF holds each image at its own resolution, not resampled
            image.set_interpolation("none")
        atomic_write(paths[1], lambda tmp: fig.savefig(tmp, format="pdf", dpi=DPI, bbox_inches=box))
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
                ax.set_ylabel(_layers_label(match.iloc[0], rows_key) if layers else _format(df, rows_key)(r),
                              fontsize=8)
    right.suptitle(f"rows: {key_label(rows_key)}, columns: {key_label(cols_key)}"
                   + (f"; {held}" if held else ""), fontsize=10)
    return _save(fig, sweep_dir / "grid")


def _column_title(df: pd.DataFrame, key: str, value: object) -> str:
    """A grid column's title: a layer set by its layers' names, as the rows and the strip show it (it was "0,2"),
    where every job of the column names them alike (rows of tap=relu,conv read one index as two layers)."""
    names = df.loc[_is(df[key], value), NAMES_COLUMNS[key]].dropna().unique() if key in NAMES_COLUMNS else []
    return _names_text(names[0]) if len(names) == 1 else _value_label(key, value, _format(df, key))


def _is(column: pd.Series, value: object) -> pd.Series:
    """Where column holds value (None: where it is null, an unset key)."""
    return column.isna() if value is None else column == value


STRIP_COLUMNS = 6  # a strip wraps onto rows of this many images: a 16-layer scan was one row 3,564 px wide


def strip(df: pd.DataFrame, sweep_dir: str | Path, key: str) -> list[Path]:
    """strip.png/pdf: one labelled image per job along one swept key (e.g. reconstructions per layer), wrapped
    onto rows of STRIP_COLUMNS."""
    sweep_dir = Path(sweep_dir)
    df = df.sort_values(key, key=order, kind="stable")
    aspect, fmt = _aspect(df, sweep_dir), _format(df, key)
    cols = min(len(df), STRIP_COLUMNS)
    rows = math.ceil(len(df) / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(CELL * cols, (CELL * aspect + 0.8) * rows), squeeze=False)
    for ax in axs.flat[len(df):]:
        ax.axis("off")
    for ax, (_, job) in zip(axs.flat, df.iterrows()):
        ok = job["status"] == "ok" and job["result"]
        label = _layers_label(job, key) if key in LAYER_KEYS else _value_label(key, job[key], fmt)
        if len(label) > 24:  # a long choice (painting = composition_vii_matched) would overlap its neighbours
            label = label.replace(" = ", " =\n", 1)
        if ok:
            label += "\n" + _metrics_label(job)
        _show(ax, sweep_dir / job["result"] if ok else None, label,
              failed=f"{job['status']}: {job.get('error') or ''}")
    return _save(fig, sweep_dir / "strip")


LOSSES = ("total_loss", "content_loss", "style_loss")


def _history(sweep_dir: Path, job: pd.Series) -> pd.DataFrame | None:
    path = sweep_dir / job["job"] / "history.csv"
    return pd.read_csv(path) if path.is_file() and path.stat().st_size else None


def _curve(ax, h: pd.DataFrame, col: str, job: pd.Series, **style) -> None:
    """One job's loss per iteration; a feed-forward job (one row) as a point, a failed one's last point an x."""
    if col not in h or not (h[col] > 0).any():
        return
    end = {"marker": "o"} if len(h) == 1 else {}
    if job.get("status") != "ok":  # its curve up to where it failed or was stopped, that point marked
        end = {"marker": "x", "markevery": [-1]}
    ax.plot(h["iteration"], h[col], lw=1.2, **style, **end)


def _finish(ax, col: str, any_lines: bool) -> None:
    if ax.lines:
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations: no tick at 0.5 for a short run
        ax.grid(alpha=0.3)
    else:  # a content reconstruction's style panel was an empty frame (trial F)
        why = f"no {col.replace('_loss', '')} term" if any_lines else "no job left a history.csv"
        ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="0.5")
        ax.set(xticks=[], yticks=[])


def job_colours(n: int) -> list:
    """The colours of n jobs' curves along one axis: matplotlib's ten where they suffice, else a sequential map in
    the axis's order (a 25-job grid had three jobs to each of ten colours; a layer scan reads shallow to deep)."""
    return [f"C{k}" for k in range(n)] if n <= 10 else _shades(n)


def _shades(n: int) -> list:
    """n colours of viridis in order, dark to light, without its last pale yellow (0.9 of the map)."""
    cmap = plt.get_cmap("viridis")
    return [cmap(k / max(1, n - 1) * 0.9) for k in range(n)]


def losses(df: pd.DataFrame, sweep_dir: str | Path) -> list[Path]:
    """losses.png/pdf: total, content and style loss per iteration of every job (log scale). Two swept keys: small
    multiples, a column of panels per value of the first (style-layer sets), colour by the second (β), so that a
    25-job grid reads at a glance; else one panel per loss, a colour per job."""
    sweep_dir = Path(sweep_dir)
    rows_key, cols_key = axes(df)
    if rows_key and cols_key and len(axis_values(plane(df), rows_key)) <= STRIP_COLUMNS:
        return _loss_panels(plane(df), sweep_dir, rows_key, cols_key, held_text(df))
    fig, axs = plt.subplots(1, 3, figsize=(15, 4.2))
    swept = [k for k in df.attrs.get("swept", []) if k in df]
    formats = {k: _format(df, k) for k in swept}
    jobs = [(job, h) for _, job in df.iterrows() if (h := _history(sweep_dir, job)) is not None]
    colours = job_colours(len(jobs))
    for k, (job, h) in enumerate(jobs):
        # the swept values: the job's directory name also repeats a preset's every key (experiment=paper_fig3,
        # size=..., steps=...), which made the legend 3304 px wide and squeezed the plots
        label = ", ".join(f"{key_label(key)}=" + (_layers_label(job, key).replace("\n", ", ") if key in LAYER_KEYS
                                                  else formats[key](job[key])) for key in swept) or job["job"]
        if job.get("status") != "ok":
            label = f"{label} ({job.get('status')})"
        for ax, col in zip(axs, LOSSES):
            _curve(ax, h, col, job, color=colours[k], label=label)
    for ax, col in zip(axs, LOSSES):
        ax.set(title=col.replace("_", " "), xlabel="iteration")
        _finish(ax, col, any(a.lines for a in axs))
    handles, labels = axs[0].get_legend_handles_labels()
    if handles:
        ncol = min(4, len(labels))
        fig.legend(handles, labels, loc="upper center", ncol=ncol, fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, 0.0))  # below the x labels
    return _save(fig, sweep_dir / "losses")


def _loss_panels(df: pd.DataFrame, sweep_dir: Path, panels_key: str, colour_key: str, held: str) -> list[Path]:
    """A row per loss (total, content, style), a column per value of `panels_key`, a colour per value of
    `colour_key` (sequential, in the axis's order), one legend."""
    panels, shades = axis_values(df, panels_key), axis_values(df, colour_key)
    fmt, panel_fmt = _format(df, colour_key), _format(df, panels_key)
    colour = dict(zip(shades, _shades(len(shades))))
    fig, axs = plt.subplots(3, len(panels), figsize=(3.2 * len(panels), 7.2), squeeze=False, sharex=True,
                            layout="constrained")  # each panel its own log scale: style losses span 1e0-1e3
    for j, value in enumerate(panels):
        jobs = df[_is(df[panels_key], value)]
        title = _layers_label(jobs.iloc[0], panels_key).replace("\n", ", ") if panels_key in LAYER_KEYS and len(jobs) \
            else _value_label(panels_key, value, panel_fmt)
        axs[0][j].set_title(title, fontsize=9)
        for _, job in jobs.iterrows():
            h = _history(sweep_dir, job)
            if h is None:
                continue
            shade = None if pd.isna(job[colour_key]) else job[colour_key]  # an axis value, as axis_values has it
            for i, col in enumerate(LOSSES):
                _curve(axs[i][j], h, col, job, color=colour.get(shade, "0.5"), label=_value_label(colour_key, shade, fmt))
    drawn = any(a.lines for a in axs.flat)
    for i, col in enumerate(LOSSES):
        axs[i][0].set_ylabel(col.replace("_", " "), fontsize=9)
        for ax in axs[i]:
            _finish(ax, col, drawn)
    for ax in axs[-1]:
        ax.set_xlabel("iteration", fontsize=9)
    legend = {}
    for ax in axs.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    labels = [_value_label(colour_key, v, fmt) for v in shades if _value_label(colour_key, v, fmt) in legend]
    if labels:
        fig.legend([legend[label] for label in labels], labels, loc="outside lower center", ncol=len(labels),
                   fontsize=9, frameon=False)
    fig.suptitle(f"loss per iteration: columns {key_label(panels_key)}, colour {key_label(colour_key)}"
                 + (f"; {held}" if held else ""), fontsize=10)
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
